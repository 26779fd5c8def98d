"""``gas``: the project's command line.

    gas body build [--out DIR] [--force]         write the open body model (SMPL file format)
    gas synth thuman|2k2k --out DIR [-n N]       synthetic raw datasets in the real layouts
    gas preprocess DATASET RAW_ROOT OUT_DIR      run the Prefect flow ``preprocess`` here
    gas serve [--prefect-yaml FILE]              serve every deployment of prefect.yaml
    gas demo [--out DIR]                         the whole pipeline on synthetic data

Heavy imports happen inside each command so that ``gas --help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _cmd_body_build(args: argparse.Namespace) -> int:
    from pipelines.body import build_body_model

    folder = build_body_model(Path(args.out) if args.out else None, force=args.force)
    print(f"open body model (Anny-derived), not SMPL: {folder / 'SMPL_NEUTRAL.pkl'}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from pipelines.synth import synthesize_dataset

    refs = synthesize_dataset(args.kind, Path(args.out), num_subjects=args.num_subjects, seed=args.seed)
    print(f"{len(refs)} synthetic {args.kind} subjects in {args.out}")
    return 0


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from flows.preprocess import preprocess
    from pipelines.preprocess import load_preprocess_config

    config = load_preprocess_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    state = preprocess(dataset=args.dataset, raw_root=args.raw_root, out_dir=args.out_dir, config=config,
                       limit=args.limit, return_state=True)
    result = state.result(raise_on_failure=False)
    print(result if not isinstance(result, Exception) else f"preprocess failed: {result}")
    return 0 if state.is_completed() else 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from flows.deployments import serve_all

    serve_all(Path(args.prefect_yaml) if args.prefect_yaml else None, limit=args.limit)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(Path(args.out), num_subjects=args.num_subjects, preset=args.preset)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gas", description="GAS data pipeline and trainer")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    body = commands.add_parser("body", help="body model tools").add_subparsers(dest="body_command", required=True)
    build = body.add_parser("build", help="build the open (Anny-derived) body model in SMPL's file format")
    build.add_argument("--out", help="output folder (default: $GAS_CACHE_DIR/body_models/open)")
    build.add_argument("--force", action="store_true", help="rebuild even when the file exists")
    build.set_defaults(func=_cmd_body_build)

    synth = commands.add_parser("synth", help="write a synthetic raw dataset in the real on-disk layout")
    synth.add_argument("kind", choices=["thuman", "2k2k"])
    synth.add_argument("--out", required=True)
    synth.add_argument("-n", "--num-subjects", type=int, default=4)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_cmd_synth)

    pre = commands.add_parser("preprocess", help="run the preprocess flow in this process")
    pre.add_argument("dataset", choices=["thuman", "2k2k"])
    pre.add_argument("raw_root")
    pre.add_argument("out_dir")
    pre.add_argument("--config", help="YAML file with PreprocessConfig fields")
    pre.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    pre.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set orbit.width=512 (repeatable)")
    pre.add_argument("--limit", type=int, help="process at most this many subjects")
    pre.set_defaults(func=_cmd_preprocess)

    serve = commands.add_parser("serve", help="serve all deployments of prefect.yaml (no work pool needed)")
    serve.add_argument("--prefect-yaml")
    serve.add_argument("--limit", type=int, help="max concurrent flow runs")
    serve.set_defaults(func=_cmd_serve)

    demo = commands.add_parser("demo", help="run the whole pipeline on synthetic data")
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("-n", "--num-subjects", type=int, default=2, help="subjects per dataset")
    demo.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ValueError as error:
        print(f"gas: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
