"""Seconds per generated frame of ``gas generate`` (view and pose mode), by stage, with random weights.

Run from the repository root:

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/bench_generate.py          # tiny, CPU
    PYOPENGL_PLATFORM=egl .venv/bin/python benchmarks/bench_generate.py --preset paper --device cuda     # paper, GPU

What runs: the real generation code (:class:`pipelines.generate.SingleImageGenerator`: input files,
NeRF frames and normal maps through the bake's ``ClipBaker``, VAE/CLIP encoding, ``sample_latents`` with
guidance and windows, chunked decoding, PNG/MP4/strip writing) on a reference made here: the open body
model seen from the front, its image a coloured normal-map render, its mask that render's silhouette.
The NeRF (``GeneralizableHumanNeRF.from_preset``) and the GAS model (``GASModel.from_preset``) have random
weights and are built in memory (checkpoint loading is not timed). Random weights cost what trained ones
cost: the NeRF samples only near the body and the diffusion model's work does not depend on its weights.

Preset ``tiny``: 64 px, ``GenerateConfig.tiny()`` (3 steps, 8-frame windows, fp32 on CPU). Preset
``paper``: 512 px, ``GenerateConfig.paper()`` (25 steps, 20-frame windows, fp16 on CUDA), SVD-xt-sized
UNet; it needs a GPU (``--device cuda``; on a CPU one frame takes many minutes).
Rows: view mode with ``--views`` views, pose mode with ``--pose-frames`` driver frames. Columns: seconds
per output frame in total and per stage; peak resident memory of the process (and peak CUDA memory).
Timings are wall clock on a shared machine: expect tens of percent of noise between runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("GAS_CACHE_DIR", str(REPO_ROOT / ".cache"))

from gas_core.render.gl import configure_headless_gl  # noqa: E402

configure_headless_gl()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from gas_core.body.smpl import BodyModel, SMPLParams  # noqa: E402
from gas_core.cameras import OrbitSpec, orbit_cameras  # noqa: E402
from gas_core.diffusion import GASModel  # noqa: E402
from gas_core.nerf import GeneralizableHumanNeRF  # noqa: E402
from gas_core.render.normals import NormalMapRenderer, normal_map_foreground  # noqa: E402
from pipelines.bake_nerf import BakeConfig, CheckpointInfo, ClipBaker, ClipConfig, resolve_device  # noqa: E402
from pipelines.generate import (  # noqa: E402
    GenerateConfig,
    GenerateInputs,
    SingleImageGenerator,
    load_generate_config,
    resolve_dtype,
)


def make_reference(folder: Path, body_model: BodyModel, size: int) -> GenerateInputs:
    """image.png, mask.png, smpl.json, camera.json of the open body model seen from the front at ``size`` px."""
    pose = np.zeros((23, 3))
    pose[15, 2], pose[16, 2] = -1.1, 1.1
    smpl = {"betas": [0.0] * 10, "body_pose": pose.tolist(), "global_orient": [0.0, 0.0, 0.0],
            "transl": [0.0, 0.0, 0.0], "scale": 1.0, "body_model": body_model.label}
    camera = orbit_cameras(OrbitSpec(num_views=1, distance=2.6, width=size, height=size, target=(0.0, -0.2, 0.0)))[0]
    with torch.no_grad():
        vertices = body_model(SMPLParams.from_records([smpl])).vertices[0].double().cpu().numpy()
    with NormalMapRenderer(width=size, height=size) as renderer:
        normal_map = renderer.render(vertices, body_model.faces.cpu().numpy().astype(np.int64), camera)
    mask = normal_map_foreground(normal_map)
    Image.fromarray((normal_map.astype(np.float32) * np.array([0.9, 0.5, 0.3])).astype(np.uint8)).save(folder / "image.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "mask.png")
    (folder / "smpl.json").write_text(json.dumps(smpl))
    (folder / "camera.json").write_text(json.dumps(camera.to_dict()))
    return GenerateInputs(image=folder / "image.png", mask=folder / "mask.png", smpl=folder / "smpl.json",
                          camera=folder / "camera.json")


def write_driver(path: Path, frames: int) -> Path:
    phase = np.linspace(0.0, 2.0 * math.pi, frames)
    body_pose = np.zeros((frames, 23, 3))
    body_pose[:, 15, 2] = -1.1 + 0.6 * np.sin(phase)
    body_pose[:, 16, 2] = 1.1 - 0.6 * np.sin(phase)
    path.write_text(json.dumps({"body_pose": body_pose.tolist(), "global_orient": np.zeros((frames, 3)).tolist(),
                                "transl": np.zeros((frames, 3)).tolist()}))
    return path


def build_generator(preset: str, config: GenerateConfig, model: GASModel | None = None) -> SingleImageGenerator:
    """Random-weight NeRF and GAS model of ``preset`` in memory, on the config's device and dtype.

    ``model``: a GAS model built by the caller (e.g. directly on a GPU); default ``GASModel.from_preset(preset)``.
    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    torch.manual_seed(0)
    nerf = GeneralizableHumanNeRF.from_preset(preset)
    model = GASModel.from_preset(preset) if model is None else model
    model.to(device) if dtype == torch.float32 else model.to(device, dtype=dtype)
    bake_config = BakeConfig(clip=ClipConfig(width=config.size, height=config.size, num_frames=1, num_references=1),
                             render=config.nerf.render_config(str(device)), body_model_path=config.body_model_path)
    info = CheckpointInfo(path="(random weights in memory)", model_dir="", sha256="")
    return SingleImageGenerator(ClipBaker(nerf, BodyModel(config.body_model_path), bake_config, info, device),
                                model, config, device, {"nerf": info.path, "diffusion": info.path})


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: the preset's)")
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--pose-frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [*(["device=" + args.device] if args.device else []), *args.set]
    config = load_generate_config(preset=args.preset, overrides=overrides)
    config = replace(config, num_views=args.views)
    generator = build_generator(args.preset, config)
    device = generator.device
    rows = []
    with tempfile.TemporaryDirectory() as scratch, generator:
        folder = Path(scratch)
        inputs = make_reference(folder, generator.body_model, config.size)
        driver = write_driver(folder / "driver.json", args.pose_frames)
        for mode in ("view", "pose"):
            generator.config = replace(config, mode=mode)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            result = generator.generate(replace(inputs, poses=driver if mode == "pose" else None),
                                        folder / f"out-{mode}", progress=False)
            wall = time.perf_counter() - started
            frames = result.num_frames
            seconds = result.seconds
            rows.append((mode, frames, wall / frames, seconds["nerf_and_normals"] / frames, seconds["encode"] / frames,
                         seconds["sample_and_decode"] / frames, seconds["write"] / frames, peak_rss_gib(),
                         torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")))
    sampling = config.sampling
    print(f"\npreset {args.preset}: {config.size}x{config.size}, {sampling.steps} steps, window {sampling.window} "
          f"(overlap {sampling.overlap}), device {device}, dtype {resolve_dtype(config.dtype, device)}, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| mode | frames | s / frame | NeRF + normals | encode | sample + decode | write | peak RSS GiB | peak CUDA GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, frames, total, nerf, encode, sample, write, rss, cuda in rows:
        cuda_text = "-" if math.isnan(cuda) else f"{cuda:.2f}"
        print(f"| {mode} | {frames} | {total:.3f} | {nerf:.3f} | {encode:.3f} | {sample:.3f} | {write:.3f} | "
              f"{rss:.2f} | {cuda_text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
