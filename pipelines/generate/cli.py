"""The ``gas generate`` command line (also ``python -m pipelines.generate``)."""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.generate.config import GenerateConfig, load_generate_config
from pipelines.generate.files import GenerateInputError, GenerateInputs
from pipelines.generate.run import generate


def build_parser(prog: str = "gas generate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Novel views or novel poses of a person from one image "
                                                            "(NeRF + normal-map conditions, GAS video diffusion).")
    parser.add_argument("image", help="reference image (PNG/JPEG; an alpha channel serves as the mask)")
    parser.add_argument("--out", required=True, help="output folder (frames/, video.mp4, strip.png, generation.json)")
    parser.add_argument("--nerf", required=True, help="NeRF checkpoint: save_pretrained folder or train-nerf checkpoint")
    parser.add_argument("--diffusion", required=True,
                        help="diffusion model: GASModel folder, training run folder, training checkpoint folder, or "
                        "a folder of the official release (unet.pth, pose_net.pth, nerf_net.pth; needs "
                        "--set model.base_svd_dir=SVD_XT_1_1_FOLDER)")
    parser.add_argument("--mask", help="person mask image (default: the image's alpha, else gas_core.segment)")
    parser.add_argument("--smpl", help="SMPL parameters JSON of the reference (with --camera; default: monocular fit)")
    parser.add_argument("--camera", help="camera JSON of the reference (OpenCV K, R, t, width, height)")
    parser.add_argument("--mode", choices=["view", "pose"], help="novel views (orbit) or novel poses (default: view)")
    parser.add_argument("--poses", help="pose mode: driving SMPL sequence (JSON or NPZ), a driving video (file or frame "
                        "folder; preprocessed with the driver.* settings) or video shards")
    parser.add_argument("--keep-driver-shape", action="store_true", help="pose mode: use the driver's betas")
    parser.add_argument("--num-views", type=int, help="view mode: views of the orbit")
    parser.add_argument("--steps", type=int, help="sampling steps")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--config", help="YAML file of GenerateConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set guidance.view_max=2.5 (repeatable)")
    return parser


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    """The config of a parsed command line: preset, YAML, ``--set``, then the dedicated options."""
    overrides = list(args.set)
    for option, key in (("mode", "mode"), ("num_views", "num_views"), ("steps", "sampling.steps"),
                        ("seed", "sampling.seed"), ("device", "device")):
        value = getattr(args, option)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.keep_driver_shape:
        overrides.append("pose.keep_driver_shape=true")
    return load_generate_config(args.config, preset=args.preset, overrides=overrides)


def main_from_args(argv: list[str]) -> int:
    """``gas generate ...``: returns 0 on success, 2 for bad arguments or input files (message on stderr)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
        result = generate(GenerateInputs(image=args.image, mask=args.mask, smpl=args.smpl, camera=args.camera,
                                         poses=args.poses), args.out, nerf_checkpoint=args.nerf,
                          diffusion_checkpoint=args.diffusion, config=config)
    except (GenerateInputError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{result.num_frames} frames: {result.frames_dir}"
          + (f", {result.video}" if result.video else "") + (f", {result.strip}" if result.strip else "")
          + f" ({result.seconds_per_frame:.2f} s per frame)")
    return 0
