"""Prefect flow ``train-diffusion``: start the diffusion trainer under ``torchrun`` and stream its logs.

The flow resolves a :class:`pipelines.train_diffusion.DiffusionTrainConfig` (preset, the YAML text of
a config, ``KEY=VALUE`` overrides), writes it to ``<out_dir>/launch/config-<run>.yaml``, starts
``python -m torch.distributed.run ... -m pipelines.train_diffusion --config that-file`` as a
subprocess and forwards every line it prints to the run logger. It fails, with the last lines of
the log, when torchrun exits non-zero; it returns the run folder, newest checkpoint and final model.

One flow run drives one node. For several nodes, submit one run per node with the same
``rdzv_endpoint`` (host:port of node 0) and ``rdzv_id`` (:func:`submit_training` does it when
``nnodes > 1``); the work pool must place them on different machines. ``out_dir`` must be shared
storage visible to every node (rank 0 writes checkpoints, every rank reads them on resume).

:func:`submit_training` runs the flow here (``local=True``) or asks a Prefect server to run the
deployment ``train-diffusion/train-diffusion`` on a GPU work pool (prefect's ``run_deployment``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import uuid
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from prefect import flow, get_run_logger
from prefect.exceptions import MissingContextError

from pipelines.train_diffusion import (
    DiffusionTrainConfig,
    config_to_yaml,
    latest_checkpoint,
    load_train_config,
)

__all__ = [
    "DEPLOYMENT_NAME",
    "resolve_config",
    "torchrun_command",
    "stream_process",
    "train_diffusion",
    "submit_training",
]

DEPLOYMENT_NAME = "train-diffusion/train-diffusion"
_TAIL_LINES = 40


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def resolve_config(*, preset: str = "paper", config_yaml: str | None = None, overrides: Sequence[str] = (),
                   out_dir: str | None = None) -> DiffusionTrainConfig:
    """``preset``, then the YAML text ``config_yaml`` (e.g. a run's ``config.yaml``), then ``overrides``, then ``out_dir``."""
    if config_yaml is None:
        config = load_train_config(preset=preset, overrides=overrides)
    else:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "config.yaml"
            path.write_text(config_yaml)
            config = load_train_config(path, preset=preset, overrides=overrides)
    return replace(config, out_dir=out_dir) if out_dir else config


def torchrun_command(config_file: str | Path, *, nproc_per_node: int, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None, rdzv_id: str | None = None,
                     python: str = sys.executable) -> list[str]:
    """The ``torch.distributed.run`` command line of one node of a training run.

    One node: ``--standalone`` (a free local port). Several: c10d rendezvous at ``rdzv_endpoint``
    (``host:port`` of node 0) under ``rdzv_id`` (same on every node).
    """
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    if nnodes < 1 or not 0 <= node_rank < nnodes:
        raise ValueError(f"need nnodes >= 1 and 0 <= node_rank < nnodes, got node_rank {node_rank} of {nnodes}")
    command = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc_per_node)]
    if nnodes == 1:
        command.append("--standalone")
    else:
        if not rdzv_endpoint or not rdzv_id:
            raise ValueError("rdzv_endpoint (host:port of node 0) and rdzv_id are required when nnodes > 1")
        command += ["--nnodes", str(nnodes), "--node_rank", str(node_rank), "--rdzv_backend", "c10d",
                    "--rdzv_endpoint", rdzv_endpoint, "--rdzv_id", rdzv_id]
    return command + ["-m", "pipelines.train_diffusion", "--config", str(config_file)]


