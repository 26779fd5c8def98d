"""Clip sources (a scan subject's views, a video segment's frames) and the view / pose clip specs drawn from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gas_core.cameras import Camera
from pipelines.bake_nerf.config import ClipConfig
from shards.schema import SubjectSample, VideoSample, make_clip_key


class BakeInputError(ValueError):
    """A subject (or input shard) cannot be baked because of its data; the message names it and why."""


@dataclass(frozen=True)
class ClipSource:
    """Images clips are drawn from: a scan subject's M views, or a video segment's M = C x T images.

    ``images`` uint8 (M, H, W, 3); ``masks`` uint8 (M, H, W) 0/255; ``cameras`` M cameras of that size;
    ``smpl`` M dicts (``betas`` (10,), ``body_pose`` (23, 3), ``global_orient`` (3,), ``transl`` (3,)
    metres, ``scale``, ``body_model`` label), one per image (all equal for a scan); ``normals``
    optional uint8 (M, H, W, 3) fitted-body normal maps; ``origin`` where it was read from.
    Video segments: ``num_cameras`` C (images camera-major: image ``c * T + t``) and ``segment``, the
    segment's index in its video (it prefixes clip labels: ``seg002-pose010``) and ``source_frames``, the
    frame number in the video of each of the T frames; scans leave these default.
    """

    dataset: str
    subject_id: str
    images: np.ndarray
    masks: np.ndarray
    cameras: tuple[Camera, ...]
    smpl: tuple[Mapping[str, Any], ...]
    normals: np.ndarray | None = None
    origin: Mapping[str, Any] = field(default_factory=dict)
    num_cameras: int = 1
    segment: int | None = None
    source_frames: tuple[int, ...] | None = None

    @property
    def num_frames(self) -> int:
        """Images of the source (views of a scan, C x T images of a video segment)."""
        return int(len(self.images))

    @property
    def frames_per_camera(self) -> int:
        """T: the frames one camera of a video segment holds (M for a scan)."""
        return self.num_frames // max(1, int(self.num_cameras))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames in pixels."""
        return int(self.images.shape[2]), int(self.images.shape[1])


@dataclass(frozen=True)
class ClipSpec:
    """What one clip holds, independent of how it is rendered.

    ``mode``: "view" or "pose"; ``reference_index``: the source frame used as the reference image;
    ``frame_indices``: the source frame (ground truth) of each target frame; ``cameras`` and ``smpl``:
    the camera and SMPL parameters of each target frame (source size); ``name``: the clip label when it is
    not ``{mode}{reference_index:03d}`` (pose clips: :func:`pose_clip_label`).
    """

    mode: Literal["view", "pose"]
    reference_index: int
    frame_indices: tuple[int, ...]
    cameras: tuple[Camera, ...]
    smpl: tuple[Mapping[str, Any], ...]
    name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("view", "pose"):
            raise ValueError(f"mode must be 'view' or 'pose', got {self.mode!r}")
        if not self.frame_indices or len(self.cameras) != len(self.frame_indices) or len(self.smpl) != len(self.frame_indices):
            raise ValueError(f"frame_indices, cameras and smpl must be non-empty and of one length, got "
                             f"{len(self.frame_indices)}, {len(self.cameras)}, {len(self.smpl)}")

    @property
    def label(self) -> str:
        """``view005`` / ``pose010``: the clip's name within its source (see :meth:`clip_id`)."""
        return self.name if self.name is not None else clip_label(self.mode, self.reference_index)

    def clip_id(self, source: ClipSource) -> str:
        """The last part of the clip key: the label, prefixed by the segment of a video source (``seg002-pose010``)."""
        return segment_clip_id(source.segment, self.label)

    def key(self, source: ClipSource) -> str:
        return make_clip_key(source.dataset, source.subject_id, self.clip_id(source))


def segment_clip_id(segment: int | None, label: str) -> str:
    """``label`` for scans, ``seg{segment:03d}-{label}`` for a video segment."""
    return label if segment is None else f"seg{int(segment):03d}-{label}"


def clip_label(mode: str, reference_index: int) -> str:
    """Clip label ``{mode}{reference_index:03d}``, e.g. ``view010``."""
    return f"{mode}{int(reference_index):03d}"


