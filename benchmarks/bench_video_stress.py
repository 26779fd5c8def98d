"""The own synthetic video set against a stress set, through the real monocular video path (prints a table).

Two sets of synthetic TikTok-style videos are written with :func:`pipelines.synth_video.synthesize_tiktok`:

* **own**: the project's own motions (dance, walk, turn) on ordinary adult bodies;
* **stress**: :class:`pipelines.synth_video.StressOptions` (jumps, deep squats, arms overhead, fast spins,
  turning away, lying down and getting up, on heavy, tall, short and child bodies).

Each video goes through :func:`pipelines.preprocess_video.preprocess_video` (masks, tracking, keypoints,
the monocular SMPL fit, staging) with the preprocess config as it is (``--preset``), so whatever masker,
keypoint estimator and segment gates the config offers are the ones measured. Each set runs twice:

* **true keypoints**: the ground truth's projected COCO-17 keypoints, exact (no noise, none dropped):
  the fit alone;
* **default keypoints**: the config's own keypoint source. With a detector or estimator configured it is
  that; without one the path falls back to the ground-truth keypoints with the config's noise and drops,
  and the table says so.

Per segment, against the ground truth kept aside by the synthesis: mask IoU (per frame, in the segment's
crop), PA-MPJPE of the 24 joints (mm), acceleration error (mean |a_fit - a_true| of pelvis-aligned joints,
mm/frame^2, next to the truth's own mean acceleration), identity kept (frames whose mask lies mostly on
the subject: at least half its pixels, and more on the subject than on any other person the ground
truth records), and broken segments (mean true IoU < 0.5 or identity lost on more than 10 % of the
frames), counted packed (status ok) or rejected (a ``rejected`` segment status, or a segment the video
path dropped). Targets are printed with pass/fail.

Seeds. The fit's settings (robust-scale annealing, robust temporal smoothing, clinical joint limits)
were tuned on clips of seeds 500, 501 and 502 only; the reported runs use ``--seed`` (default 7100) and
``--seed + 1`` for the stress set, which must differ from those.

    python benchmarks/bench_video_stress.py [--videos 6] [--frames 48] [--size 256] [--preset tiny|paper]
    python benchmarks/bench_video_stress.py --quick      # 2 short videos per set, tiny fits (smoke test)
    python benchmarks/bench_video_stress.py --tuning     # stress sets of the tuning seeds only (to tune on)
    python benchmarks/bench_video_stress.py --tuning --set video.masks.mediapipe.motion_search_iou=0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

#: Seeds the fit's settings were tuned on; never report on them.
TUNING_SEEDS = (500, 501, 502)
#: Healthy-segment thresholds: a segment is broken below this mean true mask IoU ...
BROKEN_IOU = 0.5
#: ... or when the identity is lost on more than this fraction of its frames.
BROKEN_IDENTITY_LOSS = 0.1


@dataclasses.dataclass
class SegmentScore:
    """One segment against the ground truth (mm, mm/frame^2, fractions)."""

    video: str
    packed: bool
    mask_iou: float = float("nan")
    pa_mpjpe_mm: float = float("nan")
    accel_error: float = float("nan")
    accel_truth: float = float("nan")
    identity_kept: float = float("nan")
    reason: str = ""

    @property
    def broken(self) -> bool:
        return bool(self.mask_iou < BROKEN_IOU or self.identity_kept < 1.0 - BROKEN_IDENTITY_LOSS)


def write_sets(work: Path, videos: int, frames: int, size: int, seed: int) -> dict[str, Path]:
    """Write the own and the stress set (``videos`` each) under ``work``; returns set name -> root."""
    from pipelines.synth_video import StressOptions, synthesize_tiktok

    if seed in TUNING_SEEDS or seed + 1 in TUNING_SEEDS:
        raise SystemExit(f"--seed {seed}: seeds {TUNING_SEEDS} tuned the fit; report on others")
    roots = {"own": work / "own", "stress": work / "stress"}
    synthesize_tiktok(roots["own"], num_videos=videos, num_frames=frames, size=size, seed=seed)
    synthesize_tiktok(roots["stress"], num_videos=videos, num_frames=frames, size=size, seed=seed + 1,
                      stress=StressOptions())
    return roots


def keypoint_configs(config) -> dict[str, Any]:
    """Label -> preprocess config: exact true keypoints, and the config's own keypoint source."""
    keypoints = config.video.keypoints
    fields = {field.name for field in dataclasses.fields(keypoints)}
    exact = {"noise_px": 0.0, "drop_prob": 0.0, "detector_weights": None, "source": "groundtruth"}
    true = dataclasses.replace(config, video=dataclasses.replace(
        config.video, keypoints=dataclasses.replace(keypoints, **{k: v for k, v in exact.items() if k in fields})))
    return {"true keypoints": true, default_keypoint_label(config): config}