def stream_process(command: Sequence[str], emit: Callable[[str], None], *, cwd: str | Path | None = None,
                   env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``command``, passing each line of its combined stdout/stderr to ``emit`` as it comes.

    Returns the exit code and the last lines. Interrupting the caller terminates the process.
    """
    environment = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    process = subprocess.Popen(list(command), cwd=cwd, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        assert process.stdout is not None  # for type checkers: PIPE was requested
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            emit(line)
        return process.wait(), list(tail)
    except BaseException:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        raise


def _default_nproc() -> int:
    import torch

    return max(1, torch.cuda.device_count())


@flow(name="train-diffusion", log_prints=False)
def train_diffusion(
    preset: str = "paper",
    config_yaml: str | None = None,
    overrides: list[str] | None = None,
    out_dir: str | None = None,
    nproc_per_node: int | None = None,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
) -> dict[str, Any]:
    """Train the GAS video diffusion model with torchrun on this worker's GPUs (or CPUs).

    Config: ``preset`` (``paper`` / ``tiny``), then ``config_yaml`` (YAML text of config fields),
    then ``overrides`` (``["data.clips=[s3://bucket/clips]", "max_steps=1000"]``), then ``out_dir``.
    ``nproc_per_node``: processes on this node (default: the GPU count, or 1).
    """
    logger = _logger()
    config = resolve_config(preset=preset, config_yaml=config_yaml, overrides=overrides or (), out_dir=out_dir)
    nproc = nproc_per_node or _default_nproc()
    launch_dir = Path(config.out_dir) / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    config_file = launch_dir / f"config-{uuid.uuid4().hex[:8]}.yaml"
    config_file.write_text(config_to_yaml(config))
    command = torchrun_command(config_file, nproc_per_node=nproc, nnodes=nnodes, node_rank=node_rank,
                               rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id)
    logger.info("starting: %s", " ".join(command))
    repo_root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
    return_code, tail = stream_process(command, logger.info, cwd=repo_root, env=env)
    if return_code != 0:
        raise RuntimeError(f"torchrun exited with code {return_code}; last lines:\n" + "\n".join(tail))
    checkpoint = latest_checkpoint(config.out_dir)
    final_dir = Path(config.out_dir) / "final"
    return {"out_dir": config.out_dir, "config_file": str(config_file),
            "latest_checkpoint": None if checkpoint is None else str(checkpoint),
            "final_dir": str(final_dir) if final_dir.is_dir() else None}


def submit_training(config: DiffusionTrainConfig, *, local: bool = False, deployment: str = DEPLOYMENT_NAME,
                    nproc_per_node: int | None = None, nnodes: int = 1, rdzv_endpoint: str | None = None,
                    wait: bool = False) -> list[Any]:
    """Run training through the ``train-diffusion`` flow: here (``local``), or as ``deployment`` runs.

    The resolved config travels as YAML text (``config_yaml``), so the worker needs no file of ours.
    Local: the flow runs in this process (it blocks) and its result dict is returned in a list.
    Remote: one flow run per node (``nnodes`` > 1 needs ``rdzv_endpoint``, node 0's host:port);
    returns the flow runs (``wait`` blocks until they finish).
    """
    parameters: dict[str, Any] = {"preset": "paper", "config_yaml": config_to_yaml(config), "overrides": [],
                                  "nproc_per_node": nproc_per_node}
    if local:
        if nnodes != 1:
            raise ValueError("local runs are single-node; use nnodes=1")
        return [train_diffusion(**parameters)]
    from prefect.deployments import run_deployment

    if nnodes > 1 and not rdzv_endpoint:
        raise ValueError("rdzv_endpoint (host:port of node 0) is required when nnodes > 1")
    rdzv_id = uuid.uuid4().hex[:12] if nnodes > 1 else None
    runs = []
    for node_rank in range(nnodes):
        node_parameters = dict(parameters, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id)
        runs.append(run_deployment(name=deployment, parameters=node_parameters, timeout=None if wait else 0))
    return runs


# ============================================================================================ command line
# Handlers of ``gas train``, ``gas train submit`` and ``gas cache-latents`` (parsers in flows/cli.py).
def _config_from_args(args: Any) -> DiffusionTrainConfig:
    return load_train_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)


def cli_train(args: Any) -> int:
    """``gas train``: one process in this interpreter, or ``torchrun`` with ``--nproc-per-node`` > 1 (no Prefect)."""
    from pipelines.train_diffusion import train

    config = _config_from_args(args)
    nproc = args.nproc_per_node or 1
    if nproc == 1:
        result = train(config)
        print(f"{result.step} steps; final loss {result.losses[-1]:.4f}; model {result.final_dir}" if result.losses
              else f"nothing to do: already at step {result.step} (max_steps {config.max_steps})")
        return 0
    launch_dir = Path(config.out_dir) / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    config_file = launch_dir / f"config-{uuid.uuid4().hex[:8]}.yaml"
    config_file.write_text(config_to_yaml(config))
    return_code, _ = stream_process(torchrun_command(config_file, nproc_per_node=nproc), print)
    return return_code


def cli_submit(args: Any) -> int:
    """``gas train submit``: the ``train-diffusion`` flow, locally or as deployment runs."""
    config = _config_from_args(args)
    runs = submit_training(config, local=args.local, deployment=args.deployment, nproc_per_node=args.nproc_per_node,
                           nnodes=args.nnodes, rdzv_endpoint=args.rdzv_endpoint, wait=args.wait)
    for run in runs:
        print(run if isinstance(run, dict) else f"flow run {run.name} ({run.id}): {run.state.name if run.state else 'scheduled'}")
    return 0


def cli_cache_latents(args: Any) -> int:
    """``gas cache-latents IN OUT``: see :func:`pipelines.cache_latents.cache_clip_latents`."""
    from pipelines.cache_latents import cache_clip_latents, load_cache_config

    index, _, count = args.part.partition("/")
    report = cache_clip_latents(args.in_dir, args.out_dir, load_cache_config(preset=args.preset, overrides=args.set),
                                device=args.device, part_index=int(index), part_count=int(count or 1))
    print(report.summary())
    return 0
