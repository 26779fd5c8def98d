"""Foreground masks without model weights: a background model for a STATIC camera.

Valid only when the camera does not move (no pan, zoom or shake) and the background changes slowly
(no moving crowd, flicker or large shadows): the background is the per-pixel temporal median of
frames sampled around each frame, and foreground is every pixel whose (blurred) colour is further than
a threshold from it. The subject must move during the median window (a person standing still for the
whole window melts into the background, and one that dances or turns in place is only partly
foreground: :mod:`gas_core.segment.refine` completes its mask). Handheld TikTok-style footage breaks these assumptions: use a
detector and :class:`gas_core.segment.sam.SamMasker` there.

Streaming: :class:`BackgroundSubtractor` takes frames one at a time and releases each frame with its
foreground once the frames its median needs have arrived (a latency of about
``refresh_interval + window_frames / 2`` frames); memory is bounded by the window, not the video length.
:class:`ForegroundComponents` turns a foreground map into person candidates (grouped connected
components) and the mask of the candidate in a box; people closer than ``2 * group_radius`` pixels in
the image become one candidate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from gas_core.segment.detect import Detections, check_rgb_frame
from gas_core.segment.tracking import box_area

__all__ = ["BackgroundConfig", "ForegroundFrame", "BackgroundSubtractor", "ForegroundComponents", "background_distance",
           "foreground_map", "median_background", "video_background"]


@dataclass(frozen=True)
class BackgroundConfig:
    """Background model and foreground clean-up (static camera only; see the module docstring).

    Attributes:
        window_frames: frames spanned by the median window around each block of frames.
        sample_stride: every ``sample_stride``-th frame of the video enters medians.
        refresh_interval: frames sharing one background estimate (recomputed per block of this many).
        color_threshold: RGB Euclidean distance (0-441, 8-bit units) above which a pixel is foreground.
        blur_sigma: Gaussian blur (pixels) of frame and background before comparing (0 disables).
        open_radius: radius (pixels) of the opening that removes specks (0 disables).
        close_radius: radius (pixels) of the closing that joins thin gaps (0 disables).
        group_radius: foreground pieces closer than this (pixels) form one candidate.
        min_area_fraction: candidates smaller than this fraction of the frame are dropped.
        max_hole_fraction: enclosed background holes smaller than this fraction of the frame are filled.
    """

    window_frames: int = 61
    sample_stride: int = 4
    refresh_interval: int = 8
    color_threshold: float = 30.0
    blur_sigma: float = 0.0
    open_radius: int = 1
    close_radius: int = 1
    group_radius: int = 6
    min_area_fraction: float = 0.002
    max_hole_fraction: float = 0.0005

    def __post_init__(self) -> None:
        for name in ("window_frames", "sample_stride", "refresh_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("open_radius", "close_radius", "group_radius"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.color_threshold <= 0:
            raise ValueError(f"color_threshold must be positive, got {self.color_threshold}")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be non-negative, got {self.blur_sigma}")
        for name in ("min_area_fraction", "max_hole_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    image = image.astype(np.float32)
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image


def background_distance(frame: np.ndarray, background: np.ndarray, config: BackgroundConfig) -> np.ndarray:
    """(H, W) float32 RGB Euclidean distance (8-bit units) of ``frame`` (H, W, 3) uint8 from ``background``
    (H, W, 3) float32, both blurred by ``config.blur_sigma`` first."""
    return np.linalg.norm(_blur(frame, config.blur_sigma) - _blur(background, config.blur_sigma), axis=2)


def foreground_map(frame: np.ndarray, background: np.ndarray, config: BackgroundConfig,
                   distance: np.ndarray | None = None) -> np.ndarray:
    """Foreground of ``frame`` (H, W, 3) uint8 against ``background`` (H, W, 3) float32 RGB: (H, W) bool.

    Colour distance threshold, then opening, closing and small-hole filling per ``config``; ``distance``
    (H, W) is :func:`background_distance` when already computed.
    """
    if distance is None:
        distance = background_distance(frame, background, config)
    mask = (distance > config.color_threshold).astype(np.uint8)
    if config.open_radius:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(config.open_radius))
    if config.close_radius:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(config.close_radius))
    if config.max_hole_fraction > 0:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - mask, connectivity=4)
        height, width = mask.shape
        limit = config.max_hole_fraction * height * width
        x, y, w, h, area = (stats[:, index] for index in range(5))
        inner = (x > 0) & (y > 0) & (x + w < width) & (y + h < height) & (area < limit)
        inner[0] = False  # label 0 of the inverted mask is the foreground itself
        holes = np.flatnonzero(inner)
        if holes.size:
            mask[np.isin(labels, holes)] = 1
    return mask.astype(bool)


@dataclass(frozen=True)
class ForegroundFrame:
    """One released frame: its ``index`` in the video, ``frame`` (H, W, 3) uint8, ``foreground`` (H, W) bool
    and ``distance`` (H, W) float32, the colour distance from the background estimate (8-bit units; ``None``
    when no background model ran)."""

    index: int
    frame: np.ndarray
    foreground: np.ndarray | None
    distance: np.ndarray | None = None


class BackgroundSubtractor:
    """Streaming temporal-median background model (static camera; see the module docstring).

    Frames are grouped in blocks of ``refresh_interval``; block ``b``'s background is the median of the
    sampled frames (index multiple of ``sample_stride``) in a window of ``window_frames`` centred on the
    block, shifted to stay inside the video. The result depends only on the frames, never on how they
    were split into calls, so chunked and one-shot processing agree.

    ``prior`` (H, W, 3) float32 RGB, the background of the whole video (:func:`median_background`), when
    given, replaces the windowed median, rescaled per colour channel by the robust ratio of the window's
    median to it (a global change of lighting): a subject that stays in place during a window (the start
    of a segment, planted legs) then does not melt into the background.
    """

    def __init__(self, config: BackgroundConfig = BackgroundConfig(), prior: np.ndarray | None = None) -> None:
        if prior is not None:
            prior = np.asarray(prior, dtype=np.float32)
            if prior.ndim != 3 or prior.shape[2] != 3:
                raise ValueError(f"prior must be an (H, W, 3) background, got shape {prior.shape}")
        self.prior = prior
        self.config = config
        self._pending: deque[tuple[int, np.ndarray]] = deque()  # frames not released yet
        self._samples: dict[int, np.ndarray] = {}
        self._count = 0
        self._shape: tuple[int, ...] | None = None
        self._finished = False

    def _window(self, block: int, total: int | None) -> tuple[int, int]:
        """Frame range [lo, hi) whose samples make block ``block``'s median (``total`` once known)."""
        c = self.config
        centre = block * c.refresh_interval + (c.refresh_interval - 1) // 2
        lo = max(0, centre - c.window_frames // 2)
        hi = lo + c.window_frames
        if total is not None and hi > total:
            hi = total
            lo = max(0, total - c.window_frames)
        return lo, hi

    def _background(self, lo: int, hi: int) -> np.ndarray:
        indices = [index for index in sorted(self._samples) if lo <= index < hi]
        if not indices:  # fewer frames than one stride: use what is pending
            window = np.median(np.stack([frame for _, frame in self._pending]), axis=0).astype(np.float32)
        else:
            window = np.median(np.stack([self._samples[index] for index in indices]), axis=0).astype(np.float32)
        if self.prior is None:
            return window
        if self.prior.shape != window.shape:
            raise ValueError(f"prior has shape {self.prior.shape} but the frames are {window.shape}")
        gain = np.median((window + 1.0) / (self.prior + 1.0), axis=(0, 1))
        return np.clip(self.prior * gain, 0.0, 255.0).astype(np.float32)

    def _release(self, total: int | None) -> list[ForegroundFrame]:
        released: list[ForegroundFrame] = []
        c = self.config
        while self._pending:
            block = self._pending[0][0] // c.refresh_interval
            lo, hi = self._window(block, total)
            if total is None and self._count < hi:
                break
            background = self._background(lo, hi)
            while self._pending and self._pending[0][0] // c.refresh_interval == block:
                index, frame = self._pending.popleft()
                distance = background_distance(frame, background, c)
                released.append(ForegroundFrame(index, frame, foreground_map(frame, background, c, distance), distance))
        keep_from = min(self._window(self._pending[0][0] // c.refresh_interval, None)[0] if self._pending else self._count,
                        self._count - c.window_frames)
        for index in [index for index in self._samples if index < keep_from]:
            del self._samples[index]
        return released

    def push(self, frame: np.ndarray) -> list[ForegroundFrame]:
        """Add the next frame (H, W, 3) uint8 RGB; returns the frames released by it (maybe none)."""
        if self._finished:
            raise RuntimeError("BackgroundSubtractor.finish() was called; make a new one for another video")
        frame = check_rgb_frame(frame)
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"frame must keep the video's shape {self._shape}, got {frame.shape}")
        index = self._count
        self._count += 1
        self._pending.append((index, frame))
        if index % self.config.sample_stride == 0:
            self._samples[index] = frame
        return self._release(None)

    def finish(self) -> list[ForegroundFrame]:
        """End of the video: release every remaining frame."""
        self._finished = True
        return self._release(self._count)


class ForegroundComponents:
    """Person candidates in a foreground map: pieces closer than ``group_radius`` grouped, small ones dropped.

    Args:
        foreground: (H, W) bool.
        config: grouping radius and minimum area.
    """

    def __init__(self, foreground: np.ndarray, config: BackgroundConfig = BackgroundConfig()) -> None:
        foreground = np.asarray(foreground, dtype=bool)
        if foreground.ndim != 2:
            raise ValueError(f"foreground must be (H, W), got shape {foreground.shape}")
        self.foreground = foreground
        mask = foreground.astype(np.uint8)
        grouped = cv2.dilate(mask, _disk(config.group_radius)) if config.group_radius else mask
        count, labels, _, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
        labels = np.where(foreground, labels, 0)
        areas = np.bincount(labels.ravel(), minlength=count)
        areas[0] = 0
        minimum = max(1.0, config.min_area_fraction * foreground.size)
        self.labels = labels
        self.groups = [int(label) for label in np.flatnonzero(areas >= minimum)]
        self.areas = areas[self.groups].astype(np.float64)
        boxes = []
        for label in self.groups:
            ys, xs = np.nonzero(labels == label)
            boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)

    def _inside_fractions(self, box: np.ndarray) -> np.ndarray:
        """Fraction of each group's pixels inside ``box`` (4,) xyxy pixels: (len(groups),) float64."""
        x0, y0, x1, y1 = (float(value) for value in box)
        height, width = self.foreground.shape
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        size = int(self.labels.max()) + 1
        window = self.labels[r0:r1, c0:c1]
        inside = np.bincount(window.ravel(), minlength=size) if window.size else np.zeros(size, np.int64)
        return inside[self.groups] / self.areas

    def detections(self, merge_box: np.ndarray | None = None, inside_fraction: float = 0.5,
                   max_growth: float = 1.25) -> Detections:
        """One candidate per group: boxes (K, 4) xyxy pixels, score = area / largest area (in (0, 1]).

        ``merge_box`` (4,) xyxy pixels, typically the subject's box in the previous frame: the groups with
        at least ``inside_fraction`` of their pixels in it become one candidate (a person split in pieces
        by background-coloured clothing stays one candidate), unless their union box is more than
        ``max_growth`` times the area of ``merge_box``.
        """
        if not self.groups:
            return Detections.empty()
        boxes, areas = self.boxes, self.areas
        if merge_box is not None and np.all(np.isfinite(merge_box)):
            inside = self._inside_fractions(merge_box) >= inside_fraction
            if inside.sum() >= 2:
                merged = np.concatenate([boxes[inside, :2].min(axis=0), boxes[inside, 2:].max(axis=0)])
                if box_area(merged) <= max_growth * box_area(merge_box):  # never creep over the scene
                    boxes = np.concatenate([merged[None], boxes[~inside]])
                    areas = np.concatenate([[areas[inside].sum()], areas[~inside]])
        return Detections(boxes, areas / areas.max())

    def mask(self, box: np.ndarray, inside_fraction: float = 0.5) -> np.ndarray:
        """(H, W) bool union of the groups with at least ``inside_fraction`` of their pixels in ``box``
        (4,) xyxy pixels; the group overlapping the box most when none reaches it."""
        result = np.zeros_like(self.foreground)
        if not self.groups:
            return result
        fractions = self._inside_fractions(box)
        chosen = [label for label, fraction in zip(self.groups, fractions) if fraction >= inside_fraction]
        if not chosen and fractions.max() > 0:
            chosen = [self.groups[int(np.argmax(fractions))]]
        if chosen:
            result = np.isin(self.labels, chosen)
        return result


