"""``gas eval`` without Prefect (also ``python -m pipelines.evaluate``; :mod:`flows.evaluate` shares its parser)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.evaluate.checkpoints import EvalCheckpoint, parse_checkpoint_argument
from pipelines.evaluate.config import EvalConfig, load_eval_config
from pipelines.evaluate.run import evaluate


def build_parser(prog: str = "gas eval") -> argparse.ArgumentParser:
    """Arguments of ``gas eval`` (shared with :mod:`flows.evaluate`)."""
    parser = argparse.ArgumentParser(prog=prog, description="Score diffusion checkpoints on the test splits "
                                     "(PSNR, SSIM, LPIPS, FVD) and write paper-style tables.")
    parser.add_argument("--clips", action="append", required=True,
                        help="clip shards of the test subjects: folder, manifest, glob or .tar (repeatable)")
    parser.add_argument("--split", action="append", required=True, help="split file, e.g. splits/thuman_test.json (repeatable)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="diffusion checkpoint, optionally named (a table row; repeatable); a folder of the "
                        "official release (unet.pth, pose_net.pth, nerf_net.pth) needs --set model.base_svd_dir=PATH")
    parser.add_argument("--out", required=True, help="output folder of the tables and the per-clip cache")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--config", help="YAML file with EvalConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set metrics.lpips_weights=models/vgg16.pth (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser


def parse_eval_arguments(args: argparse.Namespace) -> tuple[EvalConfig, list[EvalCheckpoint]]:
    """The config and checkpoints of parsed ``gas eval`` arguments (ValueError on bad values)."""
    config = load_eval_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    return config, [parse_checkpoint_argument(item) for item in args.checkpoint]


def main_from_args(argv: Sequence[str] | None = None) -> int:
    """``gas eval ...`` without Prefect: prints the tables; exit 0, or 2 on bad arguments or inputs."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config, checkpoints = parse_eval_arguments(args)
        report = evaluate(args.clips, args.split, checkpoints, args.out, config)
    except (ValueError, FileNotFoundError) as error:
        print(f"gas eval: error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
