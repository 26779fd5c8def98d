"""Synthetic video throughput: posing + ground truth per frame, and whole TikTok / MVHumanNet synthesis.

Run from the repository root (about 2 minutes on two CPU cores):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/bench_synth_video.py

Prints one table: seconds per frame (motion) and per written image (synthesis, PNG/JPEG/MP4 included).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from gas_core.synth.humans import sample_subject_spec  # noqa: E402
from gas_core.synth.motion import MotionSpec, make_motion  # noqa: E402
from pipelines.synth_video import synthesize_mvhumannet, synthesize_tiktok  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    make_motion(sample_subject_spec(0), MotionSpec("dance", num_frames=2), texture_size=32)  # load Anny and the body model
    rows = []
    for kind in ("dance", "walk", "turn"):
        start = time.perf_counter()
        make_motion(sample_subject_spec(1), MotionSpec(kind, num_frames=args.frames), texture_size=256)
        rows.append((f"motion '{kind}' (pose, dress, ground truth), per frame", (time.perf_counter() - start) / args.frames))
    with tempfile.TemporaryDirectory() as folder:
        for size, mp4 in ((256, False), (512, False), (512, True)):
            timing = synthesize_tiktok(Path(folder) / f"t{size}{mp4}", num_videos=1, num_frames=args.frames, size=size, as_mp4=mp4)
            rows.append((f"TikTok {size}x{size} {'MP4' if mp4 else 'PNG'}, per frame", timing.seconds_per_image))
        timing = synthesize_mvhumannet(Path(folder) / "mvh", num_subjects=1, num_cameras=4, num_frames=args.frames, size=256)
        rows.append(("MVHumanNet 4 cameras 256x256 JPEG, per image", timing.seconds_per_image))
    print("| what | seconds |\n| --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
