"""Keep one subject across the frames of a video.

:class:`SubjectTracker` receives each frame's candidate people (:class:`~gas_core.segment.detect.Detections`)
and picks the subject: at the start (or after the subject was lost for ``max_missing`` frames) the
candidate with the highest ``score * sqrt(relative box area)``; afterwards the candidate that best matches
the previous box (IoU) and the subject's appearance (HSV colour histogram of its box, Bhattacharyya
coefficient). Each frame gets a status:

* ``"ok"``: one subject found;
* ``"no_person"``: no candidate, or none that matches the tracked subject;
* ``"several_people"``: two candidates too close to tell apart (their priorities or match values differ
  by less than ``ambiguity_margin``); nothing is picked and the tracker keeps its previous state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gas_core.segment.detect import Detections, check_rgb_frame

__all__ = ["FRAME_STATUSES", "TrackingConfig", "TrackStep", "SubjectTracker", "box_area", "box_iou", "box_histogram",
           "histogram_similarity"]

#: Per-frame outcomes, in the order of the module docstring.
FRAME_STATUSES = ("ok", "no_person", "several_people")


@dataclass(frozen=True)
class TrackingConfig:
    """How the subject is chosen and followed.

    Attributes:
        score_threshold: candidates with a lower detector score are ignored, in [0, 1].
        iou_weight, appearance_weight: weights of box IoU and appearance similarity in the match value.
        min_match: a candidate matching the tracked subject less than this is not the subject.
        ambiguity_margin: two candidates whose priorities (start) or match values (tracking) differ by
            less than this make the frame ``"several_people"``.
        appearance_momentum: the subject's reference histogram is updated as
            ``momentum * reference + (1 - momentum) * current`` on every ``"ok"`` frame, in [0, 1].
        histogram_bins: HSV histogram bins (hue, saturation, value).
        max_missing: after this many frames without the subject, it is re-acquired from scratch.
    """

    score_threshold: float = 0.3
    iou_weight: float = 0.5
    appearance_weight: float = 0.5
    min_match: float = 0.35
    ambiguity_margin: float = 0.1
    appearance_momentum: float = 0.8
    histogram_bins: tuple[int, int, int] = (12, 4, 4)
    max_missing: int = 15

    def __post_init__(self) -> None:
        for name in ("score_threshold", "min_match", "ambiguity_margin", "appearance_momentum"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.iou_weight < 0 or self.appearance_weight < 0 or self.iou_weight + self.appearance_weight <= 0:
            raise ValueError(f"iou_weight and appearance_weight must be non-negative with a positive sum, "
                             f"got {self.iou_weight}, {self.appearance_weight}")
        if len(self.histogram_bins) != 3 or min(self.histogram_bins) < 1:
            raise ValueError(f"histogram_bins must be three positive counts, got {self.histogram_bins}")
        if self.max_missing < 0:
            raise ValueError(f"max_missing must be non-negative, got {self.max_missing}")


@dataclass(frozen=True)
class TrackStep:
    """One frame's outcome: ``status`` (see :data:`FRAME_STATUSES`), ``box`` (4,) float32 xyxy pixels
    (NaN unless ``"ok"``), ``score`` the subject's detector score (NaN unless ``"ok"``), ``candidate`` its
    index in the frame's detections (-1 unless ``"ok"``)."""

    status: str
    box: np.ndarray
    score: float
    candidate: int


