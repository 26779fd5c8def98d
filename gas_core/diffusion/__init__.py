"""The GAS video diffusion model: SVD 1.1's spatio-temporal UNet with NeRF / normal-map conditions and a view/pose switcher.

Model: :class:`GASModel` (frozen VAE + CLIP image encoder, trainable :class:`GASDenoiser`);
conditions: :class:`GASConditions`, :class:`NormalConditionEncoder`, :class:`NeRFConditionEncoder`,
:class:`GenerationMode`; the UNet: :class:`GASUNet`; sizes: :class:`GASModelPreset`; the official
release's checkpoint layout: :mod:`gas_core.diffusion.official`.
"""

from gas_core.diffusion.conditions import (
    GASConditions,
    GenerationMode,
    NeRFConditionEncoder,
    NormalConditionEncoder,
    svd_added_time_ids,
)
from gas_core.diffusion.model import GASDenoiser, GASModel
from gas_core.diffusion.presets import ConditionEncoderSize, GASModelPreset, ImageEncoderSize, UNetSize, VAESize
from gas_core.diffusion.unet import GASUNet

__all__ = [
    "GASConditions",
    "GenerationMode",
    "NeRFConditionEncoder",
    "NormalConditionEncoder",
    "svd_added_time_ids",
    "GASDenoiser",
    "GASModel",
    "GASUNet",
    "GASModelPreset",
    "UNetSize",
    "VAESize",
    "ImageEncoderSize",
    "ConditionEncoderSize",
]

# EDM training maths of SVD's parametrisation (noise levels, preconditioning, loss weight, augmentation).
from gas_core.diffusion.edm import (  # noqa: E402
    EDMPreconditioning,
    add_noise,
    denoise,
    denoising_loss,
    edm_loss_weight,
    edm_preconditioning,
    karras_sigmas,
    noise_augment,
    sample_log_normal_sigmas,
)

__all__ += [
    "EDMPreconditioning",
    "add_noise",
    "denoise",
    "denoising_loss",
    "edm_loss_weight",
    "edm_preconditioning",
    "karras_sigmas",
    "noise_augment",
    "sample_log_normal_sigmas",
]

# Sampling: EDM Euler steps with per-frame classifier-free guidance and sliding windows.
from gas_core.diffusion.sampler import sample_latents  # noqa: E402

__all__ += ["sample_latents"]
