"""Streaming foreground masks of one subject in a monocular video (paper section 4.1.1, "Grounded-SAM").

:class:`VideoMasker` runs, frame by frame: person candidates (a detector, or the static-camera
background model's foreground components), :class:`~gas_core.segment.tracking.SubjectTracker` (one
subject kept across frames), the subject's mask (Segment Anything prompted with its box, or the
background model's component in the box completed by GrabCut, :mod:`~gas_core.segment.refine`, which
recovers the parts of a subject dancing or turning in place that the median background absorbed), then the temporal majority vote of
:class:`~gas_core.segment.smoothing.TemporalMaskSmoother`. Frames go in chunk by chunk
(:meth:`VideoMasker.process`), state is carried across chunks and memory depends on the windows, not
on the video's length; each call returns the frames that are final so far, :meth:`VideoMasker.finish`
the rest. The split into chunks does not change any output.

Which parts run is set by :class:`MaskingConfig` (paths to local weights, or none for the built-in
background model) or by passing ready objects (``detector=``, ``box_masker=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol, Sequence

import logging

import numpy as np

from gas_core.segment.background import BackgroundConfig, BackgroundSubtractor, ForegroundComponents, ForegroundFrame
from gas_core.segment.detect import Detections, GroundingDINODetector, PersonDetector, UltralyticsPersonDetector
from gas_core.segment.mediapipe_pose import MediaPipePose, MediaPipePoseConfig, mediapipe_available
from gas_core.segment.refine import GrabCutConfig, grabcut_refine, mask_box
from gas_core.segment.sam import SAM_MODEL_TYPES, SamMasker
from gas_core.segment.smoothing import SmoothedMask, TemporalMaskSmoother
from gas_core.segment.tracking import SubjectTracker, TrackingConfig, TrackStep

__all__ = ["ESTIMATORS", "MaskingConfig", "VideoMasks", "VideoMasker", "BoxMasker", "mask_video"]

logger = logging.getLogger(__name__)

#: Built-in estimators used when no weights are configured: MediaPipe Pose (masks and keypoints, the
#: default) or the static-camera background model (masks only; also the fallback without mediapipe).
ESTIMATORS = ("mediapipe", "background")


class BoxMasker(Protocol):
    """Anything that segments the object in a box: ``mask(frame (H, W, 3) uint8, box (4,) xyxy) -> (H, W) bool``."""

    def mask(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MaskingConfig:
    """Video masking: which models (local weight files) and the thresholds and windows.

    Attributes:
        estimator: what runs where no weights are configured (:data:`ESTIMATORS`): ``"mediapipe"``
            (default; MediaPipe Pose gives the person boxes, masks and COCO-17 keypoints, following the
            subject by cropping) or ``"background"`` (the built-in static-camera background model). Without
            the ``mediapipe`` package ``"mediapipe"`` falls back to ``"background"`` with a warning.
        mediapipe: :class:`~gas_core.segment.mediapipe_pose.MediaPipePoseConfig`.
        detector_weights: ultralytics YOLO detection weights (``.pt``) for person boxes; ``None`` takes
            them from the estimator.
        grounding_dino_config, grounding_dino_weights: Grounding DINO's config file and checkpoint; when
            both are set they replace ``detector_weights`` (needs the ``groundingdino`` package).
        sam_checkpoint: Segment Anything checkpoint for box-prompted masks; ``None`` uses the background
            model's component in the box (static camera only).
        sam_model_type: ``"vit_h"``, ``"vit_l"`` or ``"vit_b"`` (the checkpoint's architecture).
        device: torch device for the models.
        detector_score_threshold: detector confidence threshold, in [0, 1].
        detector_image_size: YOLO inference size in pixels (multiple of 32).
        smoothing_window: frames of the temporal majority vote (odd; 1 disables smoothing).
        smoothing_aligns_motion: shift neighbouring masks by the subject's box-centre motion before voting.
        background: the static-camera background model.
        refine: GrabCut completion of the background model's masks (used only without a box masker;
            ``refine.iterations=0`` turns it off), for subjects that stay in place.
        tracking: subject selection and following.
    """

    estimator: str = "mediapipe"
    mediapipe: MediaPipePoseConfig = MediaPipePoseConfig()
    detector_weights: str | None = None
    grounding_dino_config: str | None = None
    grounding_dino_weights: str | None = None
    sam_checkpoint: str | None = None
    sam_model_type: str = "vit_h"
    device: str = "cpu"
    detector_score_threshold: float = 0.25
    detector_image_size: int = 640
    smoothing_window: int = 3
    smoothing_aligns_motion: bool = False
    background: BackgroundConfig = BackgroundConfig()
    refine: GrabCutConfig = GrabCutConfig()
    tracking: TrackingConfig = TrackingConfig()

    def __post_init__(self) -> None:
        if (self.grounding_dino_config is None) != (self.grounding_dino_weights is None):
            raise ValueError("grounding_dino_config and grounding_dino_weights must be set together")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.sam_model_type not in SAM_MODEL_TYPES:
            raise ValueError(f"sam_model_type must be one of {SAM_MODEL_TYPES}, got {self.sam_model_type!r}")
        if self.smoothing_window < 1 or self.smoothing_window % 2 == 0:
            raise ValueError(f"smoothing_window must be an odd count >= 1, got {self.smoothing_window}")
        if not 0.0 <= self.detector_score_threshold <= 1.0:
            raise ValueError(f"detector_score_threshold must be in [0, 1], got {self.detector_score_threshold}")

    @classmethod
    def tiny(cls) -> "MaskingConfig":
        """No weights (MediaPipe, or the built-in background model with ``estimator="background"``), short
        windows: tests and laptops."""
        return cls(smoothing_window=3,
                   background=BackgroundConfig(window_frames=21, sample_stride=2, refresh_interval=4))

    @classmethod
    def paper(cls) -> "MaskingConfig":
        """YOLO person boxes + SAM ViT-H masks (the paper uses Grounded-SAM; point ``grounding_dino_*`` at
        its files to use Grounding DINO). The weight paths are local files to provide, e.g. with
        ``--set sam_checkpoint=/models/sam_vit_h_4b8939.pth``."""
        return cls(detector_weights="weights/yolov8x.pt", sam_checkpoint="weights/sam_vit_h_4b8939.pth",
                   sam_model_type="vit_h")


@dataclass(frozen=True)
class VideoMasks:
    """Masks of ``T`` consecutive frames.

    Attributes:
        frame_indices: (T,) int64 positions in the video.
        masks: (T, H, W) uint8 in {0, 255}; all zero unless the status is ``"ok"``.
        boxes: (T, 4) float32 xyxy pixels of the subject; NaN unless ``"ok"``.
        statuses: T strings from :data:`~gas_core.segment.tracking.FRAME_STATUSES`.
        scores: (T,) float32 detector score of the subject; NaN unless ``"ok"``.
        keypoints: (T, 17, 3) float32 COCO-17 ``u, v`` pixels + confidence of the subject from the same
            estimator (MediaPipe), zero unless ``"ok"``; None when the masker gives no keypoints.
    """

    frame_indices: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    statuses: tuple[str, ...]
    scores: np.ndarray
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.frame_indices.shape[0])

    @staticmethod
    def concatenate(parts: Sequence["VideoMasks"]) -> "VideoMasks":
        """Join consecutive parts (in order) into one; ValueError when ``parts`` is empty."""
        if not parts:
            raise ValueError("parts must hold at least one VideoMasks")
        shape = next((part.masks.shape[1:] for part in parts if len(part)), parts[0].masks.shape[1:])
        return VideoMasks(
            frame_indices=np.concatenate([part.frame_indices for part in parts]),
            masks=np.concatenate([part.masks.reshape(-1, *shape) for part in parts]),
            boxes=np.concatenate([part.boxes for part in parts]),
            statuses=tuple(status for part in parts for status in part.statuses),
            scores=np.concatenate([part.scores for part in parts]),
            keypoints=(np.concatenate([part.keypoints for part in parts])
                       if all(part.keypoints is not None for part in parts) else None),
        )


class VideoMasker:
    """Streaming masks of one subject (see the module docstring).

    Args:
        config: models, thresholds and windows.
        detector: a ready :class:`~gas_core.segment.detect.PersonDetector`, used instead of the one the
            config names.
        box_masker: a ready :class:`BoxMasker` (for example a :class:`~gas_core.segment.sam.SamMasker`),
            used instead of the one the config names.
        background_prior: (H, W, 3) float32 background of the whole video
            (:func:`~gas_core.segment.background.median_background`) for the background model, when it runs
            (see :class:`~gas_core.segment.background.BackgroundSubtractor`).
    """

    def __init__(self, config: MaskingConfig = MaskingConfig(), detector: PersonDetector | None = None,
                 box_masker: BoxMasker | None = None, background_prior: np.ndarray | None = None) -> None:
        self.config = config
        if detector is None:
            if config.grounding_dino_config is not None:
                detector = GroundingDINODetector(config.grounding_dino_config, config.grounding_dino_weights,
                                                 box_threshold=config.detector_score_threshold, device=config.device)
            elif config.detector_weights is not None:
                detector = UltralyticsPersonDetector(config.detector_weights, config.detector_score_threshold,
                                                     config.detector_image_size, config.device)
        if box_masker is None and config.sam_checkpoint is not None:
            box_masker = SamMasker.from_checkpoint(config.sam_checkpoint, config.sam_model_type, config.device)
        if config.estimator == "mediapipe" and (detector is None or box_masker is None):
            if mediapipe_available():
                estimator = MediaPipePose(config.mediapipe)
                detector = estimator if detector is None else detector
                box_masker = estimator if box_masker is None else box_masker
            else:
                logger.warning("mediapipe is not installed: masks come from the built-in background model "
                               "(static camera only) and no keypoints are estimated")
        self.detector = detector
        self.box_masker = box_masker
        self.pose = box_masker if isinstance(box_masker, MediaPipePose) else None
        # MediaPipe as the detector checks that the people it finds move (a static camera's foreground).
        self._pose_detects = isinstance(detector, MediaPipePose) and detector.config.uses_foreground
        self.background = (BackgroundSubtractor(config.background, background_prior)
                           if detector is None or box_masker is None or self._pose_detects else None)
        self.tracker = SubjectTracker(config.tracking)
        self.smoother = TemporalMaskSmoother(config.smoothing_window)
        self._next_index = 0
        self._frame_shape: tuple[int, int] | None = None
        self._previous_mask: np.ndarray | None = None  # last refined mask, None after a frame without subject

    @property
    def uses_background_model(self) -> bool:
        """Whether the static-camera background model runs (no detector or no box masker given, or
        MediaPipe's motion check, :attr:`MediaPipePoseConfig.min_moving_fraction`)."""
        return self.background is not None

    def _segment(self, item: ForegroundFrame) -> list[SmoothedMask]:
        components = (ForegroundComponents(item.foreground, self.config.background)
                      if item.foreground is not None and (self.detector is None or self.box_masker is None) else None)
        if self._pose_detects:
            detections: Detections = self.detector.detect(item.frame, foreground=item.foreground)
        elif self.detector is not None:
            detections = self.detector.detect(item.frame)
        else:  # pieces of the previous subject box stay one candidate
            detections = components.detections(merge_box=self.tracker.box)
        step: TrackStep = self.tracker.update(item.frame, detections)
        found = step.status == "ok"
        if not found:
            mask = np.zeros(item.frame.shape[:2], bool)
        elif self.box_masker is not None:
            mask = np.asarray(self.box_masker.mask(item.frame, step.box), dtype=bool)
        else:
            mask = components.mask(step.box)
            if self.config.refine.enabled:
                mask = self._refine(item, mask, step.box)
        self._previous_mask = mask if found and self.box_masker is None else None
        keypoints = None
        if self.pose is not None:
            keypoints = self.pose.keypoints(item.frame, step.box) if found else np.zeros((17, 3), np.float32)
        anchor = None
        if found and self.config.smoothing_aligns_motion:
            anchor = np.array([(step.box[0] + step.box[2]) / 2, (step.box[1] + step.box[3]) / 2])
        return self.smoother.push(mask, valid=found, payload=(item.index, step, keypoints), anchor=anchor)

    def _refine(self, item: ForegroundFrame, mask: np.ndarray, box: np.ndarray) -> np.ndarray:
        """GrabCut completion of the component mask (H, W) bool of the subject in ``box`` (4,) xyxy pixels."""
        refine = self.config.refine
        previous = self._previous_mask if refine.follows_previous else None
        previous_box = mask_box(previous) if previous is not None else None
        if previous_box is not None:  # the subject stays near where it was
            box = np.concatenate([np.minimum(box[:2], previous_box[:2]), np.maximum(box[2:], previous_box[2:])])
        return grabcut_refine(item.frame, mask, box, refine, item.distance, previous)

    def _pack(self, released: list[SmoothedMask]) -> VideoMasks:
        height, width = self._frame_shape if self._frame_shape is not None else (0, 0)
        steps = [item.payload[1] for item in released]
        return VideoMasks(
            frame_indices=np.array([item.payload[0] for item in released], dtype=np.int64),
            masks=(np.stack([item.mask for item in released]).astype(np.uint8) * 255 if released
                   else np.zeros((0, height, width), np.uint8)),
            boxes=np.stack([step.box for step in steps]).astype(np.float32) if steps else np.zeros((0, 4), np.float32),
            statuses=tuple(step.status for step in steps),
            scores=np.array([step.score for step in steps], dtype=np.float32),
            keypoints=(None if self.pose is None else np.stack([item.payload[2] for item in released]).astype(np.float32)
                       if released else np.zeros((0, 17, 3), np.float32)),
        )

    def process(self, frames: np.ndarray) -> VideoMasks:
        """Add the next chunk ``frames`` (T, H, W, 3) uint8 RGB; returns the frames that are final so far
        (earlier ones included, later ones held back by the windows)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB, got shape {frames.shape} dtype {frames.dtype}")
        if self._frame_shape is None and frames.shape[0]:
            self._frame_shape = frames.shape[1:3]
        elif frames.shape[0] and frames.shape[1:3] != self._frame_shape:
            raise ValueError(f"frames must keep the video's size {self._frame_shape}, got {frames.shape[1:3]}")
        released: list[SmoothedMask] = []
        for frame in frames:
            if self.background is not None:
                ready = self.background.push(frame)
            else:
                ready = [ForegroundFrame(self._next_index, np.ascontiguousarray(frame), None)]
            self._next_index += 1
            for item in ready:
                released.extend(self._segment(item))
        return self._pack(released)

    def finish(self) -> VideoMasks:
        """End of the video: the remaining frames."""
        released: list[SmoothedMask] = []
        if self.background is not None:
            for item in self.background.finish():
                released.extend(self._segment(item))
        released.extend(self.smoother.finish())
        return self._pack(released)


def mask_video(chunks: Iterable[np.ndarray], config: MaskingConfig = MaskingConfig(),
               detector: PersonDetector | None = None, box_masker: BoxMasker | None = None) -> Iterator[VideoMasks]:
    """Mask a video given as chunks of frames (T_i, H, W, 3) uint8 RGB; yields one :class:`VideoMasks`
    per chunk plus a last one for the tail (together every frame once, in order)."""
    masker = VideoMasker(config, detector=detector, box_masker=box_masker)
    for chunk in chunks:
        yield masker.process(chunk)
    yield masker.finish()

