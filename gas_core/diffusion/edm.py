"""EDM maths of Stable Video Diffusion's training parametrisation (Karras et al. 2022, "EDM").

SVD is trained in the EDM framework with sigma_data = 1 and a v-prediction-style output. For a
clean latent ``x`` (SCALED VAE latent, unit-less), Gaussian noise ``n`` and noise level ``sigma``
(standard deviation of the added noise, in latent units):

* noisy latent ``x_sigma = x + sigma * n`` (:func:`add_noise`);
* the network sees ``c_in * x_sigma`` and the "timestep" ``c_noise`` and returns ``F``;
* the denoised estimate is ``D = c_skip * x_sigma + c_out * F`` (:func:`denoise`);
* the loss is ``lambda(sigma) * ||D - x||^2`` (:func:`denoising_loss`).

With ``s = sigma_data`` (:func:`edm_preconditioning`)::

    c_in    = 1 / sqrt(sigma^2 + s^2)
    c_noise = ln(sigma) / 4
    c_skip  = s^2 / (sigma^2 + s^2)
    c_out   = -sigma * s / sqrt(sigma^2 + s^2)      (the sign SVD's v-prediction UNet uses)
    lambda  = (sigma^2 + s^2) / (sigma * s)^2

Training noise levels are log-normal, ``ln sigma ~ N(P_mean, P_std^2)``
(:func:`sample_log_normal_sigmas`). The conditioning image is noise-augmented in pixel space
(:func:`noise_augment`) with a strength that SVD also receives as its third added time id.

Default values (P_mean 0.7, P_std 1.6; augmentation strength log-normal with mean -3.0 and std
0.5, i.e. median about 0.05) are those of the public SVD fine-tuning script ``train_svd.py`` of
SVD_Xtend (github.com/pixeli99/SVD_Xtend), which the derived SVD fine-tuning projects share; the
formulas above are the ones that script uses (EDM with sigma_data = 1). They are re-derived here,
with a general ``sigma_data``, from the EDM paper's Table 1.

All functions are pure (no global random state: pass a ``torch.Generator`` for reproducibility)
and work on any device and floating dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "SVD_SIGMA_LOG_MEAN",
    "SVD_SIGMA_LOG_STD",
    "SVD_NOISE_AUG_LOG_MEAN",
    "SVD_NOISE_AUG_LOG_STD",
    "EDMPreconditioning",
    "add_noise",
    "append_dims",
    "denoise",
    "denoising_loss",
    "edm_loss_weight",
    "edm_preconditioning",
    "karras_sigmas",
    "noise_augment",
    "sample_log_normal_sigmas",
]

#: ln(sigma) ~ N(0.7, 1.6^2): the training noise levels of SVD fine-tuning (SVD_Xtend train_svd.py).
SVD_SIGMA_LOG_MEAN = 0.7
SVD_SIGMA_LOG_STD = 1.6
#: Conditioning-image noise augmentation strength ~ LogNormal(-3.0, 0.5) (SVD_Xtend train_svd.py).
SVD_NOISE_AUG_LOG_MEAN = -3.0
SVD_NOISE_AUG_LOG_STD = 0.5


def append_dims(values: Tensor, ndim: int) -> Tensor:
    """View per-sample values ``(B,)`` as ``(B, 1, ..., 1)`` with ``ndim`` dimensions, for broadcasting."""
    if values.ndim != 1:
        raise ValueError(f"values must be (B,), got shape {tuple(values.shape)}")
    if ndim < 1:
        raise ValueError(f"ndim must be >= 1, got {ndim}")
    return values.reshape(values.shape[0], *([1] * (ndim - 1)))


def _check_sigma_data(sigma_data: float) -> float:
    if not sigma_data > 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
    return float(sigma_data)


def _check_sigmas(sigmas: Tensor) -> Tensor:
    if sigmas.ndim != 1:
        raise ValueError(f"sigmas must be (B,), got shape {tuple(sigmas.shape)}")
    if not torch.is_floating_point(sigmas):
        raise ValueError(f"sigmas must be floating point, got {sigmas.dtype}")
    if bool((sigmas <= 0).any()):
        raise ValueError("sigmas must be > 0")
    return sigmas


def sample_log_normal_sigmas(
    batch_size: int,
    *,
    log_mean: float = SVD_SIGMA_LOG_MEAN,
    log_std: float = SVD_SIGMA_LOG_STD,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Noise levels ``sigma = exp(log_mean + log_std * z)``, ``z ~ N(0, 1)``: ``(batch_size,)``, > 0.

    ``generator`` (on ``device``) makes the draw reproducible. ``log_std = 0`` gives a constant.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if log_std < 0:
        raise ValueError(f"log_std must be >= 0, got {log_std}")
    normal = torch.randn(batch_size, generator=generator, device=device, dtype=torch.float32)
    return torch.exp(log_mean + log_std * normal).to(dtype)


@dataclass(frozen=True)
class EDMPreconditioning:
    """Per-sample EDM coefficients, each ``(B,)`` (dimensionless; ``c_noise`` is the UNet's timestep)."""

    c_in: Tensor
    c_noise: Tensor
    c_skip: Tensor
    c_out: Tensor


def edm_preconditioning(sigmas: Tensor, *, sigma_data: float = 1.0) -> EDMPreconditioning:
    """EDM preconditioning of noise levels ``sigmas`` ``(B,)`` (> 0), in SVD's v-prediction sign convention.

    ``c_in = 1/sqrt(sigma^2+s^2)``, ``c_noise = ln(sigma)/4``, ``c_skip = s^2/(sigma^2+s^2)``,
    ``c_out = -sigma*s/sqrt(sigma^2+s^2)`` with ``s = sigma_data`` (1 for SVD).
    """
    sigmas = _check_sigmas(sigmas)
    sd = _check_sigma_data(sigma_data)
    total = sigmas**2 + sd**2
    return EDMPreconditioning(
        c_in=torch.rsqrt(total),
        c_noise=torch.log(sigmas) / 4.0,
        c_skip=sd**2 / total,
        c_out=-sigmas * sd * torch.rsqrt(total),
    )


def edm_loss_weight(sigmas: Tensor, *, sigma_data: float = 1.0) -> Tensor:
    """EDM loss weight ``lambda(sigma) = (sigma^2 + s^2) / (sigma * s)^2``: ``(B,)``.

    It makes the effective target of the network output ``F`` have unit variance at every noise level.
    """
    sigmas = _check_sigmas(sigmas)
    sd = _check_sigma_data(sigma_data)
    return (sigmas**2 + sd**2) / (sigmas * sd) ** 2


def add_noise(latents: Tensor, noise: Tensor, sigmas: Tensor) -> Tensor:
    """``latents + sigma * noise``: ``latents``, ``noise`` ``(B, ...)``, ``sigmas`` ``(B,)`` -> ``(B, ...)``."""
    if latents.shape != noise.shape:
        raise ValueError(f"noise must have the shape of latents {tuple(latents.shape)}, got {tuple(noise.shape)}")
    if sigmas.shape != (latents.shape[0],):
        raise ValueError(f"sigmas must be (B={latents.shape[0]},), got {tuple(sigmas.shape)}")
    return latents + append_dims(sigmas.to(latents.dtype), latents.ndim) * noise


def denoise(model_output: Tensor, noisy_latents: Tensor, preconditioning: EDMPreconditioning) -> Tensor:
    """Denoised estimate ``c_skip * x_sigma + c_out * F``: tensors ``(B, ...)`` -> ``(B, ...)``.

    ``noisy_latents`` is ``x_sigma`` BEFORE the ``c_in`` scaling; ``model_output`` is the raw network output ``F``.
    """
    if model_output.shape != noisy_latents.shape:
        raise ValueError(
            f"model_output {tuple(model_output.shape)} must have the shape of noisy_latents {tuple(noisy_latents.shape)}"
        )
    ndim = noisy_latents.ndim
    c_skip = append_dims(preconditioning.c_skip, ndim).to(noisy_latents.dtype)
    c_out = append_dims(preconditioning.c_out, ndim).to(model_output.dtype)
    return c_skip * noisy_latents + c_out * model_output


def denoising_loss(denoised: Tensor, target: Tensor, sigmas: Tensor, *, sigma_data: float = 1.0) -> Tensor:
    """Per-sample EDM loss ``lambda(sigma) * mean((D - x)^2)`` over all but the batch dimension: ``(B,)``.

    Computed in float32 whatever the input dtype (the autocast-safe choice).
    """
    if denoised.shape != target.shape:
        raise ValueError(f"denoised {tuple(denoised.shape)} and target {tuple(target.shape)} must have the same shape")
    squared = (denoised.float() - target.float()) ** 2
    per_sample = squared.reshape(squared.shape[0], -1).mean(dim=1)
    return edm_loss_weight(sigmas.float(), sigma_data=sigma_data) * per_sample


def noise_augment(images: Tensor, strengths: Tensor, *, generator: torch.Generator | None = None,
                  noise: Tensor | None = None) -> Tensor:
    """Conditioning-image noise augmentation ``images + strength * n``, ``n ~ N(0, 1)``.

    ``images``: ``(B, C, H, W)`` in [-1, 1] (not clipped afterwards, as SVD does); ``strengths``
    ``(B,)`` >= 0, in the same units (the value SVD also receives as ``noise_aug_strength``).
    ``noise``: the standard normal draw ``n`` (shape of ``images``) when the caller made it already;
    otherwise it is drawn with ``generator``.
    """
    if images.ndim < 2:
        raise ValueError(f"images must be (B, ...), got shape {tuple(images.shape)}")
    if strengths.shape != (images.shape[0],):
        raise ValueError(f"strengths must be (B={images.shape[0]},), got {tuple(strengths.shape)}")
    if bool((strengths < 0).any()):
        raise ValueError("strengths must be >= 0")
    if noise is None:
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    elif noise.shape != images.shape:
        raise ValueError(f"noise must have the shape of images {tuple(images.shape)}, got {tuple(noise.shape)}")
    return images + append_dims(strengths.to(images.dtype), images.ndim) * noise


def karras_sigmas(num_steps: int, *, sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0) -> Tensor:
    """Decreasing noise levels of the EDM sampler (Karras et al. eq. 5) plus a final 0: ``(num_steps + 1,)``.

    The defaults are SVD's scheduler range (sigma_min 0.002, sigma_max 700, rho 7).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    ramp = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64) if num_steps > 1 else torch.zeros(1, dtype=torch.float64)
    inv_max, inv_min = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    sigmas = (inv_max + ramp * (inv_min - inv_max)) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).float()

