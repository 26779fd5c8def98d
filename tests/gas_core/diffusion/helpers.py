"""Helpers for the diffusion-model tests: random conditions, stock-diffusers twins, perturbation."""

from __future__ import annotations

import inspect

import torch
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionModel

from gas_core.diffusion import GASConditions, GASModel, GASUNet, GenerationMode, svd_added_time_ids

BATCH, FRAMES, LATENT = 2, 3, 8  # tiny preset: 64x64 images -> 8x8 latents


def random_conditions(model: GASModel, *, batch: int = BATCH, frames: int = FRAMES, seed: int = 1,
                      mode: GenerationMode = GenerationMode.VIEW) -> GASConditions:
    """Conditions of the right shapes for ``model`` (random values, normal maps in [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    width = model.image_encoder.config.projection_dim
    return GASConditions(
        reference_latent=torch.randn(batch, 4, LATENT, LATENT, generator=generator),
        image_embedding=torch.randn(batch, 1, width, generator=generator),
        nerf_latents=torch.randn(batch, frames, 4, LATENT, LATENT, generator=generator),
        normal_maps=torch.rand(batch, frames, 3, 8 * LATENT, 8 * LATENT, generator=generator),
        mode=mode.one_hot(batch),
        added_time_ids=svd_added_time_ids(batch),
    )


def random_noisy_latents(*, batch: int = BATCH, frames: int = FRAMES, seed: int = 2) -> torch.Tensor:
    return torch.randn(batch, frames, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(seed))


def stock_twin(unet: GASUNet) -> UNetSpatioTemporalConditionModel:
    """Stock diffusers UNet with ``unet``'s config and weights (everything but the switcher), loaded strictly."""
    accepted = set(inspect.signature(UNetSpatioTemporalConditionModel.__init__).parameters) - {"self"}
    stock = UNetSpatioTemporalConditionModel(**{k: v for k, v in unet.config.items() if k in accepted})
    state = {k: v for k, v in unet.state_dict().items() if not k.startswith("mode_embedding.")}
    stock.load_state_dict(state, strict=True)
    return stock.eval()


@torch.no_grad()
def perturb_(module: torch.nn.Module, *, seed: int = 3, std: float = 0.2) -> None:
    """Add Gaussian noise to every parameter of ``module`` (makes zero-initialised layers non-zero)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        parameter.add_(std * torch.randn(parameter.shape, generator=generator))