def _even_samples(frames, max_samples: int) -> list[np.ndarray]:
    """Up to ``max_samples`` frames spread evenly over ``frames`` (any iterable; one pass)."""
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    kept: list[np.ndarray] = []
    stride = 1
    for index, frame in enumerate(frames):
        if index % stride:
            continue
        kept.append(check_rgb_frame(frame))
        if len(kept) >= 2 * max_samples:
            kept = kept[::2]
            stride *= 2
    if not kept:
        raise ValueError("frames must hold at least one frame")
    if len(kept) > max_samples:
        kept = kept[:: int(np.ceil(len(kept) / max_samples))]
    return kept


def video_background(frames, config: BackgroundConfig = BackgroundConfig(), max_samples: int = 32) -> np.ndarray:
    """Background (H, W, 3) float32 RGB of a whole static-camera video, for a person who may never leave
    their spot (dancing in place, legs planted).

    The median of up to ``max_samples`` frames spread over ``frames`` (:func:`median_background`) still
    holds whatever the person covers in most frames. The union of every sample's foreground against
    that median outlines where the person went; its holes are filled (the still core the median kept is
    enclosed by moving edges), it is grown by a few pixels and the median is inpainted there from the
    surrounding background (OpenCV Telea), so no part of the person relies on motion to be seen.
    """
    samples = _even_samples(frames, max_samples)
    median = np.median(np.stack(samples), axis=0).astype(np.float32)
    union = np.zeros(median.shape[:2], np.uint8)
    for frame in samples:
        union |= foreground_map(frame, median, config).astype(np.uint8)
    if not union.any():
        return median
    zone = cv2.morphologyEx(union, cv2.MORPH_CLOSE, _disk(4))
    height, width = zone.shape
    outside = np.pad(zone, 1).copy()
    cv2.floodFill(outside, np.zeros((height + 4, width + 4), np.uint8), (0, 0), 1)
    zone = zone | (1 - outside[1:-1, 1:-1])  # enclosed holes belong to the person's zone
    zone = cv2.dilate(zone, _disk(3))
    if zone.mean() > 0.9:  # nothing left to inpaint from
        return median
    filled = cv2.inpaint(np.clip(median, 0, 255).astype(np.uint8), zone, 5, cv2.INPAINT_TELEA)
    return filled.astype(np.float32)


def median_background(frames, max_samples: int = 32) -> np.ndarray:
    """Per-pixel median (H, W, 3) float32 of up to ``max_samples`` frames (H, W, 3) uint8 spread evenly over
    ``frames`` (a sequence, or an iterable whose length is unknown: then every frame is kept until
    there are ``2 * max_samples``, and every other one is dropped). A subject that moves at all during the
    video is absent from most samples of a pixel, so it stays out of this background even when it stands
    still for a long stretch (legs planted while the arms move)."""
    kept = _even_samples(frames, max_samples)
    return np.median(np.stack(kept), axis=0).astype(np.float32)
