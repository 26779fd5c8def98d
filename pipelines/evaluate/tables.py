"""The paper-style tables: a row's means and FVD, the column legend, the ``ResultsTable`` and its files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from gas_core.metrics import FVD, LPIPS, ResultRow, ResultsTable, describe_split, frechet_distance
from gas_core.metrics.fvd import I3D_MIN_FRAMES
from gas_core.metrics.table import TableFiles, write_results_table
from pipelines.evaluate.config import BOX_MIN_SIDE, BOX_REGION, EVAL_COLUMNS, PAPER_REGION, EvalConfig
from pipelines.evaluate.metrics import MetricSuite, describe_metrics
from pipelines.evaluate.protocols import EvalPlan
from pipelines.evaluate.rows import RowResult


_TASK_TITLES = {"novel_view": "Novel view synthesis", "novel_pose": "Novel pose synthesis"}


def _row_values(row: RowResult, missing: dict[str, str]) -> dict[str, float]:
    """Column key -> the row's value: per-frame metrics averaged over all scored frames, FVD over clips."""
    values: dict[str, float] = {}
    frames = sum(score.frames for score in row.scores)
    for key in row.scores[0].frame_values():
        per_clip = [score.frame_values()[key] for score in row.scores]
        if all(clip_values is not None for clip_values in per_clip):
            values[key] = float(sum(sum(clip_values) for clip_values in per_clip) / frames)  # type: ignore[arg-type]
        elif key.startswith(LPIPS.name) and LPIPS.name not in missing:
            missing[LPIPS.name] = f"row {row.label!r}: some clips were scored without LPIPS"
    with_features = [score for score in row.scores if score.features is not None and score.target_features is not None]
    if FVD.name not in missing:
        if len(with_features) != len(row.scores):
            missing[FVD.name] = (f"FVD needs at least {I3D_MIN_FRAMES} scored frames per clip; "
                                 f"min was {min(score.frames for score in row.scores)}")
        elif len(with_features) < 2:
            missing[FVD.name] = f"FVD needs at least 2 clips, {len(with_features)} scored"
        else:
            generated = np.asarray([score.features for score in with_features], dtype=np.float64)
            real = np.asarray([score.target_features for score in with_features], dtype=np.float64)
            values[f"{FVD.name}@{PAPER_REGION}"] = frechet_distance(real, generated)
    return values


def _legend(plan: EvalPlan) -> dict[str, str]:
    """What each column region of ``plan``'s table scores (printed under the table and recorded)."""
    if plan.mask_background:
        shade = {1.0: "white", 0.0: "black"}.get(float(plan.background), f"grey {plan.background:g}")
        paper = (f"whole frames, prediction and ground truth both painted {shade} outside the ground-truth mask (the "
                 "paper's numbers); whatever the model put around the person never counts, so a flat or noisy output "
                 "can score as well as a real rendering")
    else:
        paper = "whole frames as they are, no background removal (the paper's numbers)"
    box = (f"each frame cropped to the bounding box of its ground-truth mask (at least {BOX_MIN_SIDE} px a side), "
           "prediction and ground truth as they are, nothing painted (SHERF's region): the model's own pixels "
           "around and between the limbs count")
    return {PAPER_REGION: paper, BOX_REGION: box}


def _json_value(value: float) -> float | str:
    """``value``, or ``"inf"`` / ``"-inf"`` (PSNR of identical images), as the table's record writes them."""
    return value if np.isfinite(value) else ("inf" if value > 0 else "-inf")


def build_table(plan: EvalPlan, rows: Sequence[RowResult], config: EvalConfig, *,
                metrics: MetricSuite | None = None) -> ResultsTable:
    """The paper-style table of ``rows`` on ``plan``'s clips.

    Means are over all scored frames of all clips (clips of one protocol have equal lengths, so this is
    also the mean of the per-clip means); FVD is the Fréchet distance between the I3D features of the
    row's clips and of the ground-truth clips. Per-clip means go into each row's settings
    (``per_clip``), so the record traces every number. ``metrics``: the suite the rows were scored
    with (default: :func:`describe_metrics` of ``config.metrics``, which loads no network).
    """
    if not rows:
        raise ValueError(f"{plan.name}: rows must hold at least one row")
    missing, weights = (dict(metrics.missing), metrics.weights) if metrics is not None else describe_metrics(config.metrics)
    result_rows = []
    for row in rows:
        values = _row_values(row, missing)
        per_clip = {score.key: {**{k: _json_value(v) for k, v in score.means().items()}, "frames": score.frames}
                    for score in row.scores}
        result_rows.append(ResultRow(row.label, values, row.checkpoint,
                                     {**row.settings, "frames_scored": sum(s.frames for s in row.scores),
                                      "per_clip": per_clip}))
    left_out = {column.key for column in EVAL_COLUMNS if column.name in missing}
    result_rows = [replace(row, values={k: v for k, v in row.values.items() if k not in left_out}) for row in result_rows]
    split = describe_split(f"{plan.dataset}/test", Path(plan.split_path), plan.split_count)
    title = f"{_TASK_TITLES[plan.task]}, {plan.dataset} ({len(plan.clips)} clips)"
    settings = {
        "protocol": plan.protocol_settings(),
        "clips": len(plan.clips),
        "clip_keys": [ref.key for ref in plan.clips],
        "clip_sources": list(plan.clip_sources),
        "missing_subjects": list(plan.missing_subjects),
        "notes": list(plan.notes),
        "missing_metrics": missing,
        "metric_weights": {key: asdict(ref) for key, ref in weights.items()},
        "lpips_network": config.metrics.lpips_network if LPIPS.key in weights else None,
        "max_clips": config.protocol.max_clips,
        "averaging": "mean over all scored frames; FVD over clips (I3D logits of the scored frames)",
        "person_box_min_side": BOX_MIN_SIDE,
    }
    return ResultsTable(title=title, dataset=plan.dataset, task=plan.task, columns=EVAL_COLUMNS,
                        rows=tuple(result_rows), split=split, settings=settings, legend=_legend(plan))


def write_tables(table: ResultsTable, out_dir: str | Path) -> TableFiles:
    """``<out_dir>/<dataset>_<task>.md`` / ``.csv`` / ``.json`` (atomic)."""
    return write_results_table(table, Path(out_dir), f"{table.dataset}_{table.task}")
