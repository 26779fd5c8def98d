"""NeRF holes: the share of the fitted body's silhouette the NeRF leaves (nearly) empty, per ``surface_crossings``.

A hole is a pixel inside the fitted body's silhouette (the posed body mesh rasterised in the target
view) where the rendered opacity is below ``--threshold`` (0.05). The same checkpoint renders the same
views with ``surface_crossings=1`` (one depth window per ray: the sampler before the option existed)
and ``surface_crossings=2`` (the default), so only the sampler differs between the rows.

Run from the repository root:

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nerf_holes.py
        [--checkpoint out/demo/nerf/checkpoint --shards out/demo/shards/subjects]
        [--work out/bench_nerf_holes --train-subjects 16 --heldout-subjects 4 --minutes 10] [--threads 1]
        [--images /tmp/holes]

Data: ``--checkpoint`` and ``--shards`` default to what ``make demo`` writes (``out/demo/nerf/checkpoint``,
``out/demo/shards/subjects``). When either is missing, the benchmark makes its own as
``bench_nerf_quality.py`` does: synthetic THuman-layout subjects (training seed 11, held-out seed 29,
``PreprocessConfig.tiny()``: 8 views at 256 px) and the ``tiny`` training preset for ``--minutes`` of
wall time, trained with ``model.surface_crossings=1`` (``--train-crossings``) like every checkpoint
written before the option existed. Evaluation: every subject of the shards, view 0 as the reference
and each other view as a target, at the checkpoint's ``image_size``. Besides the hole fraction it
reports PSNR and SSIM inside the person's box and mask IoU (``pipelines.train_nerf.box_metrics``),
and the MLP queries per frame. ``--images DIR`` writes, for the targets whose hole fraction drops most,
a PNG strip: target | render (1 crossing) | render (2 crossings) | opacity (1) | opacity (2) | holes
(1, red) | holes (2, red), the holes drawn over the silhouette in grey. The hole fraction is pooled over
all targets' silhouette pixels.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# nerf_data puts the repository on sys.path, sets GAS_CACHE_DIR's default and configures headless GL.
from nerf_data import REPO_ROOT, body_silhouettes, make_synthetic_shards  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gas_core.body.smpl import BodyModel  # noqa: E402
from gas_core.nerf import load_nerf  # noqa: E402
from gas_core.render.normals import NormalMapRenderer  # noqa: E402
from pipelines.train_nerf import box_metrics, load_train_nerf_config, pair_batch, subject_views, train_nerf  # noqa: E402
from shards.reader import make_subject_pipeline  # noqa: E402

DEMO_CHECKPOINT = REPO_ROOT / "out" / "demo" / "nerf" / "checkpoint"
DEMO_SHARDS = REPO_ROOT / "out" / "demo" / "shards" / "subjects"


@dataclass
class Scores:
    """Per-target values of one ``surface_crossings`` setting (lists of floats, one per target view)."""

    holes: list[float] = field(default_factory=list)  # hole pixels
    silhouette: list[float] = field(default_factory=list)  # silhouette pixels
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    mask_iou: list[float] = field(default_factory=list)
    queries: list[float] = field(default_factory=list)


def hole_pixels(opacity: torch.Tensor, silhouette: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B,) count of the silhouette pixels (B, H, W) whose opacity (B, 1, H, W) is below ``threshold``."""
    return ((opacity[:, 0] < threshold) & silhouette).flatten(1).sum(1).float()


