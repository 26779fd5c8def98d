"""Video preprocessing speed per stage and memory against video length (synthetic TikTok-style videos).

For each length, one synthetic walking video is written (``pipelines.synth_video.synthesize_tiktok``,
video 1 of the run walks), then preprocessed in a fresh process (``pipelines.preprocess_video``) so
that each row's peak resident memory is its own. Decoding, masking and the SMPL fit are timed apart
(the ``VideoReport`` timings); frames/s = frames / seconds of that stage.

    python benchmarks/bench_preprocess_video.py [--lengths 60 120 240] [--size 256] [--segment 40]

Memory must stay flat with length: frames are streamed, segments are written to disk as they are
made, so only one segment (plus the masker's windows) is in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_one(raw_root: str, video_id: str, segment: int, fit: str) -> None:
    """Child process: preprocess one video, print its report and peak memory as JSON."""
    sys.path.insert(0, str(REPO_ROOT))
    from pipelines.preprocess import load_preprocess_config
    from pipelines.preprocess_video import plan_videos, preprocess_video

    # the settings of the table in docs/video.md: the built-in masker and noised true keypoints
    overrides = [f"video.segment_frames={segment}", f"video.min_segment_frames={min(segment, 20)}",
                 "video.masks.estimator=background", "video.keypoints.source=groundtruth"]
    if fit == "paper":
        overrides += ["video.fit.global_iterations=60", "video.fit.iterations=300"]
    config = load_preprocess_config(preset="tiny", overrides=overrides)
    with tempfile.TemporaryDirectory() as out:
        plan = plan_videos("tiktok", Path(raw_root), Path(out))
        ref = next(ref for ref in plan.todo if ref.subject_id == video_id)
        report = preprocess_video(ref, config, plan.staging_dir)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"report": report.as_row(), "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[60, 120, 240])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--segment", type=int, default=40, help="frames per segment")
    parser.add_argument("--fit", choices=["tiny", "paper"], default="paper", help="monocular fit iterations")
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "ID", "SEGMENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child[0], args.child[1], int(args.child[2]), args.fit)
        return

    from pipelines.synth_video import synthesize_tiktok

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for length in args.lengths:
            root = Path(work) / f"len{length}"
            synthesize_tiktok(root, num_videos=2, num_frames=length, size=args.size, seed=11)
            child = subprocess.run([sys.executable, __file__, "--fit", args.fit, "--child", str(root), "00002",
                                    str(args.segment)], capture_output=True, text=True, env=dict(os.environ))
            if child.returncode != 0:
                raise SystemExit(f"length {length} failed:\n{child.stderr[-3000:]}")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            report = result["report"]
            rows.append((length, report, result["peak_mib"]))

    print(f"\nwalking video, {args.size}x{args.size}, segments of {args.segment} frames, {args.fit} fit, "
          f"built-in masker, ground-truth keypoints (3 px noise)\n")
    print("| frames | segments | decode frames/s | masks frames/s | SMPL fit frames/s | mask IoU | PA-MPJPE (mm) | peak RSS (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for length, report, peak in rows:
        def rate(key: str) -> str:
            seconds = float(report[key] or 0.0)
            return f"{report['frames'] / seconds:.1f}" if seconds > 0 else "-"

        print(f"| {length} | {report['segments']} | {rate('decode_s')} | {rate('mask_s')} | {rate('fit_s')} | "
              f"{report['mask_iou']} | {report['pa_mpjpe_mm']} | {peak:.0f} |")


if __name__ == "__main__":
    main()
