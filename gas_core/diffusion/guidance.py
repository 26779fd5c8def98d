"""Classifier-free guidance scales per frame, as the paper's inference uses them (section 3.5).

* View mode (an orbit of novel views): a triangular schedule over the orbit, ``min_scale`` at the
  front (reference) view, rising linearly with the camera's azimuth to ``max_scale`` at the back
  view and falling back to ``min_scale``. The scale is a function of the azimuth
  ``360 * i / num_frames`` degrees, so it is defined for any frame count; for 20 frames it gives
  1.0, 1.1, ..., 2.0 (frame 10, the back view), 1.9, ..., 1.1 — the values the official release
  hard-codes for 20 frames.
* Pose mode (novel poses under a fixed camera): one fixed scale (2 in the paper) for every frame.

Guidance is applied as ``uncond + scale * (cond - uncond)`` per frame.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["view_guidance_scales", "pose_guidance_scales", "apply_guidance"]


def _check_count(num_frames: int) -> None:
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")


def view_guidance_scales(num_frames: int, min_scale: float = 1.0, max_scale: float = 2.0) -> Tensor:
    """Triangular guidance over an orbit: float32 (num_frames,), frame ``i`` at azimuth ``360 i / num_frames``.

    ``min_scale`` at azimuth 0 (the reference view), ``max_scale`` at 180 degrees (the back view).
    """
    _check_count(num_frames)
    if min_scale < 0 or max_scale < 0:
        raise ValueError(f"min_scale and max_scale must be >= 0, got {min_scale}, {max_scale}")
    azimuth = torch.arange(num_frames, dtype=torch.float64) * (360.0 / num_frames)
    closeness_to_back = 1.0 - (azimuth - 180.0).abs() / 180.0
    return (min_scale + (max_scale - min_scale) * closeness_to_back).float()


def pose_guidance_scales(num_frames: int, scale: float = 2.0) -> Tensor:
    """The fixed pose-mode guidance: float32 (num_frames,) filled with ``scale``."""
    _check_count(num_frames)
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    return torch.full((num_frames,), float(scale))


def apply_guidance(uncond: Tensor, cond: Tensor, scales: Tensor) -> Tensor:
    """``uncond + scales * (cond - uncond)`` for predictions (B, F, C, h, w) and per-frame ``scales`` (F,) or (B, F)."""
    if uncond.shape != cond.shape or uncond.ndim != 5:
        raise ValueError(f"uncond and cond must share a (B, F, C, h, w) shape, got {tuple(uncond.shape)}, {tuple(cond.shape)}")
    if scales.ndim == 1:
        scales = scales[None]
    if scales.ndim != 2 or scales.shape[-1] != uncond.shape[1]:
        raise ValueError(f"scales must be (F,) or (B, F) with F={uncond.shape[1]}, got {tuple(scales.shape)}")
    scales = scales.to(device=uncond.device, dtype=uncond.dtype)[..., None, None, None]
    return uncond + scales * (cond - uncond)
