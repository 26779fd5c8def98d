"""Placing a scan in the orbit's frame: centre it at the origin and optionally rescale it.

Scans (THuman2.1, 2K2K) come in metres with the body y-up and facing +z but at arbitrary positions.
:func:`normalize_scan` centres the axis-aligned bounding box at the origin (so the orbit, which looks
at the origin, frames the whole body) and, only when asked, rescales so the body's height (its y
extent) equals ``target_height`` metres. The default keeps metric scale (``target_height=None``),
because body-model fitting and the NeRF rely on real sizes; pass a height (e.g. 1.7) for scans stored
in other units. The transform is recorded so renders can be mapped back to the raw scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Normalization", "normalize_scan"]


@dataclass(frozen=True)
class Normalization:
    """``p_normalized = (p_raw - center) * scale``; ``center`` (3,) metres (raw frame), ``scale`` unitless."""

    center: np.ndarray
    scale: float

    def __post_init__(self) -> None:
        center = np.asarray(self.center, dtype=np.float64)
        if center.shape != (3,) or not np.all(np.isfinite(center)):
            raise ValueError(f"center must be a finite (3,) vector, got {center}")
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be finite and positive, got {self.scale}")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "scale", float(self.scale))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Raw points (..., 3) -> normalised points (..., 3), float64."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape[-1] != 3:
            raise ValueError(f"points must have a last dimension of 3, got {points.shape}")
        return (points - self.center) * self.scale

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Normalised points (..., 3) -> raw points (..., 3), float64."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape[-1] != 3:
            raise ValueError(f"points must have a last dimension of 3, got {points.shape}")
        return points / self.scale + self.center

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"center": [x, y, z], "scale": s}``."""
        return {"center": self.center.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Normalization":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a missing key."""
        missing = [key for key in ("center", "scale") if key not in data]
        if missing:
            raise ValueError(f"normalization dict is missing {missing}")
        return cls(center=np.asarray(data["center"], dtype=np.float64), scale=float(data["scale"]))


def normalize_scan(vertices: np.ndarray, target_height: float | None = None) -> Normalization:
    """The transform that centres ``vertices`` (V, 3) and scales their y extent to ``target_height``.

    ``vertices``: (V, 3) metres (world y up). ``target_height``: metres, or ``None`` to keep scale 1.
    Raises ``ValueError`` for an empty or non-finite ``vertices`` or a non-positive ``target_height``.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got shape {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError("vertices contain NaN or infinite values")
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    center = 0.5 * (low + high)
    scale = 1.0
    if target_height is not None:
        if not np.isfinite(target_height) or target_height <= 0:
            raise ValueError(f"target_height must be positive, got {target_height}")
        height = high[1] - low[1]
        if height <= 0:
            raise ValueError("vertices have no extent along y, so their height cannot be rescaled")
        scale = float(target_height) / float(height)
    return Normalization(center=center, scale=scale)
