"""Sampling the GAS video diffusion model: deterministic EDM Euler steps with per-frame guidance and windows.

Each step at noise level ``sigma_i`` (a decreasing Karras schedule, :func:`karras_sigmas`, ending
at 0) computes the denoised estimate ``D`` of the current latents and moves along the
probability-flow ODE: ``x <- x + (x - D) / sigma_i * (sigma_{i+1} - sigma_i)``.

* Classifier-free guidance: the conditional branch and the unconditional one
  (:meth:`GASConditions.without_reference`: reference latent and CLIP embedding zeroed, NeRF and
  normal-map conditions kept) run as ONE denoiser call on a batch of 2B, and are combined per
  frame with :func:`apply_guidance`. When every scale is 1 the unconditional half is skipped.
* Long sequences: with ``window`` set and more frames than ``window``, every step denoises the
  overlapping windows of :func:`sliding_windows` (each holds the reference frame 0 and the
  conditions of its own frames) and averages their denoised estimates with :func:`blend_windows`;
  a denoiser call then sees at most ``window`` frames whatever the sequence length.
  ``window_convention="official"`` reads ``overlap`` as the release's ``tile_overlap`` (counting the
  shared reference frame); ``tiled_noise=True`` draws the initial noise as the release does (one
  window of noise repeated in time, :func:`tiled_initial_noise`). Both default to the project's behaviour.

Default noise range: SVD's sampling setup, sigma in [0.002, 700] with rho = 7. These are the values
of Stability AI's SVD sampling options (generative-models ``scripts/sampling/simple_video_sample.py``:
``sigma_min 0.002, sigma_max 700.0, rho 7.0``, 25 steps) and of the ``sigma_min`` / ``sigma_max``
of the SVD img2vid ``scheduler/scheduler_config.json`` used with diffusers' ``EulerDiscreteScheduler``
(``use_karras_sigmas``); diffusers 0.42.1 hard-codes ``rho = 7.0`` in
``EulerDiscreteScheduler._convert_to_karras``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gas_core.diffusion.conditions import GASConditions
from gas_core.diffusion.edm import append_dims, denoise, edm_preconditioning, karras_sigmas
from gas_core.diffusion.guidance import apply_guidance
from gas_core.diffusion.model import GASModel
from gas_core.diffusion.windows import WINDOW_CONVENTIONS, blend_windows, sliding_windows, tiled_initial_noise

__all__ = ["SVD_SAMPLING_SIGMA_MIN", "SVD_SAMPLING_SIGMA_MAX", "SVD_SAMPLING_RHO", "sample_latents"]

#: SVD's sampling noise range and Karras exponent (see the module docstring for the sources).
SVD_SAMPLING_SIGMA_MIN = 0.002
SVD_SAMPLING_SIGMA_MAX = 700.0
SVD_SAMPLING_RHO = 7.0


def _guidance_per_clip(guidance_scales: Tensor | None, batch: int, frames: int, device: torch.device) -> Tensor | None:
    """``guidance_scales`` as float32 ``(B, F)`` on ``device``, or None when no unconditional pass is needed."""
    if guidance_scales is None:
        return None
    if not isinstance(guidance_scales, Tensor):
        raise ValueError(f"guidance_scales must be a Tensor (F,) or (B, F) or None, got {type(guidance_scales).__name__}")
    if guidance_scales.shape not in {(frames,), (batch, frames)}:
        raise ValueError(f"guidance_scales must be (F={frames},) or (B={batch}, F={frames}), got {tuple(guidance_scales.shape)}")
    scales = guidance_scales.to(device=device, dtype=torch.float32).expand(batch, frames)
    if not bool(torch.isfinite(scales).all()):
        raise ValueError("guidance_scales must be finite")
    if bool((scales == 1).all()):
        return None
    return scales


def _frames_of(conditions: GASConditions, frame_index: Tensor) -> GASConditions:
    """The conditions of the frames ``frame_index`` ``(n,)`` (per-frame fields sliced, per-clip fields kept)."""
    return replace(conditions, nerf_latents=conditions.nerf_latents.index_select(1, frame_index),
                   normal_maps=conditions.normal_maps.index_select(1, frame_index))


@torch.no_grad()
def sample_latents(
    model: GASModel,
    conditions: GASConditions,
    *,
    num_steps: int = 25,
    guidance_scales: Tensor | None = None,
    window: int | None = None,
    overlap: int = 4,
    window_convention: str = "project",
    tiled_noise: bool = False,
    generator: torch.Generator | None = None,
    sigma_min: float = SVD_SAMPLING_SIGMA_MIN,
    sigma_max: float = SVD_SAMPLING_SIGMA_MAX,
    rho: float = SVD_SAMPLING_RHO,
    sigma_data: float = 1.0,
    progress: bool = False,
    step_callback: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Sample B clips of F frames: SCALED latents ``(B, F, 4, h, w)`` (decode with ``model.decode_latents``).

    Args:
        model: the GAS model; its denoiser is put in eval mode for the call and restored afterwards.
        conditions: conditions of B clips of F frames (F from ``conditions.nerf_latents``), see
            :class:`GASConditions`; the latent size ``(4, h, w)`` is that of ``reference_latent``.
        num_steps: Euler steps (>= 1), i.e. denoiser evaluations per window.
        guidance_scales: classifier-free guidance per frame, ``(F,)`` or ``(B, F)`` (e.g.
            :func:`view_guidance_scales` / :func:`pose_guidance_scales`); None, or all ones, means
            no guidance and no unconditional pass.
        window: frames per denoiser call including the reference frame 0 (>= 2); None or >= F
            denoises all frames at once.
        overlap: frames (besides the reference) shared by consecutive windows, in [0, window - 1);
            only used when ``window`` is set. With ``window_convention="official"`` it counts the
            shared reference frame as the release's ``tile_overlap`` does, in [1, window).
        window_convention: ``"project"`` or ``"official"``, see :func:`sliding_windows`.
        tiled_noise: draw the initial noise for ``window`` frames (all F when ``window`` is None)
            once and repeat it along time, as the release does; False draws independent noise per frame.
        generator: draws the initial noise (on the conditions' device); the sampler is otherwise
            deterministic, so the same generator state gives the same result.
        sigma_min, sigma_max, rho: the Karras noise schedule (latent units); defaults are SVD's.
        sigma_data: EDM's data standard deviation (1 for SVD).
        progress: show a progress bar over the steps.
        step_callback: called as ``step_callback(done, num_steps)`` after each Euler step (e.g. a
            progress display); None calls nothing.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    reference = conditions.reference_latent
    if reference.ndim != 4:
        raise ValueError(f"conditions.reference_latent must be (B, 4, h, w), got {tuple(reference.shape)}")
    if conditions.nerf_latents.ndim != 5:
        raise ValueError(f"conditions.nerf_latents must be (B, F, 4, h, w), got {tuple(conditions.nerf_latents.shape)}")
    batch, channels, height, width = reference.shape
    frames = conditions.nerf_latents.shape[1]
    device = reference.device
    if window_convention not in WINDOW_CONVENTIONS:
        raise ValueError(f"window_convention must be one of {WINDOW_CONVENTIONS}, got {window_convention!r}")
    if not isinstance(tiled_noise, bool):
        raise ValueError(f"tiled_noise must be a bool, got {tiled_noise!r}")
    if window is None:
        windows = [list(range(frames))]
    else:
        if not isinstance(window, int) or isinstance(window, bool):
            raise ValueError(f"window must be an int or None, got {window!r}")
        windows = sliding_windows(frames, window, overlap, convention=window_convention)  # validates both
    scales = _guidance_per_clip(guidance_scales, batch, frames, device)
    sigmas = karras_sigmas(num_steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho).to(device)

    shape = (batch, frames, channels, height, width)
    if tiled_noise:
        noise = tiled_initial_noise(shape, frames if window is None else window, generator=generator, device=device)
    else:
        noise = torch.randn(shape, generator=generator, device=device)
    latents = noise * sigmas[0]
    conditions.validate(latents)
    # Guided: one batch of 2B per call, conditional clips first, then the same clips without the reference.
    branches = conditions if scales is None else GASConditions.concatenate([conditions, conditions.without_reference()])
    branch_count = 1 if scales is None else 2
    single_window = len(windows) == 1
    frame_indices = [torch.as_tensor(indices, device=device) for indices in windows]
    window_conditions = [branches if single_window else _frames_of(branches, index) for index in frame_indices]

    was_training = model.denoiser.training
    model.denoiser.eval()
    try:
        for step in tqdm(range(num_steps), disable=not progress, desc="sampling", unit="step"):
            sigma = sigmas[step]
            preconditioning = edm_preconditioning(sigma.expand(batch * branch_count), sigma_data=sigma_data)
            predictions = []
            for index, window_condition in zip(frame_indices, window_conditions):
                window_latents = latents if single_window else latents.index_select(1, index)
                noisy = window_latents.repeat(branch_count, 1, 1, 1, 1)
                output = model.denoiser(append_dims(preconditioning.c_in, 5) * noisy, preconditioning.c_noise,
                                        window_condition)
                denoised = denoise(output.float(), noisy, preconditioning)
                if scales is not None:
                    conditional, unconditional = denoised.chunk(2)
                    window_scales = scales if single_window else scales.index_select(1, index)
                    denoised = apply_guidance(unconditional, conditional, window_scales)
                predictions.append(denoised)
            denoised = predictions[0] if single_window else blend_windows(predictions, windows, frames)
            derivative = (latents - denoised) / sigma
            latents = latents + derivative * (sigmas[step + 1] - sigma)
            if step_callback is not None:
                step_callback(step + 1, num_steps)
    finally:
        model.denoiser.train(was_training)
    return latents
