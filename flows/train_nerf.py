"""Prefect flow ``train-nerf``: train the generalizable human NeRF on subject shards.

The flow only wires :mod:`pipelines.train_nerf`: it resolves the config (preset, optional YAML text,
``KEY=VALUE`` overrides), then either runs :func:`pipelines.train_nerf.train_nerf` in a task (one
process: CPU or one GPU) or, with ``processes > 1``, starts the same training under ``torchrun``
(:func:`pipelines.train_nerf.torchrun_command`) and fails with the tail of its output when it exits
non-zero. A summary table artifact records steps, losses and validation metrics.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from pipelines.train_nerf import (
    CHECKPOINT_DIRNAME,
    NeRFTrainConfig,
    config_to_yaml,
    load_train_nerf_config,
    torchrun_command,
    train_nerf,
)

__all__ = ["resolve_config", "train_nerf_flow"]

_TAIL_CHARACTERS = 4000


def resolve_config(preset: str = "paper", config_yaml: str | None = None, overrides: Sequence[str] = ()) -> NeRFTrainConfig:
    """``preset``, then the YAML text ``config_yaml`` (e.g. a checkpoint's ``config.yaml``), then ``overrides``."""
    if config_yaml is None:
        return load_train_nerf_config(preset=preset, overrides=overrides)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(config_yaml)
        return load_train_nerf_config(path, preset=preset, overrides=overrides)


@task(name="train-nerf-in-process")
def _train_task(config: NeRFTrainConfig, shards: str, out_dir: str, val_shards: str | None, resume: bool) -> dict[str, Any]:
    return asdict(train_nerf(config, shards, out_dir, val_shards=val_shards, resume=resume))


@task(name="train-nerf-torchrun")
def _torchrun_task(config: NeRFTrainConfig, shards: str, out_dir: str, val_shards: str | None, resume: bool,
                   processes: int) -> dict[str, Any]:
    launch = Path(out_dir) / "launch"
    launch.mkdir(parents=True, exist_ok=True)
    config_file = launch / "config.yaml"
    config_file.write_text(config_to_yaml(config))
    argv = [shards, out_dir, "--config", str(config_file)]
    if val_shards:
        argv += ["--val-shards", val_shards]
    if not resume:
        argv.append("--no-resume")
    command = torchrun_command(argv, processes=processes, python=sys.executable)
    get_run_logger().info("starting %s", " ".join(command))
    completed = subprocess.run(command, capture_output=True, text=True)
    output = (completed.stdout + completed.stderr)[-_TAIL_CHARACTERS:]
    if completed.returncode != 0:
        raise RuntimeError(f"torchrun exited with {completed.returncode}:\n{output}")
    return {"checkpoint": str(Path(out_dir) / CHECKPOINT_DIRNAME), "output_tail": output}


@flow(name="train-nerf", log_prints=False)
def train_nerf_flow(shards: str, out_dir: str, preset: str = "paper", config_yaml: str | None = None,
                    overrides: list[str] | None = None, val_shards: str | None = None, resume: bool = True,
                    processes: int = 1) -> dict[str, Any]:
    """Train the NeRF on ``shards`` into ``out_dir`` (``checkpoint/``, ``tensorboard/``); resumes by default.

    ``processes`` > 1 runs that many data-parallel processes on this machine through torchrun.
    """
    config = resolve_config(preset, config_yaml, overrides or ())
    if processes > 1:
        summary = _torchrun_task(config, shards, out_dir, val_shards, resume, processes)
        rows = [{"checkpoint": summary["checkpoint"], "processes": processes}]
    else:
        summary = _train_task(config, shards, out_dir, val_shards, resume)
        rows = [{"steps": summary["steps"], "steps this run": summary["steps_this_run"],
                 "wall s": round(summary["wall_s"], 1), "lpips used": summary["lpips_used"],
                 **{f"loss {k}": round(v, 5) for k, v in summary["losses"].items()},
                 **{f"val {k}": round(v, 4) for k, v in summary["validation"].items()}}]
    create_table_artifact(key="train-nerf", table=rows, description=f"train-nerf into {out_dir}")
    return summary