def default_keypoint_label(config) -> str:
    """What the config's own keypoint source is, in words."""
    keypoints = config.video.keypoints
    source = getattr(keypoints, "source", "groundtruth")
    if keypoints.detector_weights:
        return f"detector keypoints ({Path(str(keypoints.detector_weights)).name})"
    if source == "estimator":
        return f"detector keypoints ({config.video.masks.estimator})"
    return f"no detector configured: true keypoints + {keypoints.noise_px:g} px noise, {keypoints.drop_prob:.0%} dropped"


def _crop_of(meta: dict[str, Any], size: int):
    from pipelines.preprocess_video import SegmentCrop

    crop = meta["extra"]["crop"]
    return SegmentCrop(x0=float(crop["x0"]), y0=float(crop["y0"]), side=float(crop["side"]), size=size)


def score_video(ref, report, staging: Path, body, config) -> list[SegmentScore]:
    """Scores of a preprocessed video's staged segments (plus one unscored row per dropped segment)."""
    import cv2
    import torch

    from gas_core.body.smpl import SMPLParams
    from gas_core.metrics.joints import acceleration, acceleration_error, procrustes_aligned_mpjpe
    from pipelines.datasets.tiktok import resampled_indices
    from pipelines.preprocess_video import read_video_groundtruth
    from shards.schema import decode_video

    truth = read_video_groundtruth(ref)
    scores = []
    folders = sorted(path for path in staging.iterdir() if path.is_dir()) if staging.exists() else []
    for folder in folders:
        sample = decode_video({path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()},
                              where=str(folder))
        status = str(sample.meta.get("status", sample.meta.get("extra", {}).get("status", "ok")))
        indices = np.asarray(sample.video["source_frames"], dtype=np.int64)
        lookup = np.asarray(resampled_indices(len(truth["joints24"]), truth["fps"], config.video.fps))[indices]
        crop = _crop_of(sample.meta, sample.masks.shape[-1])
        scale = float(sample.meta["extra"]["crop"]["decode_scale"])
        truth_masks = np.asarray(truth["masks"])[0][lookup]
        others = np.asarray(truth["other_masks"])[0][lookup] if "other_masks" in truth else None
        ious, kept = [], []
        for f, (mask, true_mask) in enumerate(zip(sample.masks, truth_masks)):
            def to_crop(image):
                small = cv2.resize(image.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
                return crop.apply_image(small, nearest=True) > 0

            mask = np.asarray(mask) > 127
            subject = to_crop(true_mask)
            union = np.logical_or(mask, subject).sum()
            ious.append(np.logical_and(mask, subject).sum() / union if union else 1.0)
            on_subject = np.logical_and(mask, subject).sum()
            on_others = np.logical_and(mask, to_crop(others[f].any(0))).sum() if others is not None else 0
            kept.append(mask.sum() > 0 and on_subject >= 0.5 * mask.sum() and on_subject > on_others)
        stacked = {key: torch.as_tensor(np.stack([np.asarray(item[key], dtype=np.float32).reshape(-1)
                                                  for item in sample.smpl]))
                   for key in ("betas", "body_pose", "global_orient", "transl", "scale")}
        stacked["body_pose"] = stacked["body_pose"].reshape(len(indices), -1, 3)
        stacked["scale"] = stacked["scale"].reshape(-1)
        params = SMPLParams(**stacked)
        with torch.no_grad():
            joints = body(params).joints.double().numpy()
        true_joints = np.asarray(truth["joints24"], dtype=np.float64)[lookup]
        score = SegmentScore(video=ref.subject_id, packed=status != "rejected", mask_iou=float(np.mean(ious)),
                             pa_mpjpe_mm=1000 * procrustes_aligned_mpjpe(joints, true_joints),
                             identity_kept=float(np.mean(kept)))
        if len(indices) >= 3:
            score.accel_error = 1000 * acceleration_error(joints, true_joints, root_index=0)
            score.accel_truth = 1000 * float(np.linalg.norm(acceleration(true_joints - true_joints[:, :1]), axis=-1).mean())
        scores.append(score)
    # Rejected segments are never staged: score them from the report (true mask IoU when they got as far
    # as a fit; unscored otherwise, counted apart).
    rejected = [row for row in getattr(report, "segment_rows", ()) if row.get("status") != "ok"]
    if not hasattr(report, "segment_rows"):
        rejected = [{} for _ in range(int(report.dropped))]
    scores += [SegmentScore(video=ref.subject_id, packed=False, mask_iou=float(row.get("true_mask_iou", float("nan"))),
                            reason=str(row.get("reason", "")))
               for row in rejected]
    return scores


def run_set(root: Path, config, body, work: Path) -> tuple[list[SegmentScore], float]:
    """Preprocess every video of a set; returns the segment scores and the seconds taken."""
    from pipelines.datasets.errors import ScanReadError
    from pipelines.preprocess_video import NoUsableSegmentError, plan_videos, preprocess_video
    from shards.schema import make_key

    start = time.perf_counter()
    out = Path(tempfile.mkdtemp(dir=work))
    plan = plan_videos("tiktok", root, out)
    scores = []
    for ref in plan.todo:
        try:
            report = preprocess_video(ref, config, plan.staging_dir)
        except NoUsableSegmentError as error:  # every segment rejected: score the rows
            print(f"  {root.name}/{ref.subject_id}: every segment rejected", flush=True)
            scores += [SegmentScore(video=f"{root.name}/{ref.subject_id}", packed=False,
                                    mask_iou=float(row.get("true_mask_iou", float("nan"))), reason=str(row.get("reason", "")))
                       for row in error.segment_rows if row.get("status") != "ok"]
            continue
        except ScanReadError as error:
            print(f"  {root.name}/{ref.subject_id}: failed ({error})", flush=True)
            continue
        found = score_video(ref, report, plan.staging_dir / make_key(ref.dataset, ref.subject_id), body, config)
        scores += [dataclasses.replace(score, video=f"{root.name}/{ref.subject_id}") for score in found]
    return scores, time.perf_counter() - start


def summary(scores: list[SegmentScore]) -> dict[str, float]:
    scored = [s for s in scores if np.isfinite(s.mask_iou)]
    healthy = [s for s in scored if not s.broken]
    broken = [s for s in scored if s.broken]
    dropped = [s for s in scores if not np.isfinite(s.mask_iou)]
    mean = lambda key: float(np.nanmean([getattr(s, key) for s in scored])) if scored else float("nan")  # noqa: E731
    return {
        "segments": len(scores),
        "mask_iou": mean("mask_iou"),
        "worst_iou": float(min((s.mask_iou for s in scored), default=float("nan"))),
        "pa_mpjpe_mm": mean("pa_mpjpe_mm"),
        "accel_error": mean("accel_error"),
        "accel_truth": mean("accel_truth"),
        "identity_kept": 100 * mean("identity_kept"),
        "broken_packed": sum(s.packed for s in broken),
        "broken_rejected": sum(not s.packed for s in broken),
        "unscored_rejected": len(dropped),
        "healthy_rejected": 100 * sum(not s.packed for s in healthy) / max(1, len(healthy)),
    }


def print_rejected(scores: list[SegmentScore]) -> None:
    """One row per segment that was not packed: its video, true mask IoU (when it reached a fit) and reason."""
    rejected = [score for score in scores if not score.packed]
    if not rejected:
        return
    print("\n| rejected segment of | true mask IoU | healthy | reason |\n| --- | --- | --- | --- |")
    for score in rejected:
        healthy = "" if not np.isfinite(score.mask_iou) else ("no" if score.broken else "yes")
        reason = score.reason.split(": ", 1)[-1].replace("|", "/")
        print(f"| {score.video} | {score.mask_iou:.3f} | {healthy} | {reason} |")


def tune(args, config, body) -> int:
    """The stress set of each tuning seed through the config as it is; prints one table row over all."""
    from pipelines.synth_video import StressOptions, synthesize_tiktok

    scores, seconds = [], 0.0
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for seed in TUNING_SEEDS:
            root = work / f"stress{seed}"
            synthesize_tiktok(root, num_videos=args.videos, num_frames=args.frames, size=args.size, seed=seed,
                              stress=StressOptions())
            found, spent = run_set(root, config, body, work)
            scores += found
            seconds += spent
    s = summary(scores)
    print(f"\nstress sets of the tuning seeds {TUNING_SEEDS}, {args.videos} videos each x {args.frames} frames, "
          f"{args.size}x{args.size}, {default_keypoint_label(config)}, {seconds:.0f} s"
          + (f", --set {' '.join(args.overrides)}" if args.overrides else "") + "\n")
    print("| segments | mask IoU mean | worst segment | PA-MPJPE (mm) | broken packed / rejected | rejected before a fit "
          "| healthy rejected (%) |\n| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {s['segments']} | {s['mask_iou']:.3f} | {s['worst_iou']:.3f} | {s['pa_mpjpe_mm']:.1f} | {s['broken_packed']} / "
          f"{s['broken_rejected']} | {s['unscored_rejected']} | {s['healthy_rejected']:.0f} |")
    print_rejected(scores)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--quick`` sets its small sizes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6, help="videos per set")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--segment", type=int, default=24, help="frames per segment")
    parser.add_argument("--seed", type=int, default=7100, help=f"own set; the stress set uses seed + 1 (not {TUNING_SEEDS})")
    parser.add_argument("--preset", choices=("tiny", "paper"), default="paper", help="preprocess config preset")
    parser.add_argument("--quick", action="store_true", help="2 videos of 24 frames per set at 128 px, tiny fits")
    parser.add_argument("--tuning", action="store_true",
                        help=f"only the stress sets of the tuning seeds {TUNING_SEEDS}, the config's own keypoints")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="preprocess config override, as for `gas preprocess --set` (repeatable)")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.frames, args.size, args.segment, args.preset = 2, 24, 128, 24, "tiny"
    return args


