"""Prefect flow ``bake-nerf``: subject shards + a NeRF checkpoint -> view clip shards for the diffusion trainer.

The flow only wires steps of :mod:`pipelines.bake_nerf`: one planning task, then one task per input
shard of this rank (never one per frame), a progress artifact updated after every subject and a
table artifact of every subject's outcome. The run ends ``Failed`` naming the bad input (a truncated
shard, a subject that fails to decode) after everything else is written.

On a GPU node it also runs as a plain script, without a Prefect server (``--rank``/``--world-size``
default to torchrun's ``RANK``/``WORLD_SIZE``)::

    python flows/bake_nerf.py --subjects data/shards/subjects --out data/shards/clips \\
        --checkpoint runs/nerf/checkpoint-200000 --device cuda
    torchrun --nproc-per-node 8 flows/bake_nerf.py --subjects ... --out ... --checkpoint ...
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from pipelines.bake_nerf import (
    BakeConfig,
    BakePlan,
    BakeReport,
    ClipBaker,
    InputShard,
    ShardBakeReport,
    bake,
    bake_input_shard,
    config_with_device,
    load_bake_config,
    plan_bake,
    skip_input_shard,
)

__all__ = ["bake_nerf", "main"]


@task(name="plan-bake", cache_policy=NO_CACHE)
def plan_task(subjects: str, out_dir: str, checkpoint: str, config: BakeConfig, rank: int | None,
              world_size: int | None, force_mixed: bool) -> BakePlan:
    return plan_bake(subjects, out_dir, checkpoint, config, rank=rank, world_size=world_size, force_mixed=force_mixed)


@task(name="bake-input-shard", cache_policy=NO_CACHE, task_run_name="{shard.prefix}")
def bake_shard_task(baker: ClipBaker, shard: InputShard, plan: BakePlan, progress: "_Progress") -> ShardBakeReport:
    return bake_input_shard(baker, shard, plan, on_subject=progress.subject_done)


class _Progress:
    """Keeps the run's progress artifact up to date: subjects done of those known, else input shards done."""

    def __init__(self, plan: BakePlan) -> None:
        self.total_subjects = plan.known_subjects
        self.total_shards = max(1, len(plan.todo))
        self.subjects = 0
        self.shards = 0
        unit = "subjects" if self.total_subjects is not None else "input shards"
        self.artifact_id = create_progress_artifact(
            progress=0.0, description=f"bake-nerf rank {plan.rank}/{plan.world_size}: {unit} done (%)")

    def _update(self) -> None:
        if self.total_subjects:
            value = 100.0 * self.subjects / self.total_subjects
        else:
            value = 100.0 * self.shards / self.total_shards
        update_progress_artifact(self.artifact_id, progress=min(100.0, value))

    def subject_done(self, _report: Any) -> None:
        self.subjects += 1
        self._update()

    def shard_done(self) -> None:
        self.shards += 1
        self._update()


@flow(name="bake-nerf", log_prints=False)
def bake_nerf(
    subjects: str,
    out_dir: str,
    checkpoint: str,
    config: BakeConfig = BakeConfig(),
    rank: int | None = None,
    world_size: int | None = None,
    force_mixed: bool = False,
) -> Any:
    """Bake this rank's share of the subject shards ``subjects`` into clip shards in ``out_dir``.

    ``checkpoint``: a NeRF ``save_pretrained`` folder or training checkpoint. ``rank`` / ``world_size``
    default to ``RANK`` / ``WORLD_SIZE`` (else 0 / 1). Clips already in ``out_dir``'s manifest are skipped;
    a folder baked with another checkpoint is refused unless ``force_mixed``.
    """
    logger = get_run_logger()
    plan = plan_task(subjects, out_dir, checkpoint, config, rank, world_size, force_mixed)
    logger.info("rank %d/%d: %d of %d input shards, %d already baked; checkpoint %s (sha256 %s)",
                plan.rank, plan.world_size, len(plan.shards), plan.total_input_shards,
                len(plan.shards) - len(plan.todo), plan.checkpoint.path, plan.checkpoint.sha256[:12])
    report = BakeReport(rank=plan.rank, world_size=plan.world_size)
    report.shards.extend(skip_input_shard(shard, plan) for shard in plan.shards if shard.done)
    progress = _Progress(plan)
    if plan.todo:
        with ClipBaker.open(plan.checkpoint, config) as baker:
            for shard in plan.todo:
                report.shards.append(bake_shard_task(baker, shard, plan, progress))
                progress.shard_done()
            report.frames = baker.timings.frames
    update_progress_artifact(progress.artifact_id, progress=100.0)
    create_table_artifact(key=f"bake-nerf-rank-{plan.rank}",
                          table=report.rows() or [{"key": "-", "status": "nothing to do"}],
                          description=f"bake-nerf: {report.summary()}")
    summary = {"rank": plan.rank, "world_size": plan.world_size, "clips_written": report.clips_written,
               "clips_skipped": report.clips_skipped, "frames": report.frames,
               "output_shards": [name for shard in report.shards for name in shard.output_shards],
               "problems": report.problems, "checkpoint": plan.checkpoint.path,
               "checkpoint_sha256": plan.checkpoint.sha256}
    if report.problems:
        return Failed(message=f"{len(report.problems)} problem(s): " + "; ".join(report.problems), data=summary)
    return summary


# --------------------------------------------------------------------------------------- script entry
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bake_nerf", description="Bake NeRF renderings and SMPL normal maps into clip shards (no Prefect server).")
    parser.add_argument("--subjects", required=True, help="subject shards (view clips) or video shards (pose clips): folder, manifest.json, glob or .tar files")
    parser.add_argument("--out", required=True, help="output folder of the clip shards")
    parser.add_argument("--checkpoint", required=True, help="NeRF save_pretrained folder or training checkpoint")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--config", help="YAML file with BakeConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set clip.width=256 (repeatable)")
    parser.add_argument("--device", help="torch device (default: config render.device; 'cuda' uses LOCAL_RANK)")
    parser.add_argument("--rank", type=int, help="this process's rank (default: $RANK or 0)")
    parser.add_argument("--world-size", type=int, help="number of ranks (default: $WORLD_SIZE or 1)")
    parser.add_argument("--force-mixed", action="store_true",
                        help="allow adding clips to a folder baked with another NeRF checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Script entry: bake this rank's share in this process; exit 0, 1 (bad input reported) or 2 (bad arguments)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_bake_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
        config = config_with_device(config, args.device)
        report = bake(args.subjects, args.out, args.checkpoint, config, rank=args.rank, world_size=args.world_size,
                      force_mixed=args.force_mixed, progress=False if args.no_progress else None)
    except ValueError as error:
        print(f"bake_nerf: error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    for line in report.problems:
        print(f"  problem: {line}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
