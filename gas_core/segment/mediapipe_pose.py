"""MediaPipe Pose: person mask and COCO-17 keypoints from the pretrained models inside the wheel.

The ``mediapipe`` wheel carries its pose detector, landmark model and segmentation head, so this
estimator runs offline with nothing to download. Per frame it returns the subject's mask (float in
[0, 1]), 17 COCO keypoints ``(u, v, confidence)`` in frame pixels (mapped from MediaPipe's 33 landmarks)
and the subject's box.

MediaPipe follows one person, the most prominent one. To follow a chosen subject,
:class:`MediaPipePose` crops each frame to the subject's previous box (grown by
:attr:`MediaPipePoseConfig.crop_margin`, made square) and runs the tracking model there; when the
subject is lost it looks at the whole frame again. A second, single-image model then looks for
another person in the frame with the subject painted out (every ``probe_stride`` frames), so that a
second person shows up as a second candidate and the tracker
(:class:`~gas_core.segment.tracking.SubjectTracker`) can call the frame ambiguous rather than swap
subjects silently.

The class fits the segment package's interfaces: ``detect(frame) -> Detections`` (a
:class:`~gas_core.segment.detect.PersonDetector`), ``mask(frame, box) -> (H, W) bool`` (a box masker
for :class:`~gas_core.segment.video.VideoMasker`; the mask of the frame just detected is reused, not
recomputed) and :meth:`MediaPipePose.keypoints` for the monocular fit. :class:`MediaPipeKeypoints`
is the :class:`~gas_core.body.fit.keypoints.KeypointSource` form for still images (the renders of a scan).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from gas_core.segment.detect import Detections, check_rgb_frame

__all__ = ["MEDIAPIPE_TO_COCO17", "MediaPipePoseConfig", "PoseEstimate", "MediaPipePose", "MediaPipeKeypoints",
           "mediapipe_available"]

logger = logging.getLogger(__name__)

#: MediaPipe landmark index of each COCO-17 keypoint (nose, eyes, ears, shoulders, elbows, wrists, hips,
#: knees, ankles; left = the person's left in both).
MEDIAPIPE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

INSTALL_HINT = ("the MediaPipe estimator needs the 'mediapipe' package (pip install --no-deps mediapipe==0.10.21 "
                "with protobuf>=6.31,<7); or set the masking estimator to 'background' and give keypoint weights")


def mediapipe_available() -> bool:
    """Whether ``mediapipe.solutions.pose`` imports here."""
    try:
        _solutions_pose()
    except ImportError:
        return False
    return True


def _solutions_pose():
    try:
        from mediapipe.python.solutions import pose
    except Exception as error:  # a protobuf mismatch raises AttributeError/TypeError at import
        raise ImportError(f"{INSTALL_HINT} ({type(error).__name__}: {error})") from error
    return pose


@dataclass(frozen=True)
class MediaPipePoseConfig:
    """Settings of :class:`MediaPipePose`.

    Attributes:
        model_complexity: 0 (lite), 1 (full) or 2 (heavy; its model is not in the wheel, so 2 fails offline).
        min_detection_confidence: person detector threshold, in [0, 1].
        min_tracking_confidence: below this the tracking model re-detects, in [0, 1].
        mask_threshold: segmentation probability from which a pixel is the person, in (0, 1).
        min_visibility: a landmark with a lower visibility gets confidence 0, in [0, 1].
        min_person_score: a found person whose shoulders' visibility averages below this is taken as no
            person, in [0, 1].
        crop_margin: relative margin per side around the previous box when following the subject (>= 0).
        probe_stride: look for a second person every this many frames (0: never).
        probe_dilation: fraction of the subject's box height by which its box is grown before it is
            painted out for the second-person look (>= 0).
        search_detection_confidence: person detector threshold of the search that runs when the tracking
            model finds nobody, in [0, 1] (see :meth:`MediaPipePose.estimate`).
        search_scales: sides of the search's square windows, as fractions of the frame's longer side
            (each > 0); empty (default): no search. ``(1.0, 0.8)`` finds people on dense clutter that
            the tracking model misses, but also people that are not there (see docs/video.md).
        search_memory: frames for which the subject's last box stays the first search window (>= 0).
        min_moving_fraction: with a static-camera foreground map given (:meth:`MediaPipePose.estimate`), a
            person whose mask has less than this fraction of its pixels in the foreground is taken as no
            person, in [0, 1] (0: no check). MediaPipe sees whole people in dense static clutter (patterns,
            shapes in skin and garment colours) and then follows them; nothing there moves.
        max_moving_frame_fraction: a foreground map covering more than this fraction of the frame means
            the camera moves (shake, zoom, pan); the motion check is then skipped, in (0, 1].
        continuity_iou: following a video, a person found outside the window around the subject's
            previous box (by the whole-frame look or the search) while the subject's last box is
            remembered (seen in the last ``search_memory`` frames) is taken only when its box overlaps
            that box by at least this IoU, in [0, 1] (0: no check). People the landmark model makes of clutter or of an
            empty backdrop turn up elsewhere or at another size than the subject just seen.
        continuity_area_ratio: ... and only when its box's area is within this factor of that box's
            (>= 1; 0: no area check).
        continuity_after: the two checks apply once the subject has been followed for this many frames in
            a row (>= 1), so that a first, partial or wrong find does not lock out the subject.
        motion_search_iou: with a static-camera foreground map given (:meth:`MediaPipePose.estimate`), when
            the tracking model finds nobody, the search model (``search_detection_confidence``) looks in the
            window around each of the two largest moving regions, and a person found there is taken only
            when its box overlaps that region's box by at least this IoU, in [0, 1] (0: off). The moving
            region is a cue independent of MediaPipe: where nothing moves, this search takes nobody.
            Default 0.5 (chosen on the tuning stress sets, docs/video.md).
    """

    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    mask_threshold: float = 0.5
    min_visibility: float = 0.3
    min_person_score: float = 0.5
    crop_margin: float = 0.25
    probe_stride: int = 1
    probe_dilation: float = 0.04
    search_detection_confidence: float = 0.2
    search_scales: tuple[float, ...] = ()
    search_memory: int = 30
    min_moving_fraction: float = 0.0
    max_moving_frame_fraction: float = 0.5
    continuity_iou: float = 0.3
    continuity_area_ratio: float = 2.0
    continuity_after: int = 8
    motion_search_iou: float = 0.5

    def __post_init__(self) -> None:
        if self.model_complexity not in (0, 1, 2):
            raise ValueError(f"model_complexity must be 0, 1 or 2, got {self.model_complexity}")
        for name in ("min_detection_confidence", "min_tracking_confidence", "min_visibility", "min_person_score",
                     "search_detection_confidence", "min_moving_fraction", "continuity_iou",
                     "motion_search_iou"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        if self.crop_margin < 0 or self.probe_dilation < 0:
            raise ValueError(f"crop_margin and probe_dilation must be >= 0, got {self.crop_margin}, {self.probe_dilation}")
        if self.probe_stride < 0:
            raise ValueError(f"probe_stride must be >= 0, got {self.probe_stride}")
        if any(not float(scale) > 0 for scale in self.search_scales):
            raise ValueError(f"search_scales must be positive fractions, got {self.search_scales}")
        if not 0.0 < self.max_moving_frame_fraction <= 1.0:
            raise ValueError(f"max_moving_frame_fraction must be in (0, 1], got {self.max_moving_frame_fraction}")
        if self.search_memory < 0:
            raise ValueError(f"search_memory must be >= 0, got {self.search_memory}")
        if self.continuity_after < 1:
            raise ValueError(f"continuity_after must be >= 1, got {self.continuity_after}")
        if self.continuity_area_ratio != 0 and not self.continuity_area_ratio >= 1.0:
            raise ValueError(f"continuity_area_ratio must be 0 (off) or >= 1, got {self.continuity_area_ratio}")

    @property
    def uses_foreground(self) -> bool:
        """Whether a static-camera foreground map is used (the motion check or the motion search)."""
        return self.min_moving_fraction > 0 or self.motion_search_iou > 0


@dataclass(frozen=True)
class PoseEstimate:
    """One person in one frame: ``mask`` (H, W) float32 probability in [0, 1], ``keypoints`` (17, 3)
    float32 ``u, v`` frame pixels + confidence in [0, 1], ``box`` (4,) float32 xyxy pixels (NaN when
    nothing was found) and ``score`` (mean visibility of the shoulders, 0 when nothing was found)."""

    mask: np.ndarray
    keypoints: np.ndarray
    box: np.ndarray
    score: float

    @property
    def found(self) -> bool:
        return bool(np.isfinite(self.box).all())

    @classmethod
    def nothing(cls, height: int, width: int) -> "PoseEstimate":
        return cls(np.zeros((height, width), np.float32), np.zeros((17, 3), np.float32),
                   np.full(4, np.nan, np.float32), 0.0)


def _square_window(box: np.ndarray, margin: float) -> tuple[int, int, int]:
    """Integer (x0, y0, side) of the square around ``box`` (4,) xyxy grown by ``margin`` per side."""
    x0, y0, x1, y1 = (float(value) for value in box)
    side = max(x1 - x0, y1 - y0, 8.0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side))


def _cut(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side`` x ``side`` window of ``frame`` at (x0, y0); parts outside the frame are black."""
    height, width = frame.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return out


