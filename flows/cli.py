"""``gas``: the project's command line.

    gas body build [--out DIR] [--force]         write the open body model (SMPL file format)
    gas synth thuman|2k2k|tiktok|mvhumannet --out DIR [-n N]   synthetic raw datasets in the real layouts
    gas preprocess DATASET RAW_ROOT OUT_DIR      run the Prefect flow ``preprocess`` here (scans or videos)
    gas train-nerf SHARDS OUT_DIR [...]          train the generalizable NeRF (stage 1)
    gas bake-nerf --subjects S --out D --checkpoint C [...]   bake clip shards (NeRF + normal maps)
    gas cache-latents IN_DIR OUT_DIR [...]       add cached VAE/CLIP latents to clip shards
    gas train [--preset tiny|paper] [--set K=V]  train the GAS video diffusion model (stage 2)
    gas train submit [--local] [...]             run training through the Prefect flow train-diffusion
    gas splits write --out DIR [--root DS=DIR]   the paper's test split files
    gas generate IMAGE --out DIR [...]           novel views (orbit) or poses from one image
    gas eval --clips C --split S --checkpoint NAME=PATH --out D   score checkpoints, write tables (flow evaluate)
    gas serve [--prefect-yaml FILE]              serve every deployment of prefect.yaml
    gas app [--data-root DIR] [--nerf C --diffusion C]   browser app: generate from a photo, browse shards
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
    if args.kind in ("tiktok", "mvhumannet"):
        from pipelines.synth_video import synth_video_main

        extra = ["--frames", str(args.frames), "--cameras", str(args.cameras), "--size", str(args.size),
                 "--fps", str(args.fps)] + (["--mp4"] if args.mp4 else [])
        return synth_video_main([args.kind, "--out", args.out, "-n", str(args.num_subjects), "--seed", str(args.seed),
                                 *extra])
    from pipelines.synth import synthesize_dataset

    refs = synthesize_dataset(args.kind, Path(args.out), num_subjects=args.num_subjects, seed=args.seed)
    print(f"{len(refs)} synthetic {args.kind} subjects in {args.out}")
    return 0


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from flows.preprocess import preprocess
    from pipelines.preprocess import load_preprocess_config

    config = load_preprocess_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    state = preprocess(dataset=args.dataset, raw_root=args.raw_root, out_dir=args.out_dir, config=config,
                       limit=args.limit, dask_address=args.dask_address, return_state=True)
    result = state.result(raise_on_failure=False)
    print(result if not isinstance(result, Exception) else f"preprocess failed: {result}")
    return 0 if state.is_completed() else 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from flows.deployments import serve_all

    serve_all(Path(args.prefect_yaml) if args.prefect_yaml else None, limit=args.limit)
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    from pipelines.app import AppSettings, close_app, launch_app
    from pipelines.generate import load_generate_config

    if (args.nerf is None) != (args.diffusion is None):
        raise ValueError("--nerf and --diffusion go together (generation needs both checkpoints)")
    config = load_generate_config(args.config, preset=args.preset, overrides=args.set)
    settings = AppSettings(host=args.host, port=args.port, data_roots=tuple(args.data_root), out_dir=Path(args.out),
                           nerf=Path(args.nerf) if args.nerf else None,
                           diffusion=Path(args.diffusion) if args.diffusion else None, config=config,
                           max_upload_mb=args.max_upload_mb)
    blocks, url = launch_app(settings)
    print(f"GAS app on {url} (Ctrl+C stops it)", flush=True)
    try:
        blocks.block_thread()
    finally:
        close_app(blocks)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(Path(args.out), num_subjects=args.num_subjects, preset=args.preset)


def _cmd_train_nerf(args: argparse.Namespace) -> int:
    from pipelines.train_nerf import main_from_args

    return main_from_args(args.args)


def _cmd_bake_nerf(args: argparse.Namespace) -> int:
    from flows.bake_nerf import main as bake_main

    return bake_main(args.args)


def _cmd_eval(args: argparse.Namespace) -> int:
    from flows.evaluate import main_from_args

    return main_from_args(args.args)


def _cmd_generate(args: argparse.Namespace) -> int:
    from pipelines.generate import main_from_args

    return main_from_args(args.args)


def _cmd_cache_latents(args: argparse.Namespace) -> int:
    from flows.train_diffusion import cli_cache_latents

    return cli_cache_latents(args)


def _cmd_train(args: argparse.Namespace) -> int:
    from flows.train_diffusion import cli_submit, cli_train

    return cli_submit(args) if args.train_command == "submit" else cli_train(args)


def _cmd_splits_write(args: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.splits import SPLIT_DATASETS, SplitsConfig, read_split, write_test_splits

    config = load_config(SplitsConfig, Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    roots = {}
    for item in args.root:
        dataset, sep, folder = item.partition("=")
        if not sep or dataset not in SPLIT_DATASETS:
            raise ValueError(f"--root must look like DATASET=FOLDER with DATASET in {SPLIT_DATASETS}, got {item!r}")
        roots[dataset] = Path(folder)
    written = write_test_splits(config, Path(args.out), roots, datasets=args.dataset or SPLIT_DATASETS)
    for dataset, path in written.items():
        print(f"{dataset}: {len(read_split(path).ids)} test ids -> {path}")
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """The config options every stage shares: ``--preset``, ``--config FILE.yaml``, ``--set KEY=VALUE``."""
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--config", help="YAML file of config fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config field, e.g. --set {example} (repeatable)")


#: Commands whose arguments (``--help`` included) go unparsed to the stage's own command line.
_PASS_THROUGH = {"train-nerf": _cmd_train_nerf, "bake-nerf": _cmd_bake_nerf, "eval": _cmd_eval,
                 "generate": _cmd_generate}


def _add_pass_through(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    """A command of :data:`_PASS_THROUGH`: its arguments are kept, unparsed, for the stage's own parser."""
    command = commands.add_parser(name, add_help=False, help=help)
    command.add_argument("args", nargs=argparse.REMAINDER)
    command.set_defaults(func=_PASS_THROUGH[name])


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
    synth.add_argument("kind", choices=["thuman", "2k2k", "tiktok", "mvhumannet"])
    synth.add_argument("--out", required=True)
    synth.add_argument("-n", "--num-subjects", type=int, default=4, help="subjects (scans, mvhumannet) or videos (tiktok)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--frames", type=int, default=48, help="tiktok/mvhumannet: frames per video")
    synth.add_argument("--cameras", type=int, default=8, help="mvhumannet: cameras on the ring")
    synth.add_argument("--size", type=int, default=512, help="tiktok/mvhumannet: image side in pixels")
    synth.add_argument("--fps", type=float, default=30.0, help="tiktok/mvhumannet: frame rate")
    synth.add_argument("--mp4", action="store_true", help="tiktok: write .mp4 files instead of PNG folders")
    synth.set_defaults(func=_cmd_synth)

    pre = commands.add_parser("preprocess", help="run the preprocess flow in this process")
    pre.add_argument("dataset", choices=["thuman", "2k2k", "tiktok", "internet", "mvhumannet"])
    pre.add_argument("raw_root")
    pre.add_argument("out_dir")
    pre.add_argument("--config", help="YAML file with PreprocessConfig fields")
    pre.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    pre.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set orbit.width=512 (repeatable)")
    pre.add_argument("--limit", type=int, help="process at most this many subjects (videos)")
    pre.add_argument("--dask-address", metavar="tcp://HOST:8786",
                     help="run the subjects on this Dask cluster (prefect-dask) instead of threads here")
    pre.set_defaults(func=_cmd_preprocess)

    # train-nerf, bake-nerf, eval and generate hand their arguments to their own parsers (which import torch: kept
    # out of `gas --help`)
    _add_pass_through(commands, "train-nerf",
                      "train the generalizable human NeRF on subject shards (--help for its options)")
    _add_pass_through(commands, "bake-nerf",
                      "bake NeRF renderings and normal maps into clip shards (flows/bake_nerf.py; --help for its options)")
    _add_pass_through(commands, "eval",
                      "score diffusion checkpoints on the test splits (flow evaluate; --help for its options)")
    _add_pass_through(commands, "generate", "novel views or poses from one image (--help for its options)")

    cache = commands.add_parser("cache-latents", help="write a copy of clip shards with cached VAE latents and CLIP embeddings")
    cache.add_argument("in_dir", help="clip shard folder (or manifest, glob, URL)")
    cache.add_argument("out_dir", help="new clip shard folder")
    _add_config_arguments(cache, "model.base_svd_dir=/models/svd")
    cache.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    cache.add_argument("--part", default="0/1", metavar="INDEX/COUNT", help="process every COUNT-th input shard from INDEX")
    cache.set_defaults(func=_cmd_cache_latents)

    train = commands.add_parser("train", help="train the GAS video diffusion model on clip shards")
    _add_config_arguments(train, "data.clips=[data/shards/clips]")
    train.add_argument("--nproc-per-node", type=int, help="processes on this machine (torchrun when > 1)")
    train_commands = train.add_subparsers(dest="train_command")
    submit = train_commands.add_parser("submit", help="run training through the Prefect flow train-diffusion")
    _add_config_arguments(submit, "max_steps=1000")
    submit.add_argument("--local", action="store_true", help="run the flow in this process instead of a deployment run")
    submit.add_argument("--deployment", default="train-diffusion/train-diffusion", help="FLOW/DEPLOYMENT to run")
    submit.add_argument("--nproc-per-node", type=int, help="processes per node (default: the worker's GPU count)")
    submit.add_argument("--nnodes", type=int, default=1, help="nodes (one flow run each)")
    submit.add_argument("--rdzv-endpoint", help="host:port of node 0 (needed when --nnodes > 1)")
    submit.add_argument("--wait", action="store_true", help="wait for the flow runs to finish")
    train.set_defaults(func=_cmd_train)

    splits = commands.add_parser("splits", help="test splits of the paper").add_subparsers(dest="splits_command", required=True)
    write = splits.add_parser("write", help="write <out>/<dataset>_test.json split files")
    write.add_argument("--out", required=True)
    write.add_argument("--root", action="append", default=[], metavar="DATASET=FOLDER",
                       help="raw dataset folder, e.g. --root thuman=/data/THuman2.1 (repeatable)")
    write.add_argument("--dataset", action="append", choices=["thuman", "2k2k", "tiktok", "mvhumannet"],
                       help="only these datasets (repeatable; default: all four)")
    _add_config_arguments(write, "thuman.holdout.selection=seeded")
    write.set_defaults(func=_cmd_splits_write)

    serve = commands.add_parser("serve", help="serve all deployments of prefect.yaml (no work pool needed)")
    serve.add_argument("--prefect-yaml")
    serve.add_argument("--limit", type=int, help="max concurrent flow runs")
    serve.set_defaults(func=_cmd_serve)

    app = commands.add_parser("app", help="browser app: generate from a photo, browse shard folders")
    app.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    app.add_argument("--data-root", action="append", default=[], metavar="DIR",
                     help="folder or s3:// prefix whose shards may be browsed and served (repeatable)")
    app.add_argument("--nerf", help="NeRF checkpoint (as gas generate --nerf)")
    app.add_argument("--diffusion", help="diffusion model (as gas generate --diffusion)")
    app.add_argument("--out", default="out/app", help="folder for generations and contact sheets (default out/app)")
    app.add_argument("--max-upload-mb", type=int, default=50, help="upload size limit in MiB (default 50)")
    _add_config_arguments(app, "estimators.keypoint_weights=/models/yolov8x-pose.pt")
    app.set_defaults(func=_cmd_app)

    demo = commands.add_parser("demo", help="run the whole pipeline on synthetic data")
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("-n", "--num-subjects", type=int, default=2, help="subjects per dataset")
    demo.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _PASS_THROUGH:
        return int(_PASS_THROUGH[argv[0]](argparse.Namespace(args=argv[1:])) or 0)
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
