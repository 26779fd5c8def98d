"""GrabCut refinement of the background model's subject mask (no weights; static camera).

A temporal-median background absorbs a subject that covers the same pixels for most of the median window
(dancing or turning in place): only its moving parts (arms, edges) differ from the estimate, and the
background-subtraction mask covers a fraction of the person. :func:`grabcut_refine` completes it with
``cv2.grabCut`` (colour models of subject and surroundings plus a graph cut), started from a mask built out
of the evidence at hand, on a crop around the subject's box:

* probable foreground: the convex hull of the background-subtraction foreground inside the box, plus the
  previous frame's refined mask (the subject moves little between frames; this carries the absorbed
  torso along);
* sure foreground (optional, off by default): that foreground, eroded. Off measures better: a median that
  holds the subject leaves "ghost" foreground where the subject was, which sure labels would lock in;
* probable background: the rest of the box grown by ``box_margin``;
* sure background: the rest of the crop (a ring of ``context`` box sizes around the grown box) and every
  probable-background pixel whose colour matches the background estimate within ``match_threshold``.

Deterministic (OpenCV's random generator is re-seeded before every call), so chunked and one-shot video
processing agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["GrabCutConfig", "grabcut_refine", "mask_box"]


@dataclass(frozen=True)
class GrabCutConfig:
    """GrabCut refinement of the built-in masker's subject masks (see the module docstring).

    Attributes:
        iterations: GrabCut iterations per frame; 0 disables the refinement (the background model's
            connected components are the mask).
        box_margin: the subject's box grown by this fraction of its width/height on each side bounds the
            refined mask.
        context: sure-background ring around the grown box, in box widths/heights; the crop GrabCut sees.
        sure_foreground_erosion: ``None`` (default): no sure-foreground label; a radius (pixels, 0 for
            none): the background-subtraction foreground eroded by it is sure foreground.
        match_threshold: probable-background pixels closer than this colour distance (RGB Euclidean,
            8-bit units) to the background estimate become sure background (0 disables).
        follows_previous: the previous frame's refined mask joins the probable foreground.
        max_side: crops larger than this (pixels, longer side) are downscaled for GrabCut and the mask
            upsampled (0: full resolution).
    """

    iterations: int = 3
    box_margin: float = 0.15
    context: float = 0.5
    sure_foreground_erosion: int | None = None
    match_threshold: float = 15.0
    follows_previous: bool = True
    max_side: int = 0

    def __post_init__(self) -> None:
        if self.sure_foreground_erosion is not None and int(self.sure_foreground_erosion) < 0:
            raise ValueError(f"sure_foreground_erosion must be None or non-negative, got {self.sure_foreground_erosion}")
        for name in ("iterations", "max_side"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("box_margin", "context", "match_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if 0 < self.max_side < 16:
            raise ValueError(f"max_side must be 0 or at least 16, got {self.max_side}")

    @property
    def enabled(self) -> bool:
        """Whether refinement runs (``iterations > 0``)."""
        return self.iterations > 0


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Bounding box (4,) float32 ``x0, y0, x1, y1`` pixels (exclusive end) of ``mask`` (H, W) bool; ``None`` if empty."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    r0, r1 = np.flatnonzero(rows)[[0, -1]]
    c0, c1 = np.flatnonzero(cols)[[0, -1]]
    return np.array([c0, r0, c1 + 1, r1 + 1], np.float32)


def _grown(box: np.ndarray, fraction: float) -> np.ndarray:
    width, height = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] - fraction * width, box[1] - fraction * height,
                     box[2] + fraction * width, box[3] + fraction * height], np.float64)


def _pixel_window(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer ``c0, r0, c1, r1`` covering ``box`` (xyxy pixels), clipped to the image."""
    return (int(np.clip(np.floor(box[0]), 0, width)), int(np.clip(np.floor(box[1]), 0, height)),
            int(np.clip(np.ceil(box[2]), 0, width)), int(np.clip(np.ceil(box[3]), 0, height)))


