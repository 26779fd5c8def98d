"""Evaluation cost on CPU: seconds per 20-frame 512x512 clip for each metric, and the Fréchet distance.

Run from the repository root (about 2–4 minutes on two CPU cores):

    GAS_CACHE_DIR=.cache .venv/bin/python benchmarks/bench_metrics.py [--repeats 3] [--threads 2]

The networks (LPIPS backbones, I3D) carry random weights saved to a temporary folder and loaded
through the real loaders; run time does not depend on the weight values. Clips are random images
(a target and a noisy prediction). Each figure is the median over ``--repeats`` runs after one
warm-up. The Fréchet distance is timed once per pair of feature sets of the paper's size
(THuman2.1: 100 subjects x 4 input views = 400 clips, 400-d I3D logits).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import torchvision  # noqa: E402

from gas_core.metrics.fvd import I3DFeatureExtractor, InceptionI3d, frechet_distance, load_i3d  # noqa: E402
from gas_core.metrics.image import mask_bounding_box, psnr, ssim  # noqa: E402
from gas_core.metrics.lpips import LPIPSMetric  # noqa: E402
from timing import median_seconds  # noqa: E402

FRAMES = 20
SIZE = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models\._utils")

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(FRAMES, 3, SIZE, SIZE, generator=generator)
    pred = (target + 0.05 * torch.randn(FRAMES, 3, SIZE, SIZE, generator=generator)).clamp(0, 1)
    mask = torch.zeros(FRAMES, 1, SIZE, SIZE)
    mask[..., 64:480, 160:352] = 1
    box = mask_bounding_box(mask)

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        torch.save(torchvision.models.vgg16().features.state_dict(), folder / "vgg16_features.pth")
        torch.save(torchvision.models.alexnet().features.state_dict(), folder / "alexnet_features.pth")
        torch.save(InceptionI3d().state_dict(), folder / "i3d_pretrained_400.pt")
        lpips_vgg = LPIPSMetric(folder / "vgg16_features.pth", network="vgg")
        lpips_alex = LPIPSMetric(folder / "alexnet_features.pth", network="alex")
        extractor = I3DFeatureExtractor(load_i3d(folder / "i3d_pretrained_400.pt"), batch_size=1)

    rows.append(("PSNR, whole frames", median_seconds(lambda: psnr(pred, target), args.repeats)))
    rows.append(("PSNR, masked", median_seconds(lambda: psnr(pred, target, mask=mask), args.repeats)))
    rows.append(("SSIM, whole frames", median_seconds(lambda: ssim(pred, target), args.repeats)))
    rows.append(("SSIM, person box", median_seconds(lambda: ssim(pred, target, box=box), args.repeats)))
    lpips_batch = 4

    def chunked(metric: LPIPSMetric) -> Callable[[], object]:
        return lambda: torch.cat([metric(pred[i:i + lpips_batch], target[i:i + lpips_batch])
                                  for i in range(0, FRAMES, lpips_batch)])

    rows.append(("LPIPS-VGG, whole frames", median_seconds(chunked(lpips_vgg), args.repeats)))
    rows.append(("LPIPS-Alex, whole frames", median_seconds(chunked(lpips_alex), args.repeats)))
    rows.append(("I3D features (FVD), one clip", median_seconds(lambda: extractor(pred.unsqueeze(0)), args.repeats)))

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(400, 400)), rng.normal(size=(400, 400)) + 0.1
    frechet = median_seconds(lambda: frechet_distance(real, fake), args.repeats)

    print(f"CPU, {args.threads} threads, torch {torch.__version__}; one clip = {FRAMES} frames of {SIZE}x{SIZE}")
    print()
    print("| metric | s per clip |")
    print("| --- | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print(f"| Fréchet distance, 400 vs 400 clips of 400-d features (per set pair) | {frechet:.3f} |")


if __name__ == "__main__":
    main()
