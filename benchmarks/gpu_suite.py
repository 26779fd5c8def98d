"""Every paper-size GPU figure in one short run: one markdown table and one JSON file.

Run from the repository root on a machine with CUDA (``make bench-gpu`` sets the machine up first and
passes the set-up time on):

    .venv/bin/python benchmarks/gpu_suite.py [--out out/gpu_suite/results.json] [--budget 540]
        [--setup-seconds S] [--dry-run]

Stages (each in its own child process, so that a crash, a hang or an OpenGL platform stays in its row):

- ``device``: the GPU's name, driver (nvidia-smi) and memory;
- ``normals_egl`` / ``normals_osmesa``: ``NormalMapRenderer`` normal maps per second at 512x512 (a
  13,776-triangle body mesh, 20 views, no PNG), under ``PYOPENGL_PLATFORM=egl`` and ``=osmesa``;
- ``ddp``: one all-reduce and one ``DistributedDataParallel`` step of a small module, NCCL, world size 1;
- ``nerf_bake``: seconds for one 20-frame 512x512 clip baked by ``ClipBaker`` (``paper`` NeRF with random
  weights, paper ``BakeConfig``: bf16 autocast), after a one-frame warm-up;
- ``train_step``: frames per second of the diffusion trainer's step (``draw_training_noise`` +
  ``training_loss``, backward, clipping, AdamW, EMA) on the SVD-xt-sized ``paper`` model, batch 1 of 20
  frames at 512x512, bf16 autocast, gradient checkpointing, cached latents (the paper config's default);
  peak CUDA memory in the note;
- ``generate``: seconds of ``SingleImageGenerator.generate`` for a 20-frame 512x512 orbit (view mode,
  25 steps, fp16), after a 2-step warm-up.

``--dry-run`` runs the same code at toy sizes on the CPU (``tiny`` presets, 64x64, 2-4 frames, 1 step,
gloo, OSMesa only) so that the suite keeps working on machines without a GPU. Without CUDA and without
``--dry-run`` the suite refuses at once (exit status 2). A stage that fails or runs past its time shows
its error in its row; once ``--budget`` seconds are spent, the remaining stages are skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = REPO_ROOT / "out" / "gpu_suite" / "results.json"
RESULT_MARK = "GAS_GPU_SUITE_RESULT "
NO_CUDA_EXIT = 2


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Measurement:
    """What one stage's child reports: its figure, and free-form details for the note and the JSON."""

    value: float
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageRow:
    """One row of the table (and one entry of the JSON's ``stages``)."""

    stage: str
    value: float | None
    unit: str
    target: str
    met: bool | None
    seconds: float
    status: str  # "ok", "error: ...", "timeout after N s", "skipped: time budget"
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSpec:
    """A stage: its unit, its target (text, and the test a value must pass), and whether dry runs include it."""

    name: str
    unit: str
    target: str = "-"
    meets: Callable[[float], bool] | None = None
    in_dry_run: bool = True


STAGES: tuple[StageSpec, ...] = (
    StageSpec("device", "GiB"),
    StageSpec("normals_egl", "maps/s", in_dry_run=False),
    StageSpec("normals_osmesa", "maps/s"),
    StageSpec("ddp", "ms"),
    StageSpec("nerf_bake", "s/clip", "<= 2 s", lambda value: value <= 2.0),
    StageSpec("train_step", "frames/s", ">= 35", lambda value: value >= 35.0),
    StageSpec("generate", "s/orbit", "<= 10 s", lambda value: value <= 10.0),
)
STAGE_NAMES = tuple(spec.name for spec in STAGES)
DRY_RUN_STAGES = tuple(spec.name for spec in STAGES if spec.in_dry_run)


@dataclass(frozen=True)
class Sizes:
    """Sizes of one run: the paper's, or the dry run's toy sizes."""

    device: str
    preset: str
    size: int
    frames: int
    normal_maps: int
    train_steps: int
    generate_steps: int
    warmup_steps: int
    ddp_backend: str
    warm_up: bool  # time after a warm-up run (the GPU run); the dry run skips it to stay short

    @classmethod
    def for_run(cls, dry_run: bool) -> "Sizes":
        if dry_run:
            return cls(device="cpu", preset="tiny", size=64, frames=2, normal_maps=4, train_steps=1,
                       generate_steps=1, warmup_steps=1, ddp_backend="gloo", warm_up=False)
        return cls(device="cuda", preset="paper", size=512, frames=20, normal_maps=20, train_steps=3,
                   generate_steps=25, warmup_steps=2, ddp_backend="nccl", warm_up=True)


