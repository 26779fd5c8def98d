"""One training step's maths: noise draws, condition dropout, batch encoding, the EDM loss, autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from gas_core.diffusion import GASConditions, GASModel, svd_added_time_ids
from gas_core.diffusion.edm import (
    add_noise,
    append_dims,
    denoise,
    denoising_loss,
    edm_preconditioning,
    noise_augment,
    sample_log_normal_sigmas,
)
from pipelines.train_diffusion.config import ConditioningConfig, DiffusionTrainConfig
from pipelines.train_diffusion.data import ClipBatch


@dataclass
class TrainingNoise:
    """All random draws of one training step for a batch of B clips (reproducible from one generator).

    ``sigmas`` ``(B,)`` EDM noise levels; ``noise`` ``(B, F, 4, h, w)`` standard normal;
    ``drop_embedding`` / ``drop_reference_latent`` ``(B,)`` bool condition dropout;
    ``aug_strengths`` ``(B,)`` reference noise-augmentation strengths (zeros when disabled) and
    ``aug_noise`` ``(B, 3, H, W)`` its standard normal draw.
    """

    sigmas: Tensor
    noise: Tensor
    drop_embedding: Tensor
    drop_reference_latent: Tensor
    aug_strengths: Tensor
    aug_noise: Tensor


def condition_dropout_masks(batch_size: int, *, embedding_rate: float, reference_latent_rate: float,
                            generator: torch.Generator | None = None,
                            device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Independent Bernoulli masks ``(drop_embedding, drop_reference_latent)``, each ``(batch_size,)`` bool."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for name, rate in (("embedding_rate", embedding_rate), ("reference_latent_rate", reference_latent_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    uniforms = torch.rand(2, batch_size, generator=generator, device=device)
    return uniforms[0] < embedding_rate, uniforms[1] < reference_latent_rate


def apply_condition_dropout(conditions: GASConditions, drop_embedding: Tensor, drop_reference_latent: Tensor) -> GASConditions:
    """Zero the CLIP embedding of the clips where ``drop_embedding`` ``(B,)`` is True and the reference
    latent where ``drop_reference_latent`` is; NeRF latents, normal maps, mode and time ids are kept."""
    batch = conditions.reference_latent.shape[0]
    for name, mask in (("drop_embedding", drop_embedding), ("drop_reference_latent", drop_reference_latent)):
        if mask.shape != (batch,) or mask.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor of shape ({batch},), got {mask.dtype} {tuple(mask.shape)}")
    keep_embedding = append_dims((~drop_embedding).to(conditions.image_embedding.dtype), conditions.image_embedding.ndim)
    keep_latent = append_dims((~drop_reference_latent).to(conditions.reference_latent.dtype), conditions.reference_latent.ndim)
    return replace(conditions, image_embedding=conditions.image_embedding * keep_embedding,
                   reference_latent=conditions.reference_latent * keep_latent)


def draw_training_noise(batch: ClipBatch, latent_shape: Sequence[int], config: DiffusionTrainConfig,
                        generator: torch.Generator) -> TrainingNoise:
    """Draw one step's randomness on the generator's device, always in the same order
    (sigmas, noise, dropout, augmentation), so every data path sees the same draws.

    ``latent_shape``: ``(F, 4, h, w)`` of one clip's target latents.
    """
    device = generator.device
    size = batch.batch_size
    sigmas = sample_log_normal_sigmas(size, log_mean=config.noise.log_mean, log_std=config.noise.log_std,
                                      generator=generator, device=device)
    noise = torch.randn((size, *latent_shape), generator=generator, device=device)
    conditioning = config.conditioning
    drop_embedding, drop_latent = condition_dropout_masks(
        size, embedding_rate=conditioning.embedding_dropout, reference_latent_rate=conditioning.reference_latent_dropout,
        generator=generator, device=device)
    if conditioning.noise_augmentation:
        strengths = sample_log_normal_sigmas(size, log_mean=conditioning.noise_aug_log_mean,
                                             log_std=conditioning.noise_aug_log_std, generator=generator, device=device)
        aug_noise = torch.randn(tuple(batch.reference.shape), generator=generator, device=device)
    else:
        strengths = torch.zeros(size, device=device)
        aug_noise = torch.zeros(tuple(batch.reference.shape), device=device)
    return TrainingNoise(sigmas=sigmas, noise=noise, drop_embedding=drop_embedding, drop_reference_latent=drop_latent,
                         aug_strengths=strengths, aug_noise=aug_noise)


def latent_shape_of(model: GASModel, batch: ClipBatch) -> tuple[int, int, int, int]:
    """``(F, 4, h, w)`` of the batch's target latents (``h = H / 8``)."""
    if batch.target_latents is not None:
        return tuple(int(v) for v in batch.target_latents.shape[1:])  # type: ignore[return-value]
    factor = model.denoiser.pose_net.downscale_factor
    height, width = batch.frames.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"clip images must have sides divisible by {factor}, got {height}x{width}")
    return batch.num_frames, int(model.vae.config.latent_channels), height // factor, width // factor