def view_reference_indices(num_views: int, num_references: int) -> tuple[int, ...]:
    """Indices of ``num_references`` reference views evenly spaced around an orbit of ``num_views`` views.

    View 0 is the front; for 4 references of a 20-view orbit: (0, 5, 10, 15) = front, side, back, side.
    When ``num_views`` is not a multiple of ``num_references`` the nearest views are taken.
    """
    if num_references < 1:
        raise ValueError(f"num_references must be >= 1, got {num_references}")
    if num_views < num_references:
        raise ValueError(f"num_views ({num_views}) must be >= num_references ({num_references})")
    return tuple(int(round(k * num_views / num_references)) % num_views for k in range(num_references))


def view_orbit_indices(num_views: int, reference_index: int, num_frames: int) -> tuple[int, ...]:
    """Source views of an orbit clip of ``num_frames`` frames that starts at ``reference_index``.

    The frames go once around the orbit in the source's order (frame 0 is the reference view); with
    fewer frames than views they are spread evenly over the full circle.
    """
    if not 0 <= reference_index < num_views:
        raise ValueError(f"reference_index must be in [0, {num_views}), got {reference_index}")
    if not 1 <= num_frames <= num_views:
        raise ValueError(f"num_frames must be in [1, num_views={num_views}], got {num_frames}")
    return tuple((reference_index + int(round(i * num_views / num_frames))) % num_views for i in range(num_frames))


def view_clip_labels(num_views: int, clip: ClipConfig) -> tuple[str, ...]:
    """Labels of the view clips of a subject with ``num_views`` views (no image needed)."""
    return tuple(clip_label("view", index) for index in view_reference_indices(num_views, clip.num_references))


def view_clip_specs(source: ClipSource, clip: ClipConfig) -> list[ClipSpec]:
    """One view clip per reference view of ``source``: the orbit starting at that reference.

    Raises :class:`BakeInputError` when the source has fewer views than a clip has frames or references.
    """
    if source.num_frames < max(clip.num_frames, clip.num_references):
        raise BakeInputError(
            f"subject {source.dataset}/{source.subject_id} has {source.num_frames} views; view clips need at least "
            f"clip.num_frames={clip.num_frames} and clip.num_references={clip.num_references}")
    specs = []
    for reference in view_reference_indices(source.num_frames, clip.num_references):
        indices = view_orbit_indices(source.num_frames, reference, clip.num_frames)
        specs.append(ClipSpec(mode="view", reference_index=reference, frame_indices=indices,
                              cameras=tuple(source.cameras[i] for i in indices),
                              smpl=tuple(source.smpl[i] for i in indices)))
    return specs


def pose_reference_frames(num_frames: int, clip_frames: int, count: int) -> tuple[int, ...]:
    """Reference frames of ``count`` pose clips of ``clip_frames`` frames in a segment of ``num_frames`` frames.

    A clip starting at frame ``r`` holds frames ``r .. r + clip_frames - 1``; the starts are spread evenly
    over ``0 .. num_frames - clip_frames`` (fewer when the segment is too short for ``count`` distinct starts).
    """
    if clip_frames < 1 or count < 1:
        raise ValueError(f"clip_frames and count must be >= 1, got {clip_frames} and {count}")
    if num_frames < clip_frames:
        raise ValueError(f"a segment of {num_frames} frames is shorter than a pose clip of {clip_frames} frames "
                         "(lower clip.pose_frames or preprocess longer segments)")
    last = num_frames - clip_frames
    if count == 1:
        return (0,)
    return tuple(sorted({int(round(k * last / (count - 1))) for k in range(count)}))


def _pose_clip_layout(num_cameras: int, num_frames: int, clip: ClipConfig) -> list[tuple[int, int, int]]:
    """``(reference camera, target camera, reference frame)`` of every pose clip of a segment."""
    cameras = max(1, int(num_cameras))
    references = view_reference_indices(cameras, min(int(clip.pose_cameras), cameras))
    crosses = min(int(clip.pose_cross_views), cameras - 1)
    layout = []
    for frame in pose_reference_frames(num_frames, clip.frames_per_pose_clip, int(clip.pose_references)):
        for camera in references:
            layout.append((camera, camera, frame))
            for k in range(1, crosses + 1):
                layout.append((camera, (camera + int(round(k * cameras / (crosses + 1)))) % cameras, frame))
    return layout


