"""The ``gas train-nerf`` command line (also ``python -m pipelines.train_nerf``, under torchrun too)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from pipelines.train_nerf.config import load_train_nerf_config
from pipelines.train_nerf.loop import train_nerf


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``gas train-nerf`` (also used by ``python -m pipelines.train_nerf`` under torchrun)."""
    parser = parser or argparse.ArgumentParser(prog="gas train-nerf", description="train the generalizable human NeRF")
    parser.add_argument("shards", help="subject shards: folder, manifest.json, glob or brace pattern")
    parser.add_argument("out_dir", help="run folder (checkpoint/, tensorboard/)")
    parser.add_argument("--preset", choices=("tiny", "paper"), default="paper")
    parser.add_argument("--config", default=None, help="YAML file of config fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. optim.max_steps=100 (repeatable)")
    parser.add_argument("--val-shards", default=None, help="validation subject shards (default: training shards)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    return parser


def main_from_args(argv: Sequence[str] | None = None) -> int:
    """``gas train-nerf SHARDS OUT_DIR [--preset tiny|paper] [--config F] [--set K=V ...] [--val-shards S] [--no-resume]``.

    Runs in this process; under ``torchrun`` every process runs it (``python -m pipelines.train_nerf``).
    """
    return run_from_namespace(build_arg_parser().parse_args(argv))


def run_from_namespace(args: argparse.Namespace) -> int:
    """Run training from parsed :func:`build_arg_parser` arguments (for a CLI that adds them to a sub-command)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_train_nerf_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    report = train_nerf(config, args.shards, args.out_dir, val_shards=args.val_shards, resume=not args.no_resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {report.steps_this_run} steps ({report.steps} in total) in {report.wall_s:.0f} s; "
              f"checkpoint {report.checkpoint}; losses {report.losses}; validation {report.validation}")
    return 0


def torchrun_command(argv: Sequence[str], *, processes: int, python: str = "python") -> list[str]:
    """The command that runs :func:`main_from_args` with ``argv`` in ``processes`` data-parallel processes."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "pipelines.train_nerf", *argv]
