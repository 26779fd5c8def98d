"""Foreground masks of one subject in monocular videos (paper section 4.1.1, Grounded-SAM masks).

Person candidates (:mod:`~gas_core.segment.detect`: YOLO from local weights, Grounding DINO when
installed, or the static-camera background model of :mod:`~gas_core.segment.background`), one subject
kept across frames (:mod:`~gas_core.segment.tracking`), box-prompted masks (:mod:`~gas_core.segment.sam`, or
the background model's completed by GrabCut, :mod:`~gas_core.segment.refine`)
and temporal smoothing (:mod:`~gas_core.segment.smoothing`), put together by the streaming
:class:`~gas_core.segment.video.VideoMasker`.
"""

from gas_core.segment.background import BackgroundConfig, BackgroundSubtractor, ForegroundComponents, foreground_map
from gas_core.segment.detect import Detections, GroundingDINODetector, PersonDetector, UltralyticsPersonDetector
from gas_core.segment.sam import SAM_MODEL_TYPES, SamMasker, build_random_sam
from gas_core.segment.refine import GrabCutConfig, grabcut_refine, mask_box
from gas_core.segment.smoothing import TemporalMaskSmoother
from gas_core.segment.tracking import FRAME_STATUSES, SubjectTracker, TrackingConfig, TrackStep, box_iou
from gas_core.segment.video import MaskingConfig, VideoMasker, VideoMasks, mask_video

__all__ = [
    "BackgroundConfig", "BackgroundSubtractor", "ForegroundComponents", "foreground_map",
    "Detections", "GroundingDINODetector", "PersonDetector", "UltralyticsPersonDetector",
    "SAM_MODEL_TYPES", "SamMasker", "build_random_sam",
    "GrabCutConfig", "grabcut_refine", "mask_box",
    "TemporalMaskSmoother",
    "FRAME_STATUSES", "SubjectTracker", "TrackingConfig", "TrackStep", "box_iou",
    "MaskingConfig", "VideoMasker", "VideoMasks", "mask_video",
]
