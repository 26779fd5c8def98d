"""Where the NeRF's mask IoU is lost, pixel by pixel, per body group: false positives outside the target mask
and false negatives inside it, split by where they lie relative to the fitted body's silhouette.

Run from the repository root on a ``bench_nerf_quality.py`` work folder and checkpoint:

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nerf_mask_errors.py
        --checkpoint out/bench_nerf_quality/run/checkpoint [--work out/bench_nerf_quality] [--unseen-seed 777]
        [--variant NAME:key=value,key=value ...] [--silent]

Every pair is the quality benchmark's (view 0 -> views 1..7; the small-in-frame group is each body
group's first subject shrunk by ``--small-factor``). Per pixel: T the target mask > 0.5, B the fitted
body mesh rasterised in the target view (the baseline's mask), N the rendered opacity > 0.5. Columns,
summed over a group's pairs and given per 100 target-mask pixels:

* ``FP ring``: N, not T, within one pixel of B (an outline around the body: a halo or a soft edge);
* ``FP far``: N, not T, further from B (learned density away from the body);
* ``FN body``: T and B, not N (the body itself missing: thin limbs, the prior's edge);
* ``FN cloth``: T, not B, not N (clothing and hair outside the body that the render misses);
* ``cloth hit``: T, not B, and N (clothing outside the body that the render covers).

The baseline's own FP / FN (B against T) are printed too. ``--variant`` renders the same checkpoint with
model settings replaced (render-time fields such as ``body_prior_margin``); ``--silent`` adds a variant
whose learned density is switched off, i.e. the body prior alone; ``--prior-only`` switches it off in
every render (to compare the prior's shapes on any checkpoint).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nerf_data import REPO_ROOT, body_silhouettes, reference_pair_batches, with_settings  # noqa: E402
from nerf_unseen import TUNING_RUN_SEED, UNSEEN_GROUPS, UNSEEN_RUN_SEED  # noqa: E402

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from gas_core.body.smpl import BodyModel  # noqa: E402
from gas_core.nerf import GeneralizableHumanNeRF, load_nerf  # noqa: E402
from gas_core.render.normals import NormalMapRenderer  # noqa: E402

COLUMNS = ("iou", "FP ring", "FP far", "FN body", "FN cloth", "cloth hit")


def variant_model(model: GeneralizableHumanNeRF, assignments: list[str], *, silent: bool = False) -> GeneralizableHumanNeRF:
    """``model``'s weights under settings with ``KEY=VALUE`` ``assignments`` replaced; ``silent``: no learned density."""
    copy = with_settings(model, assignments)
    if silent:
        with torch.no_grad():
            copy.density_head.weight.zero_()
            copy.density_head.bias.fill_(-40.0)
    return copy


