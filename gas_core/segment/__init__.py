"""Foreground masks of one subject in monocular videos (paper section 4.1.1, Grounded-SAM masks).

By default MediaPipe Pose (:mod:`~gas_core.segment.mediapipe_pose`, offline: its models ship in the
wheel) gives the person boxes, masks and COCO-17 keypoints. Otherwise: person candidates
(:mod:`~gas_core.segment.detect`: YOLO from local weights, Grounding DINO when
installed, or the static-camera background model of :mod:`~gas_core.segment.background`), one subject
kept across frames (:mod:`~gas_core.segment.tracking`), box-prompted masks (:mod:`~gas_core.segment.sam`, or
the background model's completed by GrabCut, :mod:`~gas_core.segment.refine`)
and temporal smoothing (:mod:`~gas_core.segment.smoothing`), put together by the streaming
:class:`~gas_core.segment.video.VideoMasker`.
"""

from gas_core.segment.background import (BackgroundConfig, BackgroundSubtractor, ForegroundComponents, foreground_map,
                                         video_background)
from gas_core.segment.detect import Detections, GroundingDINODetector, PersonDetector, UltralyticsPersonDetector
from gas_core.segment.mediapipe_pose import MediaPipeKeypoints, MediaPipePose, MediaPipePoseConfig, PoseEstimate
from gas_core.segment.sam import SAM_MODEL_TYPES, SamMasker, build_random_sam
from gas_core.segment.refine import GrabCutConfig, grabcut_refine, mask_box
from gas_core.segment.smoothing import TemporalMaskSmoother
from gas_core.segment.tracking import FRAME_STATUSES, SubjectTracker, TrackingConfig, TrackStep, box_iou
from gas_core.segment.video import MaskingConfig, VideoMasker, VideoMasks, mask_video

__all__ = [
    "BackgroundConfig", "BackgroundSubtractor", "ForegroundComponents", "foreground_map", "video_background",
    "MediaPipeKeypoints", "MediaPipePose", "MediaPipePoseConfig", "PoseEstimate",
    "Detections", "GroundingDINODetector", "PersonDetector", "UltralyticsPersonDetector",
    "SAM_MODEL_TYPES", "SamMasker", "build_random_sam",
    "GrabCutConfig", "grabcut_refine", "mask_box",
    "TemporalMaskSmoother",
    "FRAME_STATUSES", "SubjectTracker", "TrackingConfig", "TrackStep", "box_iou",
    "MaskingConfig", "VideoMasker", "VideoMasks", "mask_video",
]
