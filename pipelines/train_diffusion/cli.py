"""Command line of one training rank: ``python -m pipelines.train_diffusion`` / ``torchrun ... -m pipelines.train_diffusion``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from pipelines.train_diffusion.config import load_train_config
from pipelines.train_diffusion.loop import train

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipelines.train_diffusion`` / ``torchrun ... -m pipelines.train_diffusion``: one rank of a training run."""
    description = sys.modules[__package__].__doc__.splitlines()[0]  # the package docstring's first line
    parser = argparse.ArgumentParser(prog="python -m pipelines.train_diffusion", description=description)
    parser.add_argument("--config", help="YAML file with DiffusionTrainConfig fields (e.g. a run's config.yaml)")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set data.clips=[data/clips] (repeatable)")
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s")
    try:
        config = load_train_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = train(config)
    logger.info("done: %d steps, final loss %s, model %s", result.step,
                f"{result.losses[-1]:.4f}" if result.losses else "n/a", result.final_dir)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0
