"""The GAS video diffusion model: SVD 1.1's spatio-temporal UNet with NeRF / normal-map conditions and a view/pose switcher.

Model: :class:`GASModel` (frozen VAE + CLIP image encoder, trainable :class:`GASDenoiser`);
conditions: :class:`GASConditions`, :class:`NormalConditionEncoder`, :class:`NeRFConditionEncoder`,
:class:`GenerationMode`; the UNet: :class:`GASUNet`; sizes: :class:`GASModelPreset`; the official
release's checkpoint layout: :mod:`gas_core.diffusion.official`. The EDM training maths of SVD's
parametrisation (noise levels, preconditioning, loss weight, augmentation) is :mod:`gas_core.diffusion.edm`;
sampling (EDM Euler steps with per-frame classifier-free guidance and sliding windows) is
:func:`sample_latents`.

The package exports its submodules' public names (their ``__all__``) but for the few listed in
``_SUBMODULE_ONLY`` (SVD's noise constants, the UNet's mode count, tensor helpers), which are
imported from their submodule.
"""

from gas_core.diffusion import conditions, edm, model, presets, sampler, unet
from gas_core.diffusion.conditions import *  # noqa: F403
from gas_core.diffusion.edm import *  # noqa: F403
from gas_core.diffusion.model import *  # noqa: F403
from gas_core.diffusion.presets import *  # noqa: F403
from gas_core.diffusion.sampler import *  # noqa: F403
from gas_core.diffusion.unet import *  # noqa: F403

#: Public names of the submodules that the package does not re-export.
_SUBMODULE_ONLY = frozenset({
    "DENOISER_PARTS",  # model
    "NUM_MODES",  # unet
    "SVD_SIGMA_LOG_MEAN", "SVD_SIGMA_LOG_STD", "SVD_NOISE_AUG_LOG_MEAN", "SVD_NOISE_AUG_LOG_STD", "append_dims",  # edm
    "SVD_SAMPLING_SIGMA_MIN", "SVD_SAMPLING_SIGMA_MAX", "SVD_SAMPLING_RHO",  # sampler
})

__all__ = [name for module in (conditions, model, unet, presets, edm, sampler) for name in module.__all__
           if name not in _SUBMODULE_ONLY]