def bench_config(args: argparse.Namespace):
    """The preprocess config the benchmark runs: ``--preset``, the segment and frame sizes, then ``--set``."""
    from pipelines.preprocess import load_preprocess_config

    overrides = [f"video.segment_frames={args.segment}", f"video.min_segment_frames={min(args.segment, 20)}",
                 f"video.max_side={args.size}", "video.store_normals=false", *args.overrides]
    return load_preprocess_config(preset=args.preset, overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gas_core.body.smpl import BodyModel

    config = bench_config(args)
    body = BodyModel(config.body_model_path)
    if args.tuning:
        return tune(args, config, body)
    rows, rejected = [], []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        roots = write_sets(work, args.videos, args.frames, args.size, args.seed)
        for label, variant in keypoint_configs(config).items():
            for name, root in roots.items():
                scores, seconds = run_set(root, variant, body, work)
                rows.append((name, label, summary(scores), seconds))
                rejected.append((name, label, scores))
                print(f"{name} / {label}: {len(scores)} segments, {seconds:.0f} s", flush=True)

    print(f"\n{args.videos} videos per set x {args.frames} frames, {args.size}x{args.size}, segments of {args.segment} "
          f"frames, preset {args.preset}, seeds {args.seed} (own) and {args.seed + 1} (stress); fit tuned on seeds {TUNING_SEEDS}\n")
    print("| set | keypoints | segments | mask IoU mean | worst segment | PA-MPJPE (mm) | accel. error (true accel.) "
          "(mm/frame^2) | identity kept (%) | broken packed / rejected | rejected before a fit | healthy rejected (%) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, label, s, _ in rows:
        print(f"| {name} | {label} | {s['segments']} | {s['mask_iou']:.3f} | {s['worst_iou']:.3f} | {s['pa_mpjpe_mm']:.1f} | "
              f"{s['accel_error']:.2f} ({s['accel_truth']:.2f}) | {s['identity_kept']:.1f} | {s['broken_packed']} / "
              f"{s['broken_rejected']} | {s['unscored_rejected']} | {s['healthy_rejected']:.0f} |")
    by = {(name, label): s for name, label, s, _ in rows}
    default = default_keypoint_label(config)
    ratio = by[("stress", default)]["pa_mpjpe_mm"] / by[("own", default)]["pa_mpjpe_mm"]
    checks = [
        (f"stress/own PA-MPJPE <= 1.5 ({default})", ratio, ratio <= 1.5),
        ("stress-set mean mask IoU >= 0.92 (default masker)", by[("stress", default)]["mask_iou"],
         by[("stress", default)]["mask_iou"] >= 0.92),
        ("zero broken segments packed", sum(s["broken_packed"] for s in by.values()),
         all(s["broken_packed"] == 0 for s in by.values())),
        ("gates reject <= 10 % of healthy segments", max(s["healthy_rejected"] for s in by.values()),
         all(s["healthy_rejected"] <= 10 for s in by.values())),
    ]
    print("\n| target | measured | |\n| --- | --- | --- |")
    for name, value, ok in checks:
        print(f"| {name} | {value:.3f} | {'pass' if ok else 'FAIL'} |")
    for name, label, scores in rejected:
        if any(not score.packed for score in scores):
            print(f"\n{name} / {label}:", end="")
            print_rejected(scores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