def pixel_errors(opacity: torch.Tensor, body: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-pair pixel counts (B,) of the columns above; opacity (B, 1, H, W), body and target (B, 1, H, W) bool."""
    predicted = opacity > 0.5
    near_body = F.max_pool2d(body.float(), 3, stride=1, padding=1) > 0.5
    false_positive = predicted & ~target
    counts = {
        "FP ring": false_positive & near_body,
        "FP far": false_positive & ~near_body,
        "FN body": target & body & ~predicted,
        "FN cloth": target & ~body & ~predicted,
        "cloth hit": target & ~body & predicted,
    }
    result = {name: mask.flatten(1).sum(1).float() for name, mask in counts.items()}
    union = (predicted | target).flatten(1).sum(1).clamp_min(1)
    result["iou"] = (predicted & target).flatten(1).sum(1).float() / union
    result["target"] = target.flatten(1).sum(1).float()
    return result


def group_errors(models: dict[str, GeneralizableHumanNeRF], shards: Path, image_size: int, body_model: BodyModel,
                 *, shrink: float | None = None, max_subjects: int | None = None) -> dict[str, dict[str, list]]:
    """Per model name (and ``baseline``) the per-pair values of :func:`pixel_errors` over ``shards``."""
    renderer = NormalMapRenderer(width=image_size, height=image_size)
    values: dict[str, dict[str, list]] = {}
    for batch in reference_pair_batches(shards, image_size, body_model, shrink=shrink, max_subjects=max_subjects):
        body = body_silhouettes(batch, renderer)[:, None]
        target = batch.target_mask > 0.5
        outputs = {"baseline": body.float()}
        for name, model in models.items():
            outputs[name] = model.render(batch.reference, batch.target_camera, batch.target_body).opacity
        for name, opacity in outputs.items():
            for column, value in pixel_errors(opacity, body, target).items():
                values.setdefault(name, {}).setdefault(column, []).append(value)
    return values


def summarise(values: dict[str, list]) -> dict[str, float]:
    """Mean IoU and the error columns per 100 target pixels."""
    stacked = {column: torch.cat(parts) for column, parts in values.items()}
    target = float(stacked["target"].sum())
    summary = {"iou": float(stacked["iou"].mean()), "pairs": float(stacked["iou"].numel())}
    for column in COLUMNS[1:]:
        summary[column] = 100.0 * float(stacked[column].sum()) / max(target, 1.0)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "out" / "bench_nerf_quality")
    parser.add_argument("--unseen-seed", type=int, default=TUNING_RUN_SEED)
    parser.add_argument("--small-factor", type=float, default=0.3)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:key=value,...")
    parser.add_argument("--silent", action="store_true", help="add the body prior alone (no learned density)")
    parser.add_argument("--prior-only", action="store_true", help="every render with the learned density off")
    parser.add_argument("--groups", nargs="*", default=None, help="only these unseen groups")
    parser.add_argument("--skip-own", action="store_true", help="leave out the own held-out group")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    base = load_nerf(args.checkpoint)
    models = {"nerf": base}
    for text in args.variant:
        name, _, assignments = text.partition(":")
        models[name] = variant_model(base, [item for item in assignments.split(",") if item], silent=args.prior_only)
    if args.prior_only:
        models["nerf"] = variant_model(base, [], silent=True)
    elif args.silent:
        models["prior only"] = variant_model(base, [], silent=True)
    body_model = BodyModel(None)
    size = base.settings.image_size
    unseen_dir = args.work / ("unseen" if args.unseen_seed == UNSEEN_RUN_SEED else f"unseen_{args.unseen_seed}")
    groups: dict[str, dict[str, dict[str, list]]] = {}
    if not args.skip_own:
        groups["own held-out"] = group_errors(models, args.work / "heldout" / "shards", size, body_model)
    small: dict[str, dict[str, list]] = {}
    for group in UNSEEN_GROUPS:
        shards = unseen_dir / group.name / "shards"
        if not (shards / "manifest.json").exists() or (args.groups is not None and group.name not in args.groups):
            continue
        groups[group.name] = group_errors(models, shards, size, body_model)
        part = group_errors(models, shards, size, body_model, shrink=args.small_factor, max_subjects=1)
        for name, columns in part.items():
            for column, values in columns.items():
                small.setdefault(name, {}).setdefault(column, []).extend(values)
    groups["small in frame"] = small
    print(f"\nmask errors per 100 target-mask pixels; checkpoint {args.checkpoint}, unseen seed {args.unseen_seed}\n")
    print("| group | render | pairs | IoU | " + " | ".join(COLUMNS[1:]) + " |")
    print("| --- | --- | --- | --- | " + " | ".join("---" for _ in COLUMNS[1:]) + " |")
    for group, per_model in groups.items():
        for name, values in per_model.items():
            summary = summarise(values)
            cells = " | ".join(f"{summary[column]:.2f}" for column in COLUMNS[1:])
            print(f"| {group} | {name} | {int(summary['pairs'])} | {summary['iou']:.3f} | {cells} |")


if __name__ == "__main__":
    main()