@torch.no_grad()
def encode_batch(model: GASModel, batch: ClipBatch, noise: TrainingNoise,
                 conditioning: ConditioningConfig) -> tuple[Tensor, GASConditions]:
    """Target latents ``(B, F, 4, h, w)`` (SCALED) and the conditions (dropout applied) of a batch.

    The frozen VAE / CLIP encoder run only for what the batch does not carry cached; the reference
    latent is re-encoded from the noise-augmented reference whenever augmentation is on.
    """
    size, frames = batch.batch_size, batch.num_frames

    def encode_frames(images: Tensor) -> Tensor:  # (B, F, 3, H, W) in [0, 1] -> (B, F, 4, h, w) unscaled
        latents = model.encode_latents(images.flatten(0, 1) * 2.0 - 1.0)
        return latents.reshape(size, frames, *latents.shape[1:])

    if batch.has_cached_latents:
        targets, nerf_latents, embedding = batch.target_latents, batch.nerf_latents, batch.image_embedding
    else:
        targets = encode_frames(batch.frames) * model.scaling_factor
        nerf_latents = encode_frames(batch.nerf)
        embedding = model.encode_image_embedding(batch.reference * 2.0 - 1.0)
    if conditioning.noise_augmentation or batch.reference_latent is None:
        augmented = noise_augment(batch.reference * 2.0 - 1.0, noise.aug_strengths, noise=noise.aug_noise)
        # The augmented image leaves [-1, 1] by a few strengths; the VAE takes it as it is (as SVD does).
        reference_latent = _encode_unchecked(model, augmented)
    else:
        reference_latent = batch.reference_latent
    device = noise.sigmas.device
    conditions = GASConditions(
        reference_latent=reference_latent.float().to(device),
        image_embedding=embedding.float().to(device),
        nerf_latents=nerf_latents.float().to(device),
        normal_maps=batch.normals.to(device),
        mode=batch.mode.to(device),
        added_time_ids=_added_time_ids(size, conditioning, noise.aug_strengths),
    )
    conditions = apply_condition_dropout(conditions, noise.drop_embedding, noise.drop_reference_latent)
    return targets.float().to(device), conditions


def _encode_unchecked(model: GASModel, images: Tensor) -> Tensor:
    """``vae.encode(images).latent_dist.mode()`` (UNSCALED) without the [-1, 1] range check (noise-augmented images)."""
    weight = next(model.vae.parameters())
    return model.vae.encode(images.to(device=weight.device, dtype=weight.dtype)).latent_dist.mode()


def _added_time_ids(batch_size: int, conditioning: ConditioningConfig, strengths: Tensor) -> Tensor:
    ids = svd_added_time_ids(batch_size, fps=conditioning.fps, motion_bucket_id=conditioning.motion_bucket_id,
                             device=strengths.device)
    ids[:, 2] = strengths.float()
    return ids


def training_loss(model: GASModel, denoiser: torch.nn.Module, batch: ClipBatch, noise: TrainingNoise,
                  config: DiffusionTrainConfig) -> Tensor:
    """Per-clip EDM loss ``(B,)`` of one batch: encode, add noise, precondition, denoise, weight.

    ``denoiser`` is ``model.denoiser`` or its DDP wrapper (the call goes through it for gradient sync).
    """
    targets, conditions = encode_batch(model, batch, noise, config.conditioning)
    noisy = add_noise(targets, noise.noise, noise.sigmas)
    preconditioning = edm_preconditioning(noise.sigmas, sigma_data=config.noise.sigma_data)
    model_output = denoiser(append_dims(preconditioning.c_in, noisy.ndim) * noisy, preconditioning.c_noise, conditions)
    denoised = denoise(model_output.float(), noisy, preconditioning)
    return denoising_loss(denoised, targets, noise.sigmas, sigma_data=config.noise.sigma_data)


def _autocast(config: DiffusionTrainConfig, device: torch.device):
    if config.mixed_precision == "no":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
