"""Scene effects of stress videos: cluttered backdrops, lighting changes, camera shake and zoom.

All are seeded and exact: the lighting is a per-frame RGB gain on the whole image, and shake and zoom
are a per-frame affine warp of the rendered image (a pinhole camera whose principal point moves and
whose focal length grows, so the warped masks and keypoints are the ground truth of the warped frames).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["cluttered_backdrop", "lighting_gains", "shake_zoom_warps", "warp_frame", "warp_points"]


def cluttered_backdrop(width: int, height: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: a textured, cluttered background: high-frequency stripes and checks, and 40
    random boxes and discs, some in skin and garment-like colours, so colour and edges do not tell the
    person from the scene."""
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    rng = np.random.default_rng([seed, 0xC1A7])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    period = rng.uniform(0.02, 0.06) * max(width, height)
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / period)
    base_a, base_b = rng.uniform(40, 220, size=3), rng.uniform(40, 220, size=3)
    image = base_a * stripes[..., None] + base_b * (1 - stripes[..., None])
    for _ in range(40):
        colour = rng.uniform(0, 255, size=3) if rng.uniform() < 0.6 else np.array([224, 172, 138]) + rng.normal(0, 20, 3)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(0.03, 0.15) * max(width, height)
        if rng.uniform() < 0.5:
            inside = (np.abs(xx - cx) < size) & (np.abs(yy - cy) < size * rng.uniform(0.3, 1.5))
        else:
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 < size**2
        checks = ((xx // max(2, size / 4) + yy // max(2, size / 4)) % 2)[..., None]
        patch = colour * (0.75 + 0.25 * checks)
        image = np.where(inside[..., None], patch, image)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def lighting_gains(num_frames: int, seed: int) -> np.ndarray:
    """(T, 3) per-frame RGB gains: a slow drift from dim to bright (0.6 to 1.25), a light switched at a
    random frame (a step of 0.75 or 1.3), and a slight colour tint."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rng = np.random.default_rng([seed, 0x11647])
    u = np.linspace(0.0, 1.0, num_frames)
    start, end = rng.uniform(0.6, 0.8), rng.uniform(1.05, 1.25)
    gain = start + (end - start) * u
    step = int(rng.integers(num_frames // 3, max(num_frames // 3 + 1, 2 * num_frames // 3)))
    gain[step:] *= float(rng.choice([0.75, 1.3]))
    tint = 1.0 + rng.uniform(-0.12, 0.12, size=3)
    return gain[:, None] * tint[None]


def shake_zoom_warps(num_frames: int, size: tuple[int, int], seed: int, *, shake_px: float = 4.0,
                     zoom: float = 1.25) -> np.ndarray:
    """(T, 2, 3) affine maps from rendered to shown pixels: a zoom about the image centre from 1 to
    ``zoom`` (smooth ramp over the clip) and a hand-held shake of about ``shake_px`` pixels (smoothed
    random walk). ``size``: (W, H) pixels."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not zoom > 0 or shake_px < 0:
        raise ValueError(f"zoom must be positive and shake_px >= 0, got {zoom}, {shake_px}")
    rng = np.random.default_rng([seed, 0x5A4E])
    width, height = size
    u = np.linspace(0.0, 1.0, num_frames)
    scale = 1.0 + (zoom - 1.0) * (0.5 - 0.5 * np.cos(math.pi * u))
    walk = np.cumsum(rng.normal(0.0, 1.0, size=(num_frames + 4, 2)), axis=0)
    walk = np.stack([np.convolve(walk[:, i], np.ones(5) / 5, mode="valid") for i in range(2)], axis=1)[:num_frames]
    walk -= walk.mean(axis=0)
    shake = shake_px * walk / max(np.abs(walk).max(), 1e-9)
    centre = np.array([width / 2.0, height / 2.0])
    warps = np.zeros((num_frames, 2, 3))
    warps[:, 0, 0] = warps[:, 1, 1] = scale
    warps[:, :, 2] = centre[None] * (1.0 - scale[:, None]) + shake
    return warps


def warp_frame(image: np.ndarray, warp: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """``image`` (H, W[, C]) through the affine ``warp`` (2, 3), same size; borders reflected for images,
    zero for masks (``nearest``)."""
    height, width = image.shape[:2]
    if nearest:
        return cv2.warpAffine(image, warp, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)
    return cv2.warpAffine(image, warp, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def warp_points(points: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """(..., 2) pixel points through the affine ``warp`` (2, 3)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ warp[:, :2].T + warp[:, 2]
