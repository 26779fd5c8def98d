"""Sampling one clip with the diffusion model: its conditions, seeded noise, guidance, windows and chunked decoding."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from gas_core.diffusion import GASConditions, GASModel, GenerationMode, sample_latents, svd_added_time_ids
from gas_core.diffusion.guidance import pose_guidance_scales, view_guidance_scales
from pipelines.evaluate.config import SamplingConfig


@torch.no_grad()
def clip_conditions(model: GASModel, clip: Mapping[str, Any], num_frames: int, sampling: SamplingConfig,
                    device: torch.device) -> GASConditions:
    """The conditions of one clip's first ``num_frames`` frames (batch of 1).

    ``clip``: a :func:`shards.reader.clip_to_tensors` dict (``reference`` (3, H, W), ``nerf`` and
    ``normals`` (N, 3, H, W) in [0, 1], ``mode``). The reference and NeRF latents are the VAE's
    UNSCALED ``latent_dist.mode()``; no noise augmentation (strength 0, as the release samples).
    """
    reference = clip["reference"][None].to(device) * 2.0 - 1.0
    nerf = clip["nerf"][:num_frames].to(device) * 2.0 - 1.0
    normals = clip["normals"][:num_frames].to(device)
    reference_latent = model.encode_latents(reference)
    nerf_latents = model.encode_latents(nerf, chunk_size=int(sampling.decode_chunk))
    mode = GenerationMode.VIEW if clip["mode"] == "view" else GenerationMode.POSE
    return GASConditions(
        reference_latent=reference_latent.float(),
        image_embedding=model.encode_image_embedding(reference).float(),
        nerf_latents=nerf_latents.float()[None],
        normal_maps=normals[None].float(),
        mode=mode.one_hot(1, device=device),
        added_time_ids=svd_added_time_ids(1, fps=int(sampling.fps), motion_bucket_id=int(sampling.motion_bucket_id),
                                          device=device),
    )


def _clip_generator_seed(seed: int, key: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 63)


@torch.no_grad()
def generate_clip(model: GASModel, clip: Mapping[str, Any], num_frames: int, sampling: SamplingConfig,
                  device: torch.device, *, key: str = "") -> Tensor:
    """The model's frames for the first ``num_frames`` frames of ``clip``: float32 ``(F, 3, H, W)`` in [0, 1] (CPU).

    Guidance per frame: view clips the triangular schedule (``view_guidance_min`` at the reference,
    ``view_guidance_max`` at the back view), pose clips ``pose_guidance``; windows of
    ``sampling.window`` frames (all holding the reference frame 0) when the clip is longer. The
    initial noise is seeded by ``sampling.seed`` and ``key``.
    """
    if num_frames < 1 or num_frames > int(clip["nerf"].shape[0]):
        raise ValueError(f"num_frames must be in [1, {int(clip['nerf'].shape[0])}], got {num_frames}")
    conditions = clip_conditions(model, clip, num_frames, sampling, device)
    if clip["mode"] == "view":
        scales = view_guidance_scales(num_frames, float(sampling.view_guidance_min), float(sampling.view_guidance_max))
    else:
        scales = pose_guidance_scales(num_frames, float(sampling.pose_guidance))
    generator = torch.Generator(device=device).manual_seed(_clip_generator_seed(sampling.seed, key))
    window = None if sampling.window is None or num_frames <= int(sampling.window) else int(sampling.window)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" and sampling.bf16 \
        else _null_context()
    with autocast:
        latents = sample_latents(model, conditions, num_steps=int(sampling.num_steps), guidance_scales=scales,
                                 window=window, overlap=int(sampling.overlap),
                                 window_convention=sampling.window_convention, tiled_noise=bool(sampling.tiled_noise),
                                 generator=generator)
    latents = latents[0].float()
    frames = []
    chunk = int(sampling.decode_chunk)
    for start in range(0, num_frames, chunk):
        part = latents[start:start + chunk]
        frames.append(model.decode_latents(part, num_frames=part.shape[0]).float().cpu())
    return ((torch.cat(frames).clamp(-1, 1) + 1.0) / 2.0)


class _null_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: Any) -> None:
        return None
