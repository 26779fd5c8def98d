"""Training-step time and memory of the GAS diffusion trainer: ``tiny`` on CPU, ``paper`` size on a GPU.

Run from the repository root:

    .venv/bin/python benchmarks/bench_train_diffusion.py [--steps 5] [--threads 1] [--skip-paper] [--paper-frames 20]

Each row runs in a fresh child process (so its peak memory is its own): it builds the model with
random weights (``GASModel.from_preset``; ``paper`` = the SVD-xt 1.1 sizes), a random batch, then
times ``--steps`` optimizer steps after one warm-up step: the trainer's own step
(``pipelines.train_diffusion.draw_training_noise`` + ``training_loss``, backward, gradient clipping,
AdamW, EMA update), with the frozen VAE / CLIP encoder running on the fly, or skipped because the
batch carries cached latents (``data.use_cached_latents``; the reference noise augmentation is off in
that row so that the VAE does not run at all), with and without gradient checkpointing. Data loading
is not included (the loader runs in worker processes during training).

Columns: s/step (mean wall time of the timed steps), frames/s (frames of target video trained per
second), peak memory (CPU: the child's peak resident set size; GPU: ``torch.cuda.max_memory_allocated``).
``paper`` rows run only where CUDA is present (otherwise a note is printed): batch 1 of
``--paper-frames`` frames at 512x512, bf16 autocast, float32 master weights, AdamW, EMA on the GPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def _batch(model, *, batch_size: int, frames: int, size: int, cached: bool, device):
    import torch

    from pipelines.train_diffusion import ClipBatch

    generator = torch.Generator().manual_seed(0)
    latent = size // 8
    width = model.image_encoder.config.projection_dim

    def rand(*shape):
        return torch.rand(*shape, generator=generator)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    batch = ClipBatch(
        frames=rand(batch_size, frames, 3, size, size), nerf=rand(batch_size, frames, 3, size, size),
        normals=rand(batch_size, frames, 3, size, size), reference=rand(batch_size, 3, size, size),
        mode=torch.tensor([[0.0, 1.0]]).repeat(batch_size, 1), keys=[f"clip{i}" for i in range(batch_size)],
        target_latents=randn(batch_size, frames, 4, latent, latent) if cached else None,
        nerf_latents=randn(batch_size, frames, 4, latent, latent) if cached else None,
        reference_latent=randn(batch_size, 4, latent, latent) if cached else None,
        image_embedding=randn(batch_size, 1, width) if cached else None,
    )
    return batch.to(device)


def training_step(model, batch, config, device):
    """The trainer's optimizer step on one fixed ``batch`` (AdamW, gradient clipping, EMA), as a function of
    the step index (which seeds the noise) returning the loss; shared with ``gpu_suite.py``."""
    import torch
    from diffusers.training_utils import EMAModel

    from pipelines.train_diffusion import _autocast, draw_training_noise, latent_shape_of, training_loss

    parameters = [p for p in model.denoiser.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    ema = EMAModel(parameters, decay=0.9999)

    def step(index: int) -> float:
        generator = torch.Generator(device=device).manual_seed(index)
        noise = draw_training_noise(batch, latent_shape_of(model, batch), config, generator)
        with _autocast(config, device):
            loss = training_loss(model, model.denoiser, batch, noise, config).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(parameters)
        return float(loss)

    return step


def run_one(spec: dict) -> dict:
    """One measurement (in this process); returns the row."""
    import torch

    from gas_core.diffusion import GASModel
    from pipelines.train_diffusion import DiffusionTrainConfig

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    config = DiffusionTrainConfig.tiny() if spec["preset"] == "tiny" else DiffusionTrainConfig.paper()
    config = replace(config, mixed_precision=spec["precision"], gradient_checkpointing=spec["checkpointing"],
                     conditioning=replace(config.conditioning, noise_augmentation=not spec["cached"]))
    model = GASModel.from_preset(spec["preset"], seed=0)
    frozen_dtype = torch.bfloat16 if (device.type == "cuda" and spec["precision"] == "bf16") else torch.float32
    model.vae.to(device, dtype=frozen_dtype)
    model.image_encoder.to(device, dtype=frozen_dtype)
    model.denoiser.to(device).train()
    if spec["checkpointing"]:
        model.denoiser.unet.enable_gradient_checkpointing()
    batch = _batch(model, batch_size=spec["batch_size"], frames=spec["frames"], size=spec["size"], cached=spec["cached"],
                   device=device)
    step = training_step(model, batch, config, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)

    step(0)  # warm-up: allocations, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for index in range(spec["steps"]):
        step(index + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / spec["steps"]
    if device.type == "cuda":
        peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {**spec, "seconds_per_step": seconds, "frames_per_second": spec["batch_size"] * spec["frames"] / seconds,
            "peak_gib": peak_gib, "parameters_m": sum(p.numel() for p in model.denoiser.parameters() if p.requires_grad) / 1e6}


def _child(spec: dict) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
    if completed.returncode != 0:
        return {**spec, "error": completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--paper-frames", type=int, default=20)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0
    import torch

    specs = [dict(preset="tiny", device="cpu", precision="no", batch_size=2, frames=4, size=64, cached=cached,
                  checkpointing=checkpointing, steps=args.steps, threads=args.threads)
             for cached in (False, True) for checkpointing in (False, True)]
    if not args.skip_paper and torch.cuda.is_available():
        specs += [dict(preset="paper", device="cuda", precision="bf16", batch_size=1, frames=args.paper_frames, size=512,
                       cached=cached, checkpointing=checkpointing, steps=args.steps, threads=args.threads)
                  for cached in (False, True) for checkpointing in (True, False)]
    print("| preset | device | precision | batch x frames | cached latents | grad. checkpointing | s/step | frames/s | peak memory |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec in specs:
        row = _child(spec)
        label = (f"| {row['preset']} | {row['device']} | {row['precision']} | {row['batch_size']} x {row['frames']} "
                 f"({row['size']} px) | {'yes' if row['cached'] else 'no'} | {'on' if row['checkpointing'] else 'off'} |")
        if "error" in row:
            print(f"{label} failed: {row['error']} | | |")
        else:
            memory = f"{row['peak_gib']:.2f} GiB" + (" (RSS)" if row["device"] == "cpu" else " (CUDA allocated)")
            print(f"{label} {row['seconds_per_step']:.3f} | {row['frames_per_second']:.1f} | {memory} |")
        sys.stdout.flush()
    if not torch.cuda.is_available():
        print("\nno CUDA device here: the paper-size rows (SVD-xt 1.1 sizes, 512x512, bf16) were skipped; "
              "run this script on a GPU worker to measure them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