def grabcut_refine(frame: np.ndarray, foreground: np.ndarray, box: np.ndarray, config: GrabCutConfig = GrabCutConfig(),
                   distance: np.ndarray | None = None, previous: np.ndarray | None = None) -> np.ndarray:
    """The subject's mask in ``frame`` completed by GrabCut (see the module docstring).

    Args:
        frame: (H, W, 3) uint8 RGB.
        foreground: (H, W) bool background-subtraction mask of the subject.
        box: (4,) ``x0, y0, x1, y1`` pixels, the subject's box.
        config: refinement settings.
        distance: (H, W) colour distance (8-bit units) of ``frame`` from the background estimate, for the
            ``match_threshold`` rule; ``None`` skips it.
        previous: (H, W) bool refined mask of the previous frame, or ``None``.

    Returns:
        (H, W) bool mask, inside the box grown by ``box_margin``; ``foreground`` itself when
        ``config.iterations == 0`` or there is no foreground in the box.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got shape {frame.shape} dtype {frame.dtype}")
    height, width = frame.shape[:2]
    foreground = np.asarray(foreground, dtype=bool)
    if foreground.shape != (height, width):
        raise ValueError(f"foreground must be (H, W) = {(height, width)}, got {foreground.shape}")
    for name, array in (("distance", distance), ("previous", previous)):
        if array is not None and np.shape(array) != (height, width):
            raise ValueError(f"{name} must be (H, W) = {(height, width)}, got {np.shape(array)}")
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box must be 4 finite numbers x0, y0, x1, y1 with x1 > x0 and y1 > y0, got {box}")
    if not config.enabled:
        return foreground
    grown = _grown(box, config.box_margin)
    c0, r0, c1, r1 = _pixel_window(_grown(grown, config.context), height, width)
    crop = (slice(r0, r1), slice(c0, c1))
    inner = np.zeros((r1 - r0, c1 - c0), bool)
    b0, b1, b2, b3 = _pixel_window(box, height, width)
    inner[b1 - r0:b3 - r0, b0 - c0:b2 - c0] = True
    seed = foreground[crop] & inner
    if not seed.any():
        return foreground
    labels = np.full(inner.shape, cv2.GC_BGD, np.uint8)
    g0, g1, g2, g3 = _pixel_window(grown, height, width)
    labels[g1 - r0:g3 - r0, g0 - c0:g2 - c0] = cv2.GC_PR_BGD
    if distance is not None and config.match_threshold > 0:
        labels[(labels == cv2.GC_PR_BGD) & (np.asarray(distance)[crop] < config.match_threshold)] = cv2.GC_BGD
    hull = np.zeros(inner.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(seed.astype(np.uint8))), 1)
    probable = (hull > 0) & inner
    if previous is not None and config.follows_previous:
        probable |= np.asarray(previous, dtype=bool)[crop] & (labels != cv2.GC_BGD)
    labels[probable] = cv2.GC_PR_FGD
    if config.sure_foreground_erosion is not None:
        sure, radius = seed.astype(np.uint8), int(config.sure_foreground_erosion)
        if radius:
            sure = cv2.erode(sure, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
        labels[sure > 0] = cv2.GC_FGD
    image = np.ascontiguousarray(frame[crop][..., ::-1])  # OpenCV works in BGR
    scale = 1.0
    if config.max_side and max(image.shape[:2]) > config.max_side:
        scale = config.max_side / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    if not np.isin(labels, (cv2.GC_BGD, cv2.GC_PR_BGD)).any() or not np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return foreground  # GrabCut needs samples of both sides
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws from OpenCV's generator
    cv2.grabCut(image, labels, None, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64),
                config.iterations, cv2.GC_INIT_WITH_MASK)
    chosen = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if scale != 1.0:
        chosen = cv2.resize(chosen * 255, (c1 - c0, r1 - r0), interpolation=cv2.INTER_LINEAR) >= 128
    result = np.zeros((height, width), bool)
    result[crop] = chosen > 0
    return result
