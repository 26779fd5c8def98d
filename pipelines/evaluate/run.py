"""The whole evaluation (:func:`evaluate`): every checkpoint and the NeRF row on every split, one table per split."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gas_core.metrics import ResultsTable, describe_checkpoint
from gas_core.metrics.table import TableFiles
from pipelines.evaluate.checkpoints import CheckpointLoader, EvalCheckpoint
from pipelines.evaluate.config import NERF_ROW, EvalConfig, resolve_eval_device
from pipelines.evaluate.metrics import load_metrics
from pipelines.evaluate.protocols import ClipRef, plan_evaluation
from pipelines.evaluate.rows import RowResult, score_checkpoint_row, score_nerf_row
from pipelines.evaluate.tables import build_table, write_tables

logger = logging.getLogger(__name__)


@dataclass
class EvalReport:
    """What :func:`evaluate` did: per dataset/task table and files, and clips scored vs cached per row."""

    tables: dict[str, ResultsTable] = field(default_factory=dict)
    files: dict[str, TableFiles] = field(default_factory=dict)
    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for name, table in self.tables.items():
            lines.append(table.to_markdown())
            counts = ", ".join(f"{row}: {scored} scored, {cached} cached" for row, (scored, cached) in self.counts[name].items())
            lines.append(f"({counts}; files {self.files[name].markdown}, .csv, .json)\n")
        return "\n".join(lines)


def evaluate(clips: str | Path | Sequence[str | Path], splits: Sequence[str | Path], checkpoints: Sequence[EvalCheckpoint],
             out_dir: str | Path, config: EvalConfig) -> EvalReport:
    """Score every checkpoint (and the NeRF row) on every split's clips and write one table per split.

    Each checkpoint is hashed once and loaded at most once (only when some clip is not cached).

    Raises:
        ValueError: no checkpoint and no NeRF row, duplicate names, or a split without clips.
    """
    names = [c.name for c in checkpoints]
    if len(set(names)) != len(names):
        raise ValueError(f"checkpoint names must be distinct, got {names}")
    if not checkpoints and not config.protocol.include_nerf_row:
        raise ValueError("checkpoints is empty and protocol.include_nerf_row is false: nothing to score")
    if not splits:
        raise ValueError("splits must name at least one split file")
    device = resolve_eval_device(config.device)
    metrics = load_metrics(config.metrics, device)
    plans = [plan_evaluation(clips, split, config) for split in splits]
    refs = {c.name: describe_checkpoint(Path(c.path)) for c in checkpoints}
    report = EvalReport()
    rows: dict[str, list[RowResult]] = {plan.name: [] for plan in plans}

    def progress(row: str) -> Callable[[ClipRef, bool], None]:
        return lambda ref, cached: logger.info("%s: %s %s", row, "cached" if cached else "scored", ref.key)

    if config.protocol.include_nerf_row:
        for plan in plans:
            rows[plan.name].append(score_nerf_row(plan, out_dir, metrics, on_clip=progress(NERF_ROW)))
    for checkpoint in checkpoints:
        loader = CheckpointLoader(checkpoint, device, base_svd_dir=config.model.base_svd_dir)  # one model at a time
        for plan in plans:
            rows[plan.name].append(score_checkpoint_row(plan, checkpoint, out_dir, config, metrics, loader=loader,
                                                        checkpoint_ref=refs[checkpoint.name],
                                                        on_clip=progress(checkpoint.name)))
    for plan in plans:
        table = build_table(plan, rows[plan.name], config, metrics=metrics)
        report.tables[plan.name] = table
        report.files[plan.name] = write_tables(table, out_dir)
        report.counts[plan.name] = {row.label: (row.scored, row.cached) for row in rows[plan.name]}
    return report
