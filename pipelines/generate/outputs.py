"""What a generation writes: :class:`GenerateResult` and the frame, strip, MP4 and JSON helpers."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


_SMPL_KEYS = ("betas", "body_pose", "global_orient", "transl", "scale")


@dataclass
class GenerateResult:
    """What :meth:`SingleImageGenerator.generate` wrote and how long each stage took (seconds)."""

    out_dir: Path
    frames_dir: Path
    video: Path | None
    strip: Path | None
    num_frames: int
    seconds: dict[str, float] = field(default_factory=dict)
    #: classifier-free guidance scale of every written frame (``frames/frame_0000.png`` first)
    guidance_scales: tuple[float, ...] = ()

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds.get("total", float("nan")) / max(self.num_frames, 1)


def _to_uint8_frames(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    pixels = ((images.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _strip_image(rows: Sequence[np.ndarray], max_frames: int) -> np.ndarray:
    """Rows of frames (each uint8 (N, H, W, 3)) side by side; at most ``max_frames`` evenly chosen columns."""
    count = rows[0].shape[0]
    columns = np.unique(np.linspace(0, count - 1, min(count, max_frames)).round().astype(int))
    gap = 2
    height, width = rows[0].shape[1:3]
    canvas = np.full((len(rows) * (height + gap) - gap, len(columns) * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for r, frames in enumerate(rows):
        for c, index in enumerate(columns):
            canvas[r * (height + gap):r * (height + gap) + height, c * (width + gap):c * (width + gap) + width] = frames[index]
    return canvas


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    """MP4 (H.264) of uint8 (N, H, W, 3) frames, atomically (through :mod:`gas_core.videoio`)."""
    from gas_core import videoio

    videoio.write_mp4(frames, path, fps)


def _json_ready(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value