class MediaPipePose:
    """MediaPipe Pose following one subject through a video (see the module docstring).

    Args:
        config: :class:`MediaPipePoseConfig`.
        static_image_mode: True treats every call as a new image (no tracking between calls): still
            images, the renders of a scan.

    Raises:
        ImportError: ``mediapipe`` is missing or cannot load (the message says how to install it).
    """

    def __init__(self, config: MediaPipePoseConfig = MediaPipePoseConfig(), *, static_image_mode: bool = False) -> None:
        pose = _solutions_pose()
        self.config = config
        self.static_image_mode = bool(static_image_mode)
        self._pose = pose.Pose(static_image_mode=self.static_image_mode, model_complexity=config.model_complexity,
                               enable_segmentation=True, smooth_landmarks=False, smooth_segmentation=False,
                               min_detection_confidence=config.min_detection_confidence,
                               min_tracking_confidence=config.min_tracking_confidence)
        self._probe = None
        if config.probe_stride and not self.static_image_mode:
            self._probe = pose.Pose(static_image_mode=True, model_complexity=config.model_complexity,
                                    enable_segmentation=True, min_detection_confidence=config.min_detection_confidence)
        self._search = None
        if (config.search_scales or config.motion_search_iou > 0) and not self.static_image_mode:
            self._search = pose.Pose(static_image_mode=True, model_complexity=config.model_complexity,
                                     enable_segmentation=True,
                                     min_detection_confidence=config.search_detection_confidence)
        self._window: tuple[int, int, int] | None = None  # crop followed by the tracking model
        self._recent: tuple[np.ndarray, int] | None = None  # (subject's last box, frames since it was seen)
        self._streak = 0  # frames in a row with the subject found
        self._established = False  # followed for continuity_after frames in a row (and not lost since)
        self._frames_seen = 0
        self._last: tuple[int, PoseEstimate, np.ndarray] | None = None  # (frame id, estimate, frame) of detect()

    # ------------------------------------------------------------------ core
    def _run(self, model, image: np.ndarray, x0: int, y0: int, scale: float, frame_shape: tuple[int, int]) -> PoseEstimate:
        """Run ``model`` on ``image`` (a window of the frame at (x0, y0), resized by ``scale``); result in frame pixels."""
        height, width = frame_shape
        result = model.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return PoseEstimate.nothing(height, width)
        c = self.config
        side_h, side_w = image.shape[:2]
        marks = result.pose_landmarks.landmark
        points = np.zeros((17, 3), np.float32)
        for k, index in enumerate(MEDIAPIPE_TO_COCO17):
            mark = marks[index]
            u, v = x0 + mark.x * side_w / scale, y0 + mark.y * side_h / scale
            visibility = float(np.clip(mark.visibility, 0.0, 1.0))
            inside = 0 <= u < width and 0 <= v < height
            points[k] = (u, v, visibility if inside and visibility >= c.min_visibility else 0.0)
        shoulders = [float(np.clip(marks[index].visibility, 0, 1)) for index in (11, 12)]
        score = float(np.mean(shoulders))  # shoulders only: a waist-up person is still a person
        if score < c.min_person_score or result.segmentation_mask is None:
            return PoseEstimate.nothing(height, width)
        window = np.asarray(result.segmentation_mask, np.float32)
        if scale != 1.0:
            window = cv2.resize(window, (int(round(side_w / scale)), int(round(side_h / scale))),
                                interpolation=cv2.INTER_LINEAR)
        mask = np.zeros((height, width), np.float32)
        wh, ww = window.shape
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + ww, width), min(y0 + wh, height)
        if sx1 > sx0 and sy1 > sy0:
            mask[sy0:sy1, sx0:sx1] = window[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        binary = mask >= c.mask_threshold
        if not binary.any():
            return PoseEstimate.nothing(height, width)
        binary = _largest_components(binary, points)
        mask = np.where(binary, mask, 0.0).astype(np.float32)
        rows, cols = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
        box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
        return PoseEstimate(mask, points, box, score)

    def _run_window(self, model, frame: np.ndarray, window: tuple[int, int, int]) -> PoseEstimate:
        """Run ``model`` on the square ``window`` (x0, y0, side) of ``frame`` (black outside the frame)."""
        x0, y0, side = window
        image = _cut(frame, x0, y0, side)
        scale = 1.0
        if side > 512:  # the models see 256 px; keep the window small
            scale = 512.0 / side
            image = cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA)
        return self._run(model, image, x0, y0, scale, frame.shape[:2])

    def search_windows(self, height: int, width: int, moving: np.ndarray | None = None) -> list[tuple[int, int, int]]:
        """Square windows (x0, y0, side) pixels the search tries, in order: the boxes of the two largest
        moving regions of ``moving`` (H, W) bool (a static-camera foreground map, when given), grown by the
        crop margin; the subject's last box grown likewise (when seen in the last ``search_memory``
        frames); then for each of ``search_scales`` the windows of that side at the start, middle and
        end of each axis the side is shorter than (the middle only otherwise)."""
        c = self.config
        windows = []
        if moving is not None:
            windows += [window for _, window in self.moving_regions(moving)]
        if self._recent is not None and self._recent[1] <= c.search_memory:
            windows.append(_square_window(self._recent[0], c.crop_margin))
        for fraction in c.search_scales:
            side = max(int(round(float(fraction) * max(height, width))), 8)
            def starts(extent: int) -> list[int]:
                middle = int(round((extent - side) / 2))
                return [0, middle, extent - side] if side < extent else [middle]
            windows += [(x0, y0, side) for y0 in starts(height) for x0 in starts(width)]
        return list(dict.fromkeys(windows))

    def moving_regions(self, moving: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int, int]]]:
        """The two largest regions of ``moving`` (H, W) bool, a static-camera foreground map: each as its
        box (4,) float32 xyxy pixels and the square window (x0, y0, side) pixels around it grown by the
        crop margin, largest first."""
        from gas_core.segment.background import ForegroundComponents

        regions = ForegroundComponents(moving)
        return [(regions.boxes[index], _square_window(regions.boxes[index], self.config.crop_margin))
                for index in np.argsort(-regions.areas, kind="stable")[:2]]

    def _motion_search(self, frame: np.ndarray, moving: np.ndarray) -> PoseEstimate | None:
        """The first person the search model finds in a window around a moving region whose box overlaps
        that region's box by at least ``motion_search_iou`` (and passes :meth:`continues`), or None."""
        from gas_core.segment.tracking import box_iou

        for region, window in self.moving_regions(moving):
            found = self._run_window(self._search, frame, window)
            if (found.found and float(box_iou(region, found.box[None])[0]) >= self.config.motion_search_iou
                    and self._follows(found, moving, continuity=True)):
                return found
        return None

    def _static_foreground(self, foreground: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
        """``foreground`` as (H, W) bool when it is used (given, the motion check or search on, camera
        static), else None."""
        if foreground is None or not self.config.uses_foreground:
            return None
        foreground = np.asarray(foreground, bool)
        if foreground.shape != tuple(shape):
            raise ValueError(f"foreground must be (H, W) = {tuple(shape)} like the frame, got {foreground.shape}")
        if foreground.mean() > self.config.max_moving_frame_fraction:
            return None
        return foreground

    def _moves(self, estimate: PoseEstimate, moving: np.ndarray | None) -> bool:
        """Whether ``estimate`` found a person that passes the motion check against ``moving`` (or None)."""
        if not estimate.found or moving is None or self.config.min_moving_fraction <= 0:
            return estimate.found
        person = estimate.mask >= self.config.mask_threshold
        return bool(moving[person].mean() >= self.config.min_moving_fraction) if person.any() else False

    def continues(self, box: np.ndarray) -> bool:
        """Whether a person found at ``box`` (4,) xyxy pixels may be the followed subject: True unless the
        subject has been followed for ``continuity_after`` frames in a row, its last box is remembered (seen
        in the last ``search_memory`` frames) and ``box`` overlaps it by less than ``continuity_iou`` or
        differs from it in area by more than ``continuity_area_ratio``."""
        c = self.config
        if (self.static_image_mode or not self._established or self._recent is None
                or self._recent[1] > c.search_memory):
            return True
        from gas_core.segment.tracking import box_area, box_iou

        last = self._recent[0]
        if c.continuity_iou > 0 and float(box_iou(last, np.asarray(box)[None])[0]) < c.continuity_iou:
            return False
        if c.continuity_area_ratio > 0:
            ratio = float(box_area(box, min_side=1.0) / box_area(last, min_side=1.0))
            if max(ratio, 1.0 / ratio) > c.continuity_area_ratio:
                return False
        return True

    def _follows(self, estimate: PoseEstimate, moving: np.ndarray | None, continuity: bool) -> bool:
        """Whether ``estimate`` found a person that passes the motion check and, when ``continuity``, :meth:`continues`."""
        return self._moves(estimate, moving) and (not continuity or self.continues(estimate.box))

    def estimate(self, frame: np.ndarray, box: np.ndarray | None = None, *,
                 foreground: np.ndarray | None = None) -> PoseEstimate:
        """The person in ``frame`` (H, W, 3) uint8 RGB, inside ``box`` (4,) xyxy pixels grown by the crop
        margin when given (else the followed subject's window, or the whole frame).

        Following a video (no ``box``), when the tracking model finds nobody in the subject's window nor
        in the whole frame, a search runs a single-image model with a lower detector threshold
        (``search_detection_confidence``) on the windows of :meth:`search_windows` and takes the first
        person found. On dense clutter MediaPipe's person detector misses people it finds once the
        frame is cut differently or the threshold is lower.

        ``foreground`` (H, W) bool, the static-camera background model's foreground of the frame, turns on
        the motion check (``min_moving_fraction``): a person found where nothing moves is a pattern of
        the backdrop, not the subject; the tracking model then forgets it, and the search starts from
        the moving regions. Without it (or with a moving camera) every person found is taken.

        Following a video, a person found outside the subject's window (by the whole-frame look or the
        search) who is not where the subject just was, or not of its size (:meth:`continues`;
        ``continuity_iou``, ``continuity_area_ratio``), is taken as nobody: the tracking model forgets it
        and the search starts from the subject's last box. The tracking model's find in the window around
        the subject's previous box is not checked.

        With ``motion_search_iou`` set and ``foreground`` given (static camera), when the tracking model finds
        nobody, the search model first looks around the moving regions of ``foreground`` and takes a
        person whose box agrees with the region's (before the ``search_scales`` search, when that is on).
        """
        frame = check_rgb_frame(frame)
        height, width = frame.shape[:2]
        moving = self._static_foreground(foreground, (height, width))
        if box is not None and np.isfinite(np.asarray(box, np.float64)).all():
            window = _square_window(np.asarray(box, np.float64), self.config.crop_margin)
        elif self._window is not None and not self.static_image_mode:
            window = self._window
        else:
            window = None
        followed = False  # found in the window around the subject's previous box
        if window is None:
            estimate = self._run(self._pose, frame, 0, 0, 1.0, (height, width))
        else:
            estimate = self._run_window(self._pose, frame, window)
            followed = estimate.found
            if not estimate.found and box is None:  # lost in the window: look at the whole frame
                estimate = self._run(self._pose, frame, 0, 0, 1.0, (height, width))
        if not self._follows(estimate, moving, continuity=box is None and not followed):
            if not self.static_image_mode:
                self._pose.reset()  # the tracking model would keep following a pattern of the backdrop
            estimate = PoseEstimate.nothing(height, width)
        if not estimate.found and box is None and moving is not None and self.config.motion_search_iou > 0:
            estimate = self._motion_search(frame, moving) or estimate
        if not estimate.found and box is None and self.config.search_scales:
            for candidate in self.search_windows(height, width, moving):
                found = self._run_window(self._search, frame, candidate)
                if self._follows(found, moving, continuity=True):
                    estimate = found
                    break
        if not self.static_image_mode:
            self._window = _square_window(estimate.box, self.config.crop_margin) if estimate.found else None
            if estimate.found:
                self._recent = (estimate.box.copy(), 0)
                self._streak += 1
                self._established |= self._streak >= self.config.continuity_after
            else:
                self._streak = 0
                if self._recent is not None:
                    self._recent = (self._recent[0], self._recent[1] + 1)
                    self._established &= self._recent[1] <= self.config.search_memory
        return estimate

    def _other_person(self, frame: np.ndarray, subject: PoseEstimate, moving: np.ndarray | None = None) -> PoseEstimate | None:
        """Another person in ``frame`` once the subject's box (grown) is painted in the frame's median
        colour (a plain rectangle, not a person-shaped blob the model could take for someone), or None."""
        if self._probe is None or not subject.found:
            return None
        height, width = frame.shape[:2]
        x0, y0, x1, y1 = (float(value) for value in subject.box)
        grow = self.config.probe_dilation * (y1 - y0)
        c0, r0 = max(int(np.floor(x0 - grow)), 0), max(int(np.floor(y0 - grow)), 0)
        c1, r1 = min(int(np.ceil(x1 + grow)), width), min(int(np.ceil(y1 + grow)), height)
        painted = frame.copy()
        painted[r0:r1, c0:c1] = np.median(frame.reshape(-1, 3), axis=0).astype(np.uint8)
        other = self._run(self._probe, painted, 0, 0, 1.0, frame.shape[:2])
        if not self._moves(other, moving):
            return None
        from gas_core.segment.tracking import box_iou

        return other if float(box_iou(subject.box, other.box[None])[0]) < 0.5 else None

    # ------------------------------------------------------------------ interfaces
    def detect(self, frame: np.ndarray, *, foreground: np.ndarray | None = None) -> Detections:
        """Candidate people in ``frame`` (H, W, 3) uint8 RGB: the followed subject first, then another
        person if the second look finds one; boxes (K, 4) xyxy pixels, scores (K,) shoulder visibility.
        ``foreground`` (H, W) bool: the static-camera foreground of the frame, for the motion check
        (see :meth:`estimate`)."""
        frame = check_rgb_frame(frame)
        subject = self.estimate(frame, foreground=foreground)
        boxes, scores = [], []
        if subject.found:
            boxes.append(subject.box)
            scores.append(subject.score)
            stride = self.config.probe_stride
            if stride and self._frames_seen % stride == 0:
                other = self._other_person(frame, subject, self._static_foreground(foreground, frame.shape[:2]))
                if other is not None:
                    boxes.append(other.box)
                    scores.append(other.score)
        self._frames_seen += 1
        self._last = (id(frame), subject, frame)
        return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32))

    def last_estimate(self, frame: np.ndarray, box: np.ndarray) -> PoseEstimate:
        """The estimate of the person in ``box`` of ``frame``: the one :meth:`detect` just made when it is
        the same frame and box, else a new run in the box."""
        if self._last is not None:
            frame_id, estimate, seen = self._last
            if (frame_id == id(frame) or seen is frame) and estimate.found and np.allclose(estimate.box, box):
                return estimate
        return self.estimate(frame, box)

    def mask(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(H, W) bool mask of the person in ``box`` (4,) xyxy pixels of ``frame`` (H, W, 3) uint8."""
        estimate = self.last_estimate(check_rgb_frame(frame), np.asarray(box, np.float32))
        return estimate.mask >= self.config.mask_threshold

    def keypoints(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(17, 3) float32 COCO keypoints (u, v frame pixels, confidence) of the person in ``box``."""
        return self.last_estimate(check_rgb_frame(frame), np.asarray(box, np.float32)).keypoints

    def reset(self) -> None:
        """Forget the followed subject (the next frame is searched whole)."""
        self._window = None
        self._recent = None
        self._streak = 0
        self._established = False
        self._last = None

    def close(self) -> None:
        self._pose.close()
        for model in (self._probe, self._search):
            if model is not None:
                model.close()


def _largest_components(binary: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The connected parts of ``binary`` (H, W) bool that hold a confident keypoint, or the largest one."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    if count <= 2:
        return binary
    keep = set()
    height, width = binary.shape
    for u, v, confidence in keypoints:
        if confidence > 0:
            label = labels[int(np.clip(v, 0, height - 1)), int(np.clip(u, 0, width - 1))]
            if label:
                keep.add(int(label))
    if not keep:
        keep = {int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) + 1}
    return np.isin(labels, sorted(keep))


class MediaPipeKeypoints:
    """COCO-17 keypoints of still images (for example the renders of a scan) with MediaPipe Pose, as a
    :class:`~gas_core.body.fit.keypoints.KeypointSource`: ``detect(images, cameras) -> (N, 17, 3)``.
    An image without a person gives 17 keypoints at (0, 0) with confidence 0."""

    def __init__(self, config: MediaPipePoseConfig = MediaPipePoseConfig(probe_stride=0)) -> None:
        self.estimator = MediaPipePose(config, static_image_mode=True)

    def detect(self, images: Sequence[np.ndarray], cameras: Sequence[object] | None = None) -> np.ndarray:
        """(N, 17, 3) float64 keypoints (u, v pixels, confidence in [0, 1]) for N RGB uint8 images."""
        if cameras is not None and len(cameras) != len(images):
            raise ValueError(f"images ({len(images)}) and cameras ({len(cameras)}) must have the same length")
        output = np.zeros((len(images), 17, 3))
        for index, image in enumerate(images):
            output[index] = self.estimator.estimate(check_rgb_frame(np.asarray(image), f"images[{index}]")).keypoints
        return output