# ---------------------------------------------------------------------------------------------- stages (child side)
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage_device(sizes: Sizes) -> Measurement:
    import torch

    driver = "unknown"
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        if query.returncode == 0 and query.stdout.strip():
            driver = query.stdout.strip().splitlines()[0]
    details: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "driver": driver,
                               "python": platform.python_version(), "cpu_count": os.cpu_count()}
    if sizes.device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        name, memory = torch.cuda.get_device_name(0), properties.total_memory / 2**30
        details.update(name=name, device_count=torch.cuda.device_count(), capability=list(torch.cuda.get_device_capability(0)))
    else:
        import psutil

        name, memory = f"cpu ({platform.processor() or platform.machine()})", psutil.virtual_memory().total / 2**30
        details.update(name=name)
    return Measurement(memory, f"{name}; driver {driver}; torch {torch.__version__}, CUDA {torch.version.cuda}", details)


def stage_normals(sizes: Sizes) -> Measurement:
    """Normal maps per second with the platform PYOPENGL_PLATFORM names (the parent sets it for this child)."""
    sys.path.insert(0, str(BENCH_DIR))
    import repo_setup  # noqa: F401 - configures headless GL before pyrender / OpenGL load
    import numpy as np
    import trimesh

    from gas_core.cameras import OrbitSpec, orbit_cameras
    from gas_core.render.normals import NormalMapRenderer

    mesh = trimesh.load(REPO_ROOT / "tests" / "fixtures" / "official_normal_map" / "mesh.obj", process=False)
    vertices = np.asarray(mesh.vertices) - np.asarray(mesh.vertices).mean(axis=0)
    faces = np.asarray(mesh.faces)
    size = 512 if sizes.device == "cuda" else sizes.size
    cameras = orbit_cameras(OrbitSpec(num_views=sizes.normal_maps, width=size, height=size))
    with NormalMapRenderer(size, size) as renderer:
        from OpenGL import GL

        gl_renderer = GL.glGetString(GL.GL_RENDERER)
        gl_renderer = gl_renderer.decode() if isinstance(gl_renderer, bytes) else str(gl_renderer)
        renderer.render_views(vertices, faces, cameras[:2])  # warm-up: shaders, buffers
        started = time.perf_counter()
        images = renderer.render_views(vertices, faces, cameras)
        seconds = time.perf_counter() - started
    platform_name = os.environ.get("PYOPENGL_PLATFORM", "?")
    return Measurement(len(images) / seconds, f"{platform_name}: {gl_renderer}; {size}x{size}, {len(images)} maps",
                       {"platform": platform_name, "gl_renderer": gl_renderer, "size": size, "maps": len(images)})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stage_ddp(sizes: Sizes) -> Measurement:
    """One all-reduce and one DDP step, world size 1, in this (child) process."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    device = torch.device("cuda", 0) if sizes.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=sizes.ddp_backend, rank=0, world_size=1)
    try:
        started = time.perf_counter()
        tensor = torch.arange(4, dtype=torch.float32, device=device)
        dist.all_reduce(tensor)
        if not torch.equal(tensor.cpu(), torch.arange(4, dtype=torch.float32)):
            raise RuntimeError(f"all_reduce over one rank changed the tensor: {tensor.tolist()}")
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).to(device)
        model = DistributedDataParallel(module, device_ids=[0] if device.type == "cuda" else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(torch.randn(8, 16, device=device)).pow(2).mean()
        loss.backward()
        optimizer.step()
        _sync(device)
        milliseconds = (time.perf_counter() - started) * 1e3
        if not math.isfinite(float(loss)):
            raise RuntimeError(f"the DDP step's loss is not finite: {float(loss)}")
    finally:
        dist.destroy_process_group()
    return Measurement(milliseconds, f"{sizes.ddp_backend}, world size 1, all-reduce + one DDP step",
                       {"backend": sizes.ddp_backend, "loss": float(loss)})


def _reference(size: int):
    """The open body model seen from the front (image, mask, camera, SMPL dict), as bench_generate makes it."""
    sys.path.insert(0, str(BENCH_DIR))
    from bench_generate import make_reference  # configures headless GL on import

    from gas_core.body.smpl import BodyModel
    from pipelines.generate.files import read_camera_file, read_image_file, read_mask_file, read_smpl_file

    body_model = BodyModel(None)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-ref-") as scratch:
        inputs = make_reference(Path(scratch), body_model, size)
        image, _ = read_image_file(inputs.image)
        mask = (read_mask_file(inputs.mask, (size, size)) > 0).astype("uint8") * 255
        camera = read_camera_file(inputs.camera)
        smpl = read_smpl_file(inputs.smpl, body_model)
    return image, mask, camera, smpl


def stage_nerf_bake(sizes: Sizes) -> Measurement:
    import numpy as np
    import torch

    from gas_core.cameras import OrbitSpec, orbit_cameras
    from gas_core.nerf import GeneralizableHumanNeRF
    from pipelines.bake_nerf import BakeConfig, ClipBaker, ClipConfig, ClipSource, ClipSpec, config_with_device

    base = BakeConfig.paper() if sizes.preset == "paper" else BakeConfig.tiny()
    config = config_with_device(base, sizes.device)
    config = replace(config, clip=ClipConfig(width=sizes.size, height=sizes.size, num_frames=sizes.frames,
                                             num_references=1))
    image, mask, camera, smpl = _reference(sizes.size)
    source = ClipSource(dataset="gpu-suite", subject_id="reference", images=image[None], masks=mask[None],
                        cameras=(camera,), smpl=(smpl,))
    orbit = orbit_cameras(OrbitSpec(num_views=sizes.frames, distance=2.6, width=sizes.size, height=sizes.size,
                                    target=(0.0, -0.2, 0.0)))

    def spec(count: int) -> ClipSpec:
        return ClipSpec(mode="view", reference_index=0, frame_indices=(0,) * count, cameras=tuple(orbit[:count]),
                        smpl=tuple(dict(smpl) for _ in range(count)))

    with tempfile.TemporaryDirectory(prefix="gpu-suite-nerf-") as scratch:
        torch.manual_seed(0)
        GeneralizableHumanNeRF.from_preset(sizes.preset).save_pretrained(Path(scratch))
        with ClipBaker.open(Path(scratch), config) as baker:
            if sizes.warm_up:
                baker.bake(source, spec(1))  # warm-up: GL context, allocator, kernels
            _sync(baker.device)
            if baker.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(baker.device)
            started = time.perf_counter()
            clip = baker.bake(source, spec(sizes.frames))
            _sync(baker.device)
            seconds = time.perf_counter() - started
            peak = torch.cuda.max_memory_allocated(baker.device) / 2**30 if baker.device.type == "cuda" else float("nan")
    frames = int(np.asarray(clip.nerf).shape[0])
    bf16 = bool(config.render.bf16) and baker.device.type == "cuda"
    return Measurement(seconds, f"{frames} frames {sizes.size}x{sizes.size}, {sizes.preset} NeRF, {'bf16 autocast' if bf16 else 'fp32'}"
                       + (f", peak {peak:.1f} GiB" if math.isfinite(peak) else ""),
                       {"frames": frames, "bf16": bf16, "peak_gib": None if math.isnan(peak) else peak})


def _build_gas_model(preset: str, device):
    """Random-weight GASModel; on a GPU built there directly (fast), on the CPU if that fails."""
    import torch

    from gas_core.diffusion import GASModel
    from gas_core.diffusion.presets import GASModelPreset

    def build() -> GASModel:  # what GASModel.from_preset does
        return GASModel.from_sizes(GASModelPreset.named(preset), seed=0)

    if device.type == "cuda":
        try:
            with torch.device(device):
                return build(), "built on cuda"
        except Exception as error:  # noqa: BLE001 - fall back to the CPU build, and say so
            return build(), f"built on cpu ({type(error).__name__})"
    return build(), "built on cpu"


def stage_train_step(sizes: Sizes) -> Measurement:
    import torch

    sys.path.insert(0, str(BENCH_DIR))
    from bench_train_diffusion import _batch, training_step
    from pipelines.train_diffusion import DiffusionTrainConfig

    device = torch.device(sizes.device)
    paper = sizes.preset == "paper"
    config = DiffusionTrainConfig.paper() if paper else DiffusionTrainConfig.tiny()
    cached = bool(config.data.use_cached_latents)
    config = replace(config, mixed_precision="bf16" if paper else "no", gradient_checkpointing=True,
                     conditioning=replace(config.conditioning, noise_augmentation=not cached))
    model, built = _build_gas_model(sizes.preset, device)
    frozen_dtype = torch.bfloat16 if paper else torch.float32
    model.vae.to(device, dtype=frozen_dtype)
    model.image_encoder.to(device, dtype=frozen_dtype)
    model.denoiser.to(device).train()
    model.denoiser.unet.enable_gradient_checkpointing()
    batch = _batch(model, batch_size=1, frames=sizes.frames, size=sizes.size, cached=cached, device=device)
    step = training_step(model, batch, config, device)
    if sizes.warm_up:
        step(0)  # warm-up: allocations, kernels
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    losses = [step(index + 1) for index in range(sizes.train_steps)]
    _sync(device)
    seconds = (time.perf_counter() - started) / sizes.train_steps
    if not all(math.isfinite(loss) for loss in losses):
        raise RuntimeError(f"non-finite training loss: {losses}")
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    parameters_m = sum(p.numel() for p in model.denoiser.parameters() if p.requires_grad) / 1e6
    precision = "fp32" if config.mixed_precision == "no" else f"{config.mixed_precision} autocast"
    note = (f"{sizes.frames} frames {sizes.size}x{sizes.size}, {precision}, gradient checkpointing, "
            f"cached latents {'on' if cached else 'off'}, {seconds:.2f} s/step, {parameters_m:.0f} M trained params, {built}"
            + (f", peak {peak:.1f} GiB" if math.isfinite(peak) else ""))
    return Measurement(sizes.frames / seconds, note, {"seconds_per_step": seconds, "peak_gib": None if math.isnan(peak) else peak,
                                                      "cached_latents": cached, "parameters_m": parameters_m})


def stage_generate(sizes: Sizes) -> Measurement:
    import torch

    sys.path.insert(0, str(BENCH_DIR))
    import bench_generate
    from pipelines.generate import load_generate_config

    overrides = [f"device={sizes.device}", f"sampling.steps={sizes.generate_steps}"]
    if sizes.preset == "paper":
        overrides.append("dtype=fp16")
    config = replace(load_generate_config(preset=sizes.preset, overrides=overrides), num_views=sizes.frames, mode="view")
    model, built = _build_gas_model(sizes.preset, torch.device(sizes.device))  # on the GPU directly: 2 B weights
    generator = bench_generate.build_generator(sizes.preset, config, model=model)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-generate-") as scratch, generator:
        folder = Path(scratch)
        inputs = bench_generate.make_reference(folder, generator.body_model, config.size)
        if sizes.warm_up:
            generator.config = replace(config, sampling=replace(config.sampling, steps=sizes.warmup_steps))
            generator.generate(inputs, folder / "warm-up", progress=False)
            generator.config = config
        _sync(generator.device)
        started = time.perf_counter()
        result = generator.generate(inputs, folder / "orbit", progress=False)
        _sync(generator.device)
        seconds = time.perf_counter() - started
    stages = {key: round(value, 3) for key, value in result.seconds.items()}
    dtype = bench_generate.resolve_dtype(config.dtype, generator.device)
    return Measurement(seconds, f"{result.num_frames} frames {config.size}x{config.size}, {config.sampling.steps} steps, "
                       f"{str(dtype).removeprefix('torch.')}, {built}",
                       {"frames": result.num_frames, "steps": config.sampling.steps, "stage_seconds": stages})


CHILD_STAGES: dict[str, Callable[[Sizes], Measurement]] = {
    "device": stage_device, "normals_egl": stage_normals, "normals_osmesa": stage_normals, "ddp": stage_ddp,
    "nerf_bake": stage_nerf_bake, "train_step": stage_train_step, "generate": stage_generate,
}


def run_child(stage: str, dry_run: bool) -> int:
    """Child entry: measure ``stage``, print its Measurement as one JSON line after RESULT_MARK."""
    sys.path.insert(0, str(REPO_ROOT))
    measurement = CHILD_STAGES[stage](Sizes.for_run(dry_run))
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(asdict(measurement), default=str), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- parent side
def _child_env(stage: str, dry_run: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("GAS_CACHE_DIR", str(REPO_ROOT / ".cache"))
    if stage == "normals_egl":
        env["PYOPENGL_PLATFORM"] = "egl"
    elif stage == "normals_osmesa" or dry_run:
        env["PYOPENGL_PLATFORM"] = "osmesa"
    else:  # the NeRF bake and generation draw normal maps too: on the GPU
        env["PYOPENGL_PLATFORM"] = "egl"
    if dry_run:  # two busy cores: one torch thread per child keeps the run predictable
        env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def run_stage(spec: StageSpec, dry_run: bool, timeout: float) -> StageRow:
    started = time.perf_counter()
    command = [sys.executable, str(Path(__file__).resolve()), "--child", spec.name] + (["--dry-run"] if dry_run else [])

    def row(status: str, value: float | None = None, note: str = "", details: dict[str, Any] | None = None) -> StageRow:
        met = None if (value is None or spec.meets is None or dry_run) else bool(spec.meets(value))
        return StageRow(spec.name, value, spec.unit, spec.target, met, round(time.perf_counter() - started, 2), status,
                        note, details or {})

    try:
        done = subprocess.run(command, cwd=REPO_ROOT, env=_child_env(spec.name, dry_run), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return row(f"timeout after {timeout:.0f} s")
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not results:
        return row(f"error: {_last_line(done.stderr or done.stdout)}")
    measurement = json.loads(results[-1][len(RESULT_MARK):])
    return row("ok", float(measurement["value"]), measurement.get("note", ""), measurement.get("details", {}))


def _format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def markdown_table(rows: list[StageRow]) -> str:
    lines = ["| stage | value | unit | target | met? | seconds | note / error |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for item in rows:
        met = "-" if item.met is None else ("yes" if item.met else "NO")
        text = item.note if item.status == "ok" else item.status
        text = text.replace("|", "/").replace("\n", " ")
        lines.append(f"| {item.stage} | {_format_value(item.value)} | {item.unit} | {item.target} | {met} | "
                     f"{item.seconds:.1f} | {text} |")
    return "\n".join(lines)


def run_suite(dry_run: bool, budget: float, setup_seconds: float | None, stages: tuple[str, ...]) -> list[StageRow]:
    rows: list[StageRow] = []
    if setup_seconds is not None:
        rows.append(StageRow("setup", float(setup_seconds), "s", "-", None, float(setup_seconds), "ok",
                             "scripts/bootstrap.sh (make setup), timed by the caller"))
    started = time.perf_counter()
    for spec in STAGES:
        if spec.name not in stages:
            continue
        left = budget - (time.perf_counter() - started)
        if left < 1.0:
            rows.append(StageRow(spec.name, None, spec.unit, spec.target, None, 0.0, "skipped: time budget"))
        else:
            rows.append(run_stage(spec, dry_run, left))
        print(f"gpu_suite: {rows[-1].stage}: {rows[-1].status} in {rows[-1].seconds:.1f} s", file=sys.stderr, flush=True)
    return rows


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all stages together (default 540)")
    parser.add_argument("--setup-seconds", type=float, default=None, help="set-up time to report (make bench-gpu passes it)")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: checks that every stage still runs")
    parser.add_argument("--stages", default=None, help="comma-separated subset of the stages (default: all)")
    parser.add_argument("--child", choices=STAGE_NAMES, help=argparse.SUPPRESS)
    return parser


def _ensure_body_model() -> None:
    """Build the open body model once (a bare machine has none) unless ``GAS_BODY_MODEL_PATH`` names a model:
    the reference, bake and generate stages need it, and building it inside a stage would count its minutes."""
    if os.environ.get("GAS_BODY_MODEL_PATH"):
        return
    from gas_core.body.open_model import ensure_open_body_model

    started = time.perf_counter()
    folder = ensure_open_body_model()
    print(f"gpu_suite: body model {folder} ready in {time.perf_counter() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return run_child(args.child, args.dry_run)
    if not math.isfinite(args.budget) or args.budget <= 0:
        raise ValueError(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.setup_seconds is not None and (not math.isfinite(args.setup_seconds) or args.setup_seconds < 0):
        raise ValueError(f"--setup-seconds must be a number >= 0, got {args.setup_seconds}")
    available = DRY_RUN_STAGES if args.dry_run else STAGE_NAMES
    stages = available if args.stages is None else tuple(name.strip() for name in args.stages.split(",") if name.strip())
    unknown = [name for name in stages if name not in available]
    if unknown or not stages:
        raise ValueError(f"--stages must name stages among {', '.join(available)}, got {args.stages!r}")
    if not args.dry_run and not cuda_available():
        print("gpu_suite: no CUDA device here; this suite measures GPU figures (use --dry-run to check it on a CPU)",
              file=sys.stderr)
        return NO_CUDA_EXIT
    _ensure_body_model()
    started = time.perf_counter()
    rows = run_suite(args.dry_run, args.budget, args.setup_seconds, stages)
    wall = time.perf_counter() - started
    table = markdown_table(rows)
    print(f"\nGAS GPU suite{' (dry run: tiny sizes on the CPU)' if args.dry_run else ''}: {wall:.1f} s\n")
    print(table)
    report = {"dry_run": args.dry_run, "budget_s": args.budget, "wall_s": round(wall, 2),
              "setup_s": args.setup_seconds, "python": sys.executable, "host": platform.node(),
              "stages": {item.stage: asdict(item) for item in rows}, "table": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults: {args.out}")
    return 0 if all(item.status == "ok" for item in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as error:
        print(f"gpu_suite: {error}", file=sys.stderr)
        sys.exit(NO_CUDA_EXIT)