def hole_fraction(opacity: torch.Tensor, silhouette: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B,) share of the silhouette pixels (B, H, W) whose opacity (B, 1, H, W) is below ``threshold``."""
    return hole_pixels(opacity, silhouette, threshold) / silhouette.flatten(1).sum(1).clamp_min(1).float()


def strip(target: torch.Tensor, renders: list[torch.Tensor], opacities: list[torch.Tensor], silhouette: torch.Tensor,
          threshold: float, scale: int) -> np.ndarray:
    """(H * scale, W * scale * 7, 3) uint8: target | renders | opacities | holes (red on the grey silhouette)."""
    panels = [target] + renders + [o.expand(3, -1, -1) for o in opacities]
    for opacity in opacities:
        holes = ((opacity[0] < threshold) & silhouette).float()
        grey = silhouette.float() * 0.35
        panels.append(torch.stack([torch.maximum(grey, holes), grey * (1 - holes), grey * (1 - holes)]))
    image = torch.cat([p.clamp(0, 1) for p in panels], dim=-1)
    image = image.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def evaluate(checkpoint: Path, shards: Path, crossings: tuple[int, ...], threshold: float, body_model: BodyModel,
             images: Path | None, max_images: int) -> tuple[dict[int, Scores], int, int]:
    """Render every subject's views 1.. from view 0 with each ``crossings`` setting of one checkpoint."""
    model = load_nerf(checkpoint)
    base = model.settings
    size = base.image_size
    renderer = NormalMapRenderer(width=size, height=size)
    scores = {k: Scores() for k in crossings}
    candidates = []  # (drop in hole fraction, strip)
    subjects = 0
    for sample in make_subject_pipeline(shards, split_by_node=False, split_by_worker=False):
        subject = subject_views(sample, size)
        views = subject.views.shape[0]
        batch = pair_batch([subject] * (views - 1), [(0, j) for j in range(1, views)], body_model)
        silhouette = body_silhouettes(batch, renderer)
        encoding = model.encode_reference(batch.reference)
        results = {}
        for k in crossings:
            model.settings = replace(base, surface_crossings=k)  # same weights, only the sampler changes
            result = model.render(encoding, batch.target_camera, batch.target_body)
            results[k] = result
            row = scores[k]
            row.holes += hole_pixels(result.opacity, silhouette, threshold).tolist()
            row.silhouette += silhouette.flatten(1).sum(1).float().tolist()
            for name, values in box_metrics(result.rgb, result.opacity, batch.target_rgb, batch.target_mask).items():
                getattr(row, name).extend(values.tolist())
            row.queries += [result.mlp_queries / (views - 1)] * (views - 1)
        model.settings = base
        if images is not None and len(crossings) >= 2:
            first, last = results[crossings[0]], results[crossings[-1]]
            drop = hole_fraction(first.opacity, silhouette, threshold) - hole_fraction(last.opacity, silhouette, threshold)
            for j in range(views - 1):
                picture = strip(batch.target_rgb[j], [first.rgb[j], last.rgb[j]], [first.opacity[j], last.opacity[j]],
                                silhouette[j], threshold, scale=max(1, 384 // size))
                candidates.append((float(drop[j]), f"{subject.key}_view{j + 1:02d}", picture))
            candidates = sorted(candidates, key=lambda c: -c[0])[:max_images]
        subjects += 1
        logging.info("%s: %d targets", subject.key, views - 1)
    if images is not None:
        from PIL import Image

        images.mkdir(parents=True, exist_ok=True)
        for rank, (drop, name, picture) in enumerate(candidates):
            path = images / f"{rank:02d}_{name}.png"
            Image.fromarray(picture).save(path)
            logging.info("wrote %s (hole fraction %.3f lower with %d crossings)", path, drop, crossings[-1])
    return scores, subjects, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT, help="NeRF checkpoint or save_pretrained folder")
    parser.add_argument("--shards", type=Path, default=DEMO_SHARDS, help="subject shards to evaluate on")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "out" / "bench_nerf_holes",
                        help="data and training run when --checkpoint or --shards is missing")
    parser.add_argument("--train-subjects", type=int, default=16)
    parser.add_argument("--heldout-subjects", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time when training here")
    parser.add_argument("--train-crossings", type=int, default=1, help="model.surface_crossings while training here")
    parser.add_argument("--crossings", type=int, nargs="+", default=[1, 2], help="settings to compare")
    parser.add_argument("--threshold", type=float, default=0.05, help="opacity below which a silhouette pixel is a hole")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=Path, default=None, help="write before/after PNG strips here")
    parser.add_argument("--max-images", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    args = parser.parse_args()
    if not 0 < args.threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
    if any(k < 1 for k in args.crossings):
        raise ValueError(f"--crossings must be >= 1, got {args.crossings}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    config = load_train_nerf_config(preset="tiny", overrides=[
        f"optim.max_wall_s={args.minutes * 60}", "optim.max_steps=1000000", f"threads={args.threads}",
        f"model.surface_crossings={args.train_crossings}", *args.set])
    if args.checkpoint.exists() and args.shards.exists():
        checkpoint, shards = args.checkpoint, args.shards
        source = f"checkpoint {checkpoint}, subjects {shards}"
    else:
        logging.info("no checkpoint/shards at %s, %s: making synthetic data and training here", args.checkpoint,
                     args.shards)
        train = make_synthetic_shards(args.work / "train", subjects=args.train_subjects, seed=11)
        shards = make_synthetic_shards(args.work / "heldout", subjects=args.heldout_subjects, seed=29)
        report = train_nerf(config, train, args.work / "run", val_shards=shards, resume=False)
        checkpoint = Path(report.checkpoint)
        source = (f"tiny NeRF trained here with surface_crossings={args.train_crossings}: {report.steps} steps in "
                  f"{report.wall_s / 60:.1f} min ({args.threads} thread(s)); held-out synthetic subjects (seed 29)")
    body_model = BodyModel(config.data.body_model_path)
    crossings = tuple(sorted(set(args.crossings)))
    scores, subjects, size = evaluate(checkpoint, shards, crossings, args.threshold, body_model, args.images,
                                      args.max_images)
    targets = len(scores[crossings[0]].holes)
    print(f"\nNeRF holes at {size} px; {source}; {subjects} subjects x their views 1.. from view 0 "
          f"({targets} targets); {(time.perf_counter() - started) / 60:.1f} min in all\n")
    print(f"| surface_crossings | hole fraction (opacity < {args.threshold:g} in body silhouette) | "
          "targets with > 1 % holes | PSNR in box (dB) | SSIM in box | mask IoU | MLP queries per frame |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k in crossings:
        row = scores[k]
        holes, silhouette = np.array(row.holes), np.array(row.silhouette)
        per_target = holes / np.maximum(silhouette, 1)
        print(f"| {k} | {holes.sum() / max(silhouette.sum(), 1):.2%} ({int(holes.sum())} of {int(silhouette.sum())} px) | "
              f"{int((per_target > 0.01).sum())}/{holes.size} | {np.mean(row.psnr):.2f} | {np.mean(row.ssim):.3f} | "
              f"{np.mean(row.mask_iou):.3f} | {np.mean(row.queries):.0f} |")


if __name__ == "__main__":
    main()
