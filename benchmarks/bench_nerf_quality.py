"""NeRF quality check on synthetic data: the ``tiny`` preset trained briefly on CPU against a body-mesh baseline.

Run from the repository root (about 20 minutes: data, then a time-boxed training run, then evaluation):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nerf_quality.py
        [--work DIR] [--train-subjects 24] [--heldout-subjects 6] [--minutes 15] [--threads 1]
        [--checkpoint DIR]   # evaluate an existing run instead of training

Data: synthetic THuman-layout subjects (``pipelines.synth``) preprocessed with ``PreprocessConfig.tiny()``
(8 views at 256 px, fitted open body model; subjects failing the quality gates are left out), training
subjects from seed 11, held-out subjects from seed 29 (other people, clothes and poses).
Training: ``NeRFTrainConfig.tiny()`` (96 px) for at most ``--minutes`` of wall time (``optim.max_wall_s``).
Evaluation: for every held-out subject, view 0 is the reference and the other 7 views are the targets
(held-out views of held-out subjects). Metrics as SHERF reports them: PSNR and SSIM inside the person's
bounding box (the target mask's box), and mask IoU of opacity > 0.5 against the mask.
Baseline: the fitted posed body mesh rasterised in the target view, filled with the reference image's mean
foreground colour (its opacity is the mesh silhouette).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# nerf_data puts the repository on sys.path, sets GAS_CACHE_DIR's default and configures headless GL.
from nerf_data import REPO_ROOT, body_silhouettes, make_synthetic_shards  # noqa: E402

import torch  # noqa: E402

from gas_core.body.smpl import BodyModel  # noqa: E402
from gas_core.nerf import load_nerf  # noqa: E402
from gas_core.render.normals import NormalMapRenderer  # noqa: E402
from pipelines.train_nerf import (  # noqa: E402
    CHECKPOINT_DIRNAME,
    pair_batch,
    box_metrics,
    load_train_nerf_config,
    subject_views,
    train_nerf,
)
from shards.reader import make_subject_pipeline  # noqa: E402


def baseline_render(batch, renderer: NormalMapRenderer) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed mesh silhouettes (B, 1, H, W) filled with each reference's mean foreground colour -> rgb (B, 3, H, W)."""
    masks = body_silhouettes(batch, renderer).float()[:, None]  # (B, 1, H, W)
    weight = batch.reference.mask
    colour = (batch.reference.image * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp_min(1.0)  # (B, 3)
    return colour[:, :, None, None] * masks, masks


def evaluate(checkpoint: Path, heldout: Path, image_size: int, body_model: BodyModel) -> dict[str, dict[str, float]]:
    model = load_nerf(checkpoint)
    renderer = NormalMapRenderer(width=image_size, height=image_size)
    scores: dict[str, list[torch.Tensor]] = {}
    pairs = 0
    start = time.perf_counter()
    for sample in make_subject_pipeline(heldout, split_by_node=False, split_by_worker=False):
        subject = subject_views(sample, image_size)
        views = subject.views.shape[0]
        batch = pair_batch([subject] * (views - 1), [(0, j) for j in range(1, views)], body_model)
        result = model.render(batch.reference, batch.target_camera, batch.target_body)
        baseline_rgb, baseline_mask = baseline_render(batch, renderer)
        for name, (rgb, opacity) in {"ours": (result.rgb, result.opacity), "baseline": (baseline_rgb, baseline_mask)}.items():
            for metric, values in box_metrics(rgb, opacity, batch.target_rgb, batch.target_mask).items():
                scores.setdefault(f"{name}/{metric}", []).append(values)
        pairs += views - 1
    logging.info("evaluated %d pairs in %.0f s", pairs, time.perf_counter() - start)
    table: dict[str, dict[str, float]] = {}
    for key, values in scores.items():
        name, metric = key.split("/")
        table.setdefault(name, {})[metric] = float(torch.cat(values).mean())
    table["_pairs"] = {"count": float(pairs)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "out" / "bench_nerf_quality")
    parser.add_argument("--train-subjects", type=int, default=24)
    parser.add_argument("--heldout-subjects", type=int, default=6)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path, default=None, help="evaluate this run's checkpoint, no training")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    train = make_synthetic_shards(args.work / "train", subjects=args.train_subjects, seed=11)
    heldout = make_synthetic_shards(args.work / "heldout", subjects=args.heldout_subjects, seed=29)
    config = load_train_nerf_config(preset="tiny", overrides=[f"optim.max_wall_s={args.minutes * 60}",
                                                               "optim.max_steps=1000000", f"threads={args.threads}",
                                                               *args.set])
    body_model = BodyModel(config.data.body_model_path)
    if args.checkpoint is None:
        report = train_nerf(config, train, args.work / "run", val_shards=heldout, resume=False)
        checkpoint = Path(report.checkpoint)
        training = f"{report.steps} steps in {report.wall_s / 60:.1f} min of wall time ({args.threads} thread(s))"
    else:
        checkpoint = args.checkpoint
        training = f"checkpoint {checkpoint}"
    image_size = load_nerf(checkpoint).settings.image_size if args.checkpoint else config.data.image_size
    table = evaluate(checkpoint if checkpoint.name != CHECKPOINT_DIRNAME else checkpoint, heldout, image_size, body_model)
    pairs = int(table.pop("_pairs")["count"])
    print(f"\nNeRF quality, tiny preset at {image_size} px; training: {training}; "
          f"{pairs} held-out pairs ({args.heldout_subjects} held-out subjects x 7 target views)\n")
    print("| method | PSNR in box (dB) | SSIM in box | mask IoU |")
    print("| --- | --- | --- | --- |")
    labels = {"ours": "NeRF (tiny)", "baseline": "posed mesh, mean reference colour"}
    for name in ("ours", "baseline"):
        row = table[name]
        print(f"| {labels[name]} | {row['psnr']:.2f} | {row['ssim']:.3f} | {row['mask_iou']:.3f} |")


if __name__ == "__main__":
    main()
