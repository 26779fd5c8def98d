"""Prefect flow ``evaluate``: diffusion checkpoints x test splits -> paper-style results tables.

The flow only wires the steps of :mod:`pipelines.evaluate`: one planning task per split file (which
clips the protocol scores), one task for the "NeRF renderings" row per split (Table 4), one task per
checkpoint x split (never one per frame), and one task per split that writes ``<out>/<dataset>_<task>``
``.md`` / ``.csv`` / ``.json`` and a Prefect table artifact (key ``eval-<dataset>-<task>``, e.g.
``eval-thuman-novel-view``). A failing row (an unreadable checkpoint, say) does not stop the others:
the tables are written with the rows that were scored and the run ends ``Failed`` naming the failure.
Per-clip results are cached in the output folder, so a rerun scores only what is missing.

    gas eval --clips data/shards/clips_test --split splits/thuman_test.json --split splits/2k2k_test.json \\
        --checkpoint Ours=runs/gas/final --checkpoint "w.o. NeRF=runs/ablation-nerf/final" --out results/ \\
        --set metrics.lpips_weights=models/vgg16_features.pth --set metrics.i3d_weights=models/i3d_pretrained_400.pt
    prefect deployment run evaluate/evaluate --param out_dir=results/ ...
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from pipelines.evaluate import (
    NERF_ROW,
    EvalCheckpoint,
    EvalConfig,
    EvalPlan,
    RowResult,
    build_parser,
    build_table,
    load_eval_config,
    load_metrics,
    parse_checkpoint_argument,
    parse_eval_arguments,
    plan_evaluation,
    resolve_eval_device,
    score_checkpoint_row,
    score_nerf_row,
    write_tables,
)


__all__ = ["evaluate_flow", "artifact_key", "main_from_args"]


def artifact_key(plan: EvalPlan) -> str:
    """``eval-<dataset>-<task>`` in the characters Prefect allows in artifact keys."""
    return f"eval-{plan.dataset}-{plan.task}".lower().replace("_", "-")


@task(name="plan-evaluation", cache_policy=NO_CACHE, task_run_name="plan-{split}")
def plan_task(clips: list[str], split: str, config: EvalConfig) -> EvalPlan:
    return plan_evaluation(clips, split, config)


@task(name="score-nerf-renderings", cache_policy=NO_CACHE, task_run_name="nerf-{plan.dataset}-{plan.task}")
def nerf_row_task(plan: EvalPlan, out_dir: str, config: EvalConfig) -> RowResult:
    metrics = load_metrics(config.metrics, resolve_eval_device(config.device))
    return score_nerf_row(plan, out_dir, metrics)


@task(name="score-checkpoint", cache_policy=NO_CACHE, task_run_name="{checkpoint.name}-{plan.dataset}-{plan.task}")
def checkpoint_row_task(plan: EvalPlan, checkpoint: EvalCheckpoint, out_dir: str, config: EvalConfig) -> RowResult:
    logger = get_run_logger()
    metrics = load_metrics(config.metrics, resolve_eval_device(config.device))
    row = score_checkpoint_row(plan, checkpoint, out_dir, config, metrics,
                               on_clip=lambda ref, cached: logger.info("%s %s", "cached" if cached else "scored", ref.key))
    logger.info("%s on %s: %d clips scored, %d cached", checkpoint.name, plan.name, row.scored, row.cached)
    return row


@task(name="write-table", cache_policy=NO_CACHE, task_run_name="table-{plan.dataset}-{plan.task}")
def table_task(plan: EvalPlan, rows: list[RowResult], out_dir: str, config: EvalConfig) -> dict[str, Any]:
    table = build_table(plan, rows, config)
    files = write_tables(table, out_dir)
    artifact_rows = [{"method": row.method, **{column.heading: row.values.get(column.key) for column in table.columns},
                      "checkpoint": row.checkpoint.path if row.checkpoint else ""} for row in table.rows]
    create_table_artifact(key=artifact_key(plan), table=artifact_rows,
                          description=table.to_markdown() + f"\nFiles: `{files.markdown}`, `{files.csv}`, `{files.record}`")
    return {"table": table.title, "markdown": str(files.markdown), "csv": str(files.csv), "record": str(files.record),
            "rows": {row.method: dict(row.values) for row in table.rows},
            "missing_metrics": dict(table.settings["missing_metrics"])}


@flow(name="evaluate", log_prints=False)
def evaluate_flow(
    clips: list[str],
    splits: list[str],
    out_dir: str,
    checkpoints: list[str] | None = None,
    config: EvalConfig | None = None,
    preset: str = "paper",
    overrides: list[str] | None = None,
) -> Any:
    """Score ``checkpoints`` (``"NAME=PATH"`` or ``"PATH"``) and the NeRF renderings on each split's clips.

    ``clips``: clip shards of the test subjects; ``splits``: split files; ``config``: an
    :class:`EvalConfig`, else ``preset`` + ``overrides`` (``["sampling.num_steps=50"]``).
    Returns a summary per ``<dataset>_<task>`` (tables written, row values, missing metrics).
    """
    logger = get_run_logger()
    config = config or load_eval_config(preset=preset, overrides=tuple(overrides or ()))
    parsed = [parse_checkpoint_argument(item) for item in (checkpoints or [])]
    names = [c.name for c in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"checkpoint names must be distinct, got {names}")
    plans = [plan_task(list(clips), split, config) for split in splits]
    failures: list[str] = []
    summary: dict[str, Any] = {}
    for plan in plans:
        logger.info("%s: %d clips (%d test ids, %d without clips)", plan.name, len(plan.clips), plan.split_count,
                    len(plan.missing_subjects))
        rows: list[RowResult] = []
        jobs = [(NERF_ROW, nerf_row_task, (plan, out_dir, config))] if config.protocol.include_nerf_row else []
        jobs += [(c.name, checkpoint_row_task, (plan, c, out_dir, config)) for c in parsed]
        for label, job, arguments in jobs:
            state = job(*arguments, return_state=True)
            result = state.result(raise_on_failure=False)
            if state.is_completed():
                rows.append(result)
            else:
                failures.append(f"{plan.name} / {label}: {result}")
        if rows:
            summary[plan.name] = table_task(plan, rows, out_dir, config)
    if failures:
        return Failed(message=f"{len(failures)} row(s) failed: " + "; ".join(failures), data=summary)
    return summary


def main_from_args(argv: Sequence[str] | None = None) -> int:
    """``gas eval ...``: run the flow ``evaluate`` in this process (``--no-prefect``: the plain pipeline).

    Prints each table; exit 0, 1 when a row failed, 2 on bad arguments.
    """
    parser = build_parser()
    parser.add_argument("--no-prefect", action="store_true", help="run without Prefect (no flow run, no artifacts)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.no_prefect:
        from pipelines.evaluate import main_from_args as plain_main

        return plain_main([item for item in (argv if argv is not None else sys.argv[1:]) if item != "--no-prefect"])
    try:
        config, checkpoints = parse_eval_arguments(args)
    except ValueError as error:
        print(f"gas eval: error: {error}", file=sys.stderr)
        return 2
    state = evaluate_flow(clips=args.clips, splits=args.split, out_dir=args.out,
                          checkpoints=[f"{c.name}={c.path}" for c in checkpoints], config=config, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict):
        for entry in result.values():
            print(Path(entry["markdown"]).read_text())
    if not state.is_completed():
        print(f"gas eval: {state.message or result}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main_from_args())
