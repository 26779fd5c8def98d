"""What a run writes besides checkpoints: TensorBoard writer, preview sample grids, the final EMA model."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gas_core.diffusion import GASConditions, GASModel
from gas_core.diffusion.sampler import sample_latents
from pipelines.train_diffusion.checkpoints import FINAL_DIRNAME, TENSORBOARD_DIRNAME
from pipelines.train_diffusion.config import DiffusionTrainConfig
from pipelines.train_diffusion.data import ClipBatch
from pipelines.train_diffusion.step import _autocast, draw_training_noise, encode_batch, latent_shape_of


def _tensorboard_writer(config: DiffusionTrainConfig, out_dir: Path):
    if not config.logging.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out_dir / TENSORBOARD_DIRNAME))


@contextlib.contextmanager
def _ema_weights(ema: Any | None, parameters: list[torch.nn.Parameter]):
    """Temporarily swap the EMA weights into the model (no-op without EMA)."""
    if ema is None:
        yield
        return
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)


def _export_final(model: GASModel, ema: Any | None, parameters: list[torch.nn.Parameter], out_dir: Path) -> Path:
    """``out_dir/final``: a :meth:`GASModel.save_pretrained` folder with the EMA weights (when enabled)."""
    target = out_dir / FINAL_DIRNAME
    with _ema_weights(ema, parameters):
        model.save_pretrained(target, overwrite=True)
    return target


@torch.no_grad()
def sample_clip(model: GASModel, conditions: GASConditions, *, num_frames: int, num_steps: int,
                generator: torch.Generator | None = None, sigma_data: float = 1.0) -> Tensor:
    """Preview sampler: :func:`gas_core.diffusion.sampler.sample_latents` (EDM Euler steps over Karras sigmas), no guidance.

    ``conditions`` for B clips of ``num_frames`` frames; returns SCALED latents ``(B, F, 4, h, w)``.
    (Guidance schedules and long-sequence windows are options of ``sample_latents`` used by generation.)
    """
    if num_frames != conditions.nerf_latents.shape[1]:
        raise ValueError(f"num_frames ({num_frames}) must equal the frames of conditions.nerf_latents "
                         f"({conditions.nerf_latents.shape[1]})")
    return sample_latents(model, conditions, num_steps=num_steps, generator=generator, sigma_data=sigma_data)


def _log_sample_grid(writer, model: GASModel, ema: Any | None, parameters: list[torch.nn.Parameter], preview: ClipBatch,
                     config: DiffusionTrainConfig, step: int) -> None:
    """Rows: reference (repeated), NeRF, normal maps, ground truth, EMA sample; one column per frame."""
    from torchvision.utils import make_grid

    device = preview.frames.device
    quiet = replace(config.conditioning, embedding_dropout=0.0, reference_latent_dropout=0.0, noise_augmentation=False)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    noise = draw_training_noise(preview, latent_shape_of(model, preview), replace(config, conditioning=quiet), generator)
    with _ema_weights(ema, parameters), _autocast(config, device):
        _, conditions = encode_batch(model, preview, noise, quiet)
        latents = sample_clip(model, conditions, num_frames=preview.num_frames, num_steps=config.logging.sample_steps,
                              generator=generator, sigma_data=config.noise.sigma_data)
        decoded = model.decode_latents(latents.flatten(0, 1), preview.num_frames)
    sample = ((decoded.float().clamp(-1, 1) + 1) / 2).cpu()
    frames = preview.num_frames
    rows = [preview.reference[0:1].expand(frames, -1, -1, -1), preview.nerf[0], preview.normals[0], preview.frames[0]]
    grid = make_grid(torch.cat([row.float().cpu() for row in rows] + [sample]), nrow=frames, padding=2)
    writer.add_image("samples/reference_nerf_normals_truth_sample", grid, step)