def pose_clip_label(reference_frame: int, reference_camera: int, target_camera: int, num_cameras: int) -> str:
    """``pose010`` (monocular), ``pose010-cam03`` (multi-view, same camera), ``pose010-cam03to07`` (novel view)."""
    label = f"pose{int(reference_frame):03d}"
    if num_cameras > 1:
        label += f"-cam{int(reference_camera):02d}"
        if target_camera != reference_camera:
            label += f"to{int(target_camera):02d}"
    return label


def pose_clip_labels(num_cameras: int, num_frames: int, clip: ClipConfig) -> tuple[str, ...]:
    """Labels of the pose clips of a video segment of ``num_cameras`` x ``num_frames`` images (no image needed)."""
    return tuple(pose_clip_label(frame, ref, target, num_cameras)
                 for ref, target, frame in _pose_clip_layout(num_cameras, num_frames, clip))


def pose_clip_specs(source: ClipSource, clip: ClipConfig) -> list[ClipSpec]:
    """Pose clips of a video segment: a reference frame and the following frames' poses under a fixed camera.

    For each reference frame (:func:`pose_reference_frames`) and reference camera, one clip whose targets
    are frames ``r .. r + F - 1`` of the same camera, all rendered with the reference frame's camera
    (frame 0 is the reference itself); with several cameras also ``clip.pose_cross_views`` clips whose
    targets are seen from another camera (ground truth from that camera). Raises
    :class:`BakeInputError` when the segment is shorter than one clip.
    """
    cameras = max(1, int(source.num_cameras))
    if source.num_frames % cameras:
        raise BakeInputError(f"video {source.dataset}/{source.subject_id}: {source.num_frames} images are not "
                             f"{cameras} cameras x T frames")
    frames = source.frames_per_camera
    try:
        layout = _pose_clip_layout(cameras, frames, clip)
    except ValueError as error:
        raise BakeInputError(f"video {source.dataset}/{source.subject_id} segment {source.segment}: {error}") from error
    count = clip.frames_per_pose_clip
    specs = []
    for reference_camera, target_camera, frame in layout:
        reference = reference_camera * frames + frame
        targets = tuple(target_camera * frames + t for t in range(frame, frame + count))
        camera = source.cameras[target_camera * frames + frame]  # fixed camera: the target camera at the reference frame
        specs.append(ClipSpec(mode="pose", reference_index=reference, frame_indices=targets,
                              cameras=tuple(camera for _ in targets), smpl=tuple(source.smpl[i] for i in targets),
                              name=pose_clip_label(frame, reference_camera, target_camera, cameras)))
    return specs


def video_clip_source(sample: VideoSample, *, origin: Mapping[str, Any] | None = None) -> ClipSource:
    """A :class:`ClipSource` of a decoded video segment (its C x T frames, masks, cameras, per-frame SMPL)."""
    return ClipSource(dataset=str(sample.meta["dataset"]), subject_id=str(sample.meta["subject_id"]),
                      images=sample.frames, masks=sample.masks,
                      cameras=tuple(Camera.from_dict(camera) for camera in sample.cameras),
                      smpl=tuple(dict(item) for item in sample.smpl), normals=sample.normals,
                      origin=dict(origin or {}), num_cameras=sample.num_cameras, segment=int(sample.video["segment"]),
                      source_frames=tuple(int(frame) for frame in np.asarray(sample.video["source_frames"]).reshape(-1)))


def subject_clip_source(sample: SubjectSample, *, origin: Mapping[str, Any] | None = None) -> ClipSource:
    """A :class:`ClipSource` of a decoded scan subject (its views, masks, cameras, normal maps; one SMPL fit)."""
    cameras = tuple(Camera.from_dict(camera) for camera in sample.cameras)
    smpl = {key: value for key, value in sample.smpl.items()}
    return ClipSource(dataset=str(sample.meta["dataset"]), subject_id=str(sample.meta["subject_id"]),
                      images=sample.views, masks=sample.masks, cameras=cameras,
                      smpl=tuple(smpl for _ in cameras), normals=sample.normals, origin=dict(origin or {}))