def box_area(boxes: np.ndarray, min_side: float = 0.0) -> np.ndarray:
    """Area (pixels²) of ``boxes`` (..., 4) xyxy pixels, each side clamped to at least ``min_side`` pixels
    (>= 0; 0 gives an inverted box zero area, 1 keeps ratios of areas finite): float64 (...,)."""
    if not min_side >= 0:
        raise ValueError(f"min_side must be >= 0, got {min_side}")
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"boxes must be (..., 4) xyxy, got shape {boxes.shape}")
    return (np.maximum(boxes[..., 2] - boxes[..., 0], min_side)
            * np.maximum(boxes[..., 3] - boxes[..., 1], min_side))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of ``box`` (4,) with each of ``boxes`` (K, 4), all xyxy pixels: (K,) float64 in [0, 1]."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    intersection = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box_area(box) + box_area(boxes) - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def box_histogram(frame: np.ndarray, box: np.ndarray, bins: tuple[int, int, int] = (12, 4, 4)) -> np.ndarray:
    """Normalised HSV histogram (sums to 1; flattened, ``prod(bins)``) of the central 80 % of ``box``
    (4,) xyxy pixels in ``frame`` (H, W, 3) uint8 RGB; uniform when the box holds no pixel."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = (float(value) for value in box)
    dx, dy = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    c0, c1 = int(np.clip(np.floor(x0 + dx), 0, width)), int(np.clip(np.ceil(x1 - dx), 0, width))
    r0, r1 = int(np.clip(np.floor(y0 + dy), 0, height)), int(np.clip(np.ceil(y1 - dy), 0, height))
    size = int(np.prod(bins))
    if c1 <= c0 or r1 <= r0:
        return np.full(size, 1.0 / size)
    hsv = cv2.cvtColor(np.ascontiguousarray(frame[r0:r1, c0:c1]), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(bins), [0, 180, 0, 256, 0, 256]).ravel().astype(np.float64)
    return histogram / max(histogram.sum(), 1e-12)


def histogram_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Bhattacharyya coefficient of two normalised histograms: 1 identical, 0 disjoint."""
    return float(np.sum(np.sqrt(np.clip(first, 0, None) * np.clip(second, 0, None))))


class SubjectTracker:
    """Follows one subject through a video, one :meth:`update` per frame (see the module docstring)."""

    def __init__(self, config: TrackingConfig = TrackingConfig()) -> None:
        self.config = config
        self.box: np.ndarray | None = None
        self.appearance: np.ndarray | None = None
        self.missing = 0

    def _nothing(self, status: str) -> TrackStep:
        self.missing += 1
        if self.missing > self.config.max_missing:
            self.box, self.appearance = None, None
        return TrackStep(status, np.full(4, np.nan, np.float32), float("nan"), -1)

    def update(self, frame: np.ndarray, detections: Detections) -> TrackStep:
        """Pick the subject among ``detections`` of ``frame`` (H, W, 3) uint8 RGB; returns a :class:`TrackStep`."""
        frame = check_rgb_frame(frame)
        c = self.config
        keep = np.flatnonzero(detections.scores >= c.score_threshold)
        if keep.size == 0:
            return self._nothing("no_person")
        boxes, scores = detections.boxes[keep], detections.scores[keep].astype(np.float64)
        histograms = [box_histogram(frame, box, c.histogram_bins) for box in boxes]
        if self.box is None:
            areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
            values = scores * np.sqrt(areas / max(float(areas.max()), 1e-12))
        else:
            similarity = np.array([histogram_similarity(self.appearance, histogram) for histogram in histograms])
            values = (c.iou_weight * box_iou(self.box, boxes) + c.appearance_weight * similarity) / (
                c.iou_weight + c.appearance_weight)
        order = np.argsort(-values, kind="stable")
        best = int(order[0])
        if self.box is not None and values[best] < c.min_match:
            return self._nothing("no_person")
        if order.size > 1 and values[best] - values[order[1]] < c.ambiguity_margin and (
                self.box is None or values[order[1]] >= c.min_match):
            return self._nothing("several_people")
        self.box = boxes[best].copy()
        if self.appearance is None:
            self.appearance = histograms[best]
        else:
            self.appearance = c.appearance_momentum * self.appearance + (1 - c.appearance_momentum) * histograms[best]
        self.missing = 0
        return TrackStep("ok", boxes[best].astype(np.float32), float(scores[best]), int(keep[best]))
