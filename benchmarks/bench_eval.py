"""Cost of ``gas eval`` end to end on tiny synthetic clips: seconds per clip for the NeRF row and a
diffusion row (generation + scoring), and a rerun that finds every clip cached.

    python benchmarks/bench_eval.py [--clips 4] [--frames 20] [--size 64] [--steps 25] [--threads 1]

Random weights everywhere (the tiny GAS model, an AlexNet LPIPS backbone, I3D): the timings do not
depend on the weights. The ``paper`` sizes (SVD-xt at 512x512) need a GPU and are not measured here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipelines.evaluate import EvalCheckpoint, evaluate, load_eval_config  # noqa: E402


def _write_inputs(root: Path, clips: int, frames: int, size: int) -> tuple[Path, Path, Path, Path, Path]:
    import numpy as np
    import torchvision

    from gas_core.diffusion import GASModel
    from gas_core.metrics.fvd import InceptionI3d
    from pipelines.splits import TestSplit, write_split
    from shards.schema import CLIP_SCHEMA
    from shards.writer import ShardWriter
    from tests.shards.samples import make_clip

    with ShardWriter(root / "clips", "clips", CLIP_SCHEMA) as writer:
        for index in range(clips):
            clip = make_clip(f"{index:04d}", "thuman", reference_index=0, n_frames=frames, size=size, seed=index)
            masks = np.zeros((frames, size, size), np.uint8)
            masks[:, size // 8:-size // 8, size // 4:-size // 4] = 255
            clip.masks = masks
            noisy = np.clip(clip.frames.astype(np.int16) + np.random.default_rng(index).integers(-20, 20, clip.frames.shape),
                            0, 255)
            clip.nerf = np.where(masks[..., None] > 0, noisy, 0).astype(np.uint8)
            clip.meta["frame_indices"] = list(range(frames))
            writer.write(clip)
    split = write_split(TestSplit("thuman", "novel_view", tuple(f"{i:04d}" for i in range(clips)),
                                  protocol={"num_views": frames, "input_views": [0], "mask_background": True}),
                        root / "thuman_test.json")
    GASModel.from_preset("tiny", seed=0).save_pretrained(root / "gas-tiny")
    torch.save(torchvision.models.alexnet().features.state_dict(), root / "alexnet.pth")
    torch.save(InceptionI3d().state_dict(), root / "i3d.pt")
    return root / "clips", split, root / "gas-tiny", root / "alexnet.pth", root / "i3d.pt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clips, split, checkpoint, alexnet, i3d = _write_inputs(root, args.clips, args.frames, args.size)
        config = load_eval_config(preset="tiny", overrides=[
            f"sampling.num_steps={args.steps}", "sampling.window=null", f"metrics.lpips_weights={alexnet}",
            "metrics.lpips_network=alex", f"metrics.i3d_weights={i3d}"])
        rows = []
        nerf_only = load_eval_config(preset="tiny", overrides=[f"metrics.lpips_weights={alexnet}",
                                                                "metrics.lpips_network=alex", f"metrics.i3d_weights={i3d}"])
        started = time.perf_counter()
        evaluate(clips, [split], [], root / "out-nerf", nerf_only)
        rows.append(("NeRF row only (scoring, incl. ground-truth I3D)", time.perf_counter() - started))
        started = time.perf_counter()
        evaluate(clips, [split], [EvalCheckpoint("tiny", str(checkpoint))], root / "out", config)
        rows.append((f"NeRF row + diffusion row ({args.steps} steps, guided)", time.perf_counter() - started))
        started = time.perf_counter()
        report = evaluate(clips, [split], [EvalCheckpoint("tiny", str(checkpoint))], root / "out", config)
        rows.append(("rerun, every clip cached", time.perf_counter() - started))
        assert all(scored == 0 for scored, _ in report.counts["thuman_novel_view"].values())
    print(f"{args.clips} clips of {args.frames} frames at {args.size}x{args.size}, {args.threads} CPU thread(s)\n")
    print("| run | total s | s per clip |")
    print("| --- | ---: | ---: |")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {seconds / args.clips:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
