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

Groups: besides the own held-out subjects, the same checkpoint is evaluated on bodies it never saw
(``nerf_unseen.py``: children, elders, heavy, tall and short bodies in poses outside the training library,
``--unseen-per-group`` each, and the first of each shrunk to about 1-3 % of the image). The table gives
each group's PSNR / SSIM / mask IoU for the NeRF and the baseline, the NeRF's margin, and the colour
drift (distance in 8-bit RGB between the mean colour rendered and the target's, inside the target mask).
Targets: NeRF >= baseline on all three metrics in every group, and the unseen bodies' PSNR margin >= 70 %
of the own held-out margin. ``WORK/strips/<group>.png`` shows, per group, target / NeRF / baseline /
NeRF opacity for three target views of its first subject.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# nerf_data puts the repository on sys.path, sets GAS_CACHE_DIR's default and configures headless GL.
from nerf_data import REPO_ROOT, body_silhouettes, make_synthetic_shards, reference_pair_batches, with_settings  # noqa: E402
from nerf_unseen import SMALL_GROUP, TUNING_RUN_SEED, UNSEEN_GROUPS, UNSEEN_RUN_SEED, make_unseen_shards  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import torch  # noqa: E402

from gas_core.body.smpl import BodyModel  # noqa: E402
from gas_core.nerf import load_nerf  # noqa: E402
from gas_core.render.normals import NormalMapRenderer  # noqa: E402
from pipelines.train_nerf import (  # noqa: E402
    box_metrics,
    load_train_nerf_config,
    train_nerf,
)


def baseline_render(batch, renderer: NormalMapRenderer) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed mesh silhouettes (B, 1, H, W) filled with each reference's mean foreground colour -> rgb (B, 3, H, W)."""
    masks = body_silhouettes(batch, renderer).float()[:, None]  # (B, 1, H, W)
    weight = batch.reference.mask
    colour = (batch.reference.image * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp_min(1.0)  # (B, 3)
    return colour[:, :, None, None] * masks, masks


def colour_drift(rgb: torch.Tensor, target_rgb: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """(B,) distance in 8-bit RGB units between the mean rendered and the mean target colour inside the target mask."""
    weight = (target_mask > 0.5).float()
    count = weight.sum(dim=(2, 3)).clamp_min(1.0)
    rendered = (rgb.float().clamp(0, 1) * weight).sum(dim=(2, 3)) / count
    truth = (target_rgb.float() * weight).sum(dim=(2, 3)) / count
    return (rendered - truth).norm(dim=-1) * 255.0


def _strip(rows: list[torch.Tensor]) -> Image.Image:
    """Rows of (3, H, W) images in [0, 1] side by side, rows stacked, as one RGB image."""
    grid = torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)
    image = Image.fromarray((grid.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return image.resize((image.width * 3, image.height * 3), Image.NEAREST)  # 96 px views are small to look at


def evaluate(model, shards: Path, image_size: int, body_model: BodyModel, *, shrink: float | None = None,
             max_subjects: int | None = None, strip: Path | None = None) -> dict[str, dict[str, float]]:
    """Mean metrics of ``model`` and the baseline over every subject of ``shards`` (view 0 -> views 1..N-1).

    ``shrink``: shrink every view about the image centre by this factor first (small-in-frame subjects);
    ``max_subjects``: the first subjects only; ``strip``: write the first subject's strip there.
    """
    renderer = NormalMapRenderer(width=image_size, height=image_size)
    scores: dict[str, list[torch.Tensor]] = {}
    pairs = subjects = 0
    start = time.perf_counter()
    for batch in reference_pair_batches(shards, image_size, body_model, shrink=shrink, max_subjects=max_subjects):
        count = batch.target_rgb.shape[0]
        result = model.render(batch.reference, batch.target_camera, batch.target_body)
        baseline_rgb, baseline_mask = baseline_render(batch, renderer)
        for name, (rgb, opacity) in {"ours": (result.rgb, result.opacity), "baseline": (baseline_rgb, baseline_mask)}.items():
            metrics = box_metrics(rgb, opacity, batch.target_rgb, batch.target_mask)
            metrics["colour_drift"] = colour_drift(rgb, batch.target_rgb, batch.target_mask)
            for metric, values in metrics.items():
                scores.setdefault(f"{name}/{metric}", []).append(values)
        scores.setdefault("cover/fraction", []).append(batch.target_mask.mean(dim=(1, 2, 3)))
        if strip is not None and subjects == 0:
            chosen = [0, count // 2, count - 1]
            rows = [[batch.target_rgb[j], result.rgb[j], baseline_rgb[j], result.opacity[j].expand(3, -1, -1)]
                    for j in chosen]
            strip.parent.mkdir(parents=True, exist_ok=True)
            _strip(rows).save(strip)
        pairs += count
        subjects += 1
    logging.info("evaluated %d pairs of %s in %.0f s", pairs, shards, time.perf_counter() - start)
    table: dict[str, dict[str, float]] = {}
    for key, values in scores.items():
        name, metric = key.split("/")
        table.setdefault(name, {})[metric] = float(torch.cat(values).mean())
    table["_pairs"] = {"count": float(pairs), "values": scores}
    return table


METRICS = ("psnr", "ssim", "mask_iou")


def _pooled(tables: list[dict]) -> dict[str, dict[str, float]]:
    """Pair-weighted means over several groups' tables."""
    pooled: dict = {}
    values: dict[str, list[torch.Tensor]] = {}
    for key in tables[0]["_pairs"]["values"]:
        values[key] = [part for table in tables for part in table["_pairs"]["values"][key]]
        name, metric = key.split("/")
        pooled.setdefault(name, {})[metric] = float(torch.cat(values[key]).mean())
    pooled["_pairs"] = {"count": float(sum(table["_pairs"]["count"] for table in tables)), "values": values}
    return pooled


def group_table(groups: dict[str, dict]) -> str:
    """The per-group Markdown table and the two targets' verdicts."""
    lines = ["| group | pairs | NeRF PSNR / SSIM / IoU | baseline PSNR / SSIM / IoU | NeRF - baseline | "
             "colour drift NeRF / baseline | NeRF >= baseline on all three |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, table in groups.items():
        ours, base = table["ours"], table["baseline"]
        margin = [ours[m] - base[m] for m in METRICS]
        lines.append(f"| {name} | {int(table['_pairs']['count'])} | {ours['psnr']:.2f} / {ours['ssim']:.3f} / "
                     f"{ours['mask_iou']:.3f} | {base['psnr']:.2f} / {base['ssim']:.3f} / {base['mask_iou']:.3f} | "
                     f"{margin[0]:+.2f} / {margin[1]:+.3f} / {margin[2]:+.3f} | {ours['colour_drift']:.1f} / "
                     f"{base['colour_drift']:.1f} | {'yes' if all(m >= 0 for m in margin) else 'no'} |")
    own = groups["own held-out"]["ours"]["psnr"] - groups["own held-out"]["baseline"]["psnr"]
    unseen = groups.get("unseen (all)")
    if unseen is not None:
        margin = unseen["ours"]["psnr"] - unseen["baseline"]["psnr"]
        ratio = margin / own if own > 0 else float("nan")
        lines.append(f"\nunseen PSNR margin {margin:+.2f} dB = {100 * ratio:.0f} % of the own held-out margin "
                     f"{own:+.2f} dB (target >= 70 %: {'met' if ratio >= 0.7 else 'not met'})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "out" / "bench_nerf_quality")
    parser.add_argument("--train-subjects", type=int, default=24)
    parser.add_argument("--heldout-subjects", type=int, default=6)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path, default=None, help="evaluate this run's checkpoint, no training")
    parser.add_argument("--unseen-seed", type=int, default=UNSEEN_RUN_SEED,
                        help=f"run seed of the unseen bodies ({UNSEEN_RUN_SEED}: the reported set; "
                             f"{TUNING_RUN_SEED}: the set the body prior's settings were chosen on)")
    parser.add_argument("--unseen-per-group", type=int, default=3, help="unseen bodies per group (0: none)")
    parser.add_argument("--small-factor", type=float, default=0.3, help="shrink factor of the small-in-frame group")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    parser.add_argument("--render-set", action="append", default=[], metavar="KEY=VALUE",
                        help="model setting replaced for evaluation only (e.g. body_prior_softness=0.003): "
                             "compares render-time settings on one checkpoint")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    train = make_synthetic_shards(args.work / "train", subjects=args.train_subjects, seed=11)
    heldout = make_synthetic_shards(args.work / "heldout", subjects=args.heldout_subjects, seed=29)
    unseen_dir = args.work / ("unseen" if args.unseen_seed == UNSEEN_RUN_SEED else f"unseen_{args.unseen_seed}")
    unseen = {group.name: make_unseen_shards(unseen_dir / group.name, index, subjects=args.unseen_per_group,
                                             run_seed=args.unseen_seed)
              for index, group in enumerate(UNSEEN_GROUPS)} if args.unseen_per_group > 0 else {}
    for name in [name for name, shards in unseen.items() if not (shards / "manifest.json").exists()]:
        logging.warning("unseen group %s: every body was left out (see above); the group is not reported", name)
        del unseen[name]
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
    model = load_nerf(checkpoint)
    if args.render_set:
        model = with_settings(model, args.render_set)
        training += f"; rendered with {', '.join(args.render_set)}"
    strips = args.work / "strips"
    groups = {"own held-out": evaluate(model, heldout, image_size, body_model, strip=strips / "own_heldout.png")}
    for name, shards in unseen.items():
        groups[name] = evaluate(model, shards, image_size, body_model, strip=strips / f"{name}.png")
    if unseen:
        groups[SMALL_GROUP] = _pooled([
            evaluate(model, shards, image_size, body_model, shrink=args.small_factor, max_subjects=1,
                     strip=strips / f"small_{name}.png") for name, shards in unseen.items()])
        groups["unseen (all)"] = _pooled([table for name, table in groups.items() if name != "own held-out"])
    print(f"\nNeRF quality, tiny preset at {image_size} px; training: {training}; own held-out: "
          f"{args.heldout_subjects} subjects x 7 target views; unseen: {args.unseen_per_group} per body group, "
          f"the first of each also shrunk by {args.small_factor} (person cover "
          f"{100 * groups.get(SMALL_GROUP, groups['own held-out'])['cover']['fraction']:.1f} % of the image)\n")
    print(group_table(groups))
    print(f"\nstrips (target / NeRF / baseline / NeRF opacity): {strips}")


if __name__ == "__main__":
    main()
