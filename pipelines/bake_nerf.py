"""Bake generalizable-NeRF renderings and SMPL normal maps into clip shards (the diffusion model's input).

For every scan subject of the subject shards, and each of its ``clip.num_references`` orthogonal
reference views (front, side, back, side for 4), one **view clip**: the orbit of
``clip.num_frames`` views starting at the reference (frame 0 is the reference view itself), with the
ground-truth frames and masks, the NeRF rendering of every frame from the reference image, the
fitted body's normal map of every frame (official GAS encoding), per-frame cameras and SMPL.
For every segment of a video subject (``video`` shards), **pose clips**: a reference frame and the
frames after it under the reference frame's camera (:func:`pose_clip_specs`; for multi-view video also
seen from another camera).

Steps (plain functions, wired into Prefect by :mod:`flows.bake_nerf`):

1. :func:`plan_bake` lists the input shards, keeps this rank's share (every ``world_size``-th shard),
   checks that the output folder was baked with the same NeRF checkpoint (``--force-mixed`` to mix),
   and notes which clips the output manifest already holds;
2. :class:`ClipBaker` holds the NeRF, the body model and the normal-map renderer and bakes any
   :class:`ClipSpec` of a :class:`ClipSource`. A source is what clips draw frames from (a scan
   subject's views, or a video segment's frames); :func:`view_clip_specs` and :func:`pose_clip_specs`
   turn a source into clip specs;
3. :func:`bake_input_shard` bakes the missing clips of one input shard into output shards named after
   it (``subjects-000003.tar`` -> ``clips-subjects-000003-000000.tar``, so ranks never collide), closing
   an output shard every ``shards.subjects_per_shard`` subjects; :func:`bake` runs the whole loop.

Re-runs skip clips whose key is in the output manifest, so a crash loses at most the open output
shard (the writer removes it; a killed process leaves a ``.tmp`` that the next run removes). Bad
input (a truncated shard, a sample that fails to decode, a subject that cannot make a clip) is
reported with the reason and the rest completes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from tqdm import tqdm

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import Camera
from gas_core.render.normals import NormalMapRenderer
from pipelines.config import load_config
from shards.manifest import clean_stale_tmp, existing_keys, load_manifest
from shards.reader import ShardReadError, iter_shard_samples, resolve_shard_urls
from shards.remote import is_remote
from shards.schema import (
    CLIP_SCHEMA,
    SUBJECT_SCHEMA,
    VIDEO_SCHEMA,
    ClipSample,
    SchemaError,
    SubjectSample,
    VideoSample,
    decode_sample,
    make_clip_key,
    read_schema_tag,
)
from shards.writer import ShardWriter

__all__ = [
    "BakeConfig",
    "BakeInputError",
    "BakePlan",
    "BakeReport",
    "BakeShardConfig",
    "CheckpointInfo",
    "ClipBaker",
    "ClipConfig",
    "ClipSource",
    "ClipSpec",
    "InputShard",
    "NeRFRenderConfig",
    "ShardBakeReport",
    "SubjectBakeReport",
    "bake",
    "bake_input_shard",
    "config_with_device",
    "skip_input_shard",
    "describe_checkpoint",
    "load_bake_config",
    "output_prefix",
    "plan_bake",
    "resolve_device",
    "resolve_rank",
    "pose_clip_labels",
    "pose_clip_specs",
    "pose_reference_frames",
    "subject_clip_source",
    "video_clip_source",
    "view_clip_specs",
    "view_orbit_indices",
    "view_reference_indices",
]

logger = logging.getLogger(__name__)

_SMPL_PARAMETER_KEYS = ("betas", "body_pose", "global_orient", "transl", "scale")
_PREFIX_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


# --------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ClipConfig:
    """Clip sizes: ``width`` x ``height`` pixels, ``num_frames`` frames per clip, ``num_references``
    reference views per subject, evenly spaced in azimuth (4: front, side, back, other side).

    Pose clips (video segments): ``pose_frames`` frames per clip (None: ``num_frames``; frame 0 is the
    reference frame itself, the others follow it), ``pose_references`` reference frames per segment,
    evenly spaced over the frames a clip can start at; for multi-view video ``pose_cameras`` reference
    cameras (evenly spaced among the segment's cameras) and, per reference, ``pose_cross_views`` clips
    whose targets are seen from another camera (novel view animation, ground truth from that camera).
    """

    width: int = 512
    height: int = 512
    num_frames: int = 20
    num_references: int = 4
    pose_frames: int | None = None
    pose_references: int = 2
    pose_cameras: int = 1
    pose_cross_views: int = 1

    def __post_init__(self) -> None:
        for name in ("width", "height", "num_frames", "num_references", "pose_references", "pose_cameras"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"clip.{name} must be >= 1, got {getattr(self, name)}")
        if self.pose_frames is not None and int(self.pose_frames) < 1:
            raise ValueError(f"clip.pose_frames must be >= 1 or None, got {self.pose_frames}")
        if int(self.pose_cross_views) < 0:
            raise ValueError(f"clip.pose_cross_views must be >= 0, got {self.pose_cross_views}")

    @property
    def frames_per_pose_clip(self) -> int:
        return int(self.pose_frames if self.pose_frames is not None else self.num_frames)


@dataclass(frozen=True)
class NeRFRenderConfig:
    """How the NeRF renders.

    ``device``: "auto" (CUDA when present), "cpu", "cuda" (``cuda:$LOCAL_RANK`` under torchrun) or "cuda:N".
    ``bf16``: bfloat16 autocast of the NeRF's networks on CUDA (geometry stays float32; CPU is float32).
    ``chunk_rays``: rays per network pass, bounds memory (None: the model's default).
    ``frames_per_batch``: target frames rendered together. ``reference_size``: pixels of the (square)
    reference image given to the NeRF (None: the model's training ``image_size``).
    ``store_opacity``: write the accumulated opacity as the clip's ``nerf_mask`` frames.
    """

    device: str = "auto"
    bf16: bool = True
    chunk_rays: int | None = 65536
    frames_per_batch: int = 1
    reference_size: int | None = None
    store_opacity: bool = True

    def __post_init__(self) -> None:
        if self.chunk_rays is not None and int(self.chunk_rays) < 1:
            raise ValueError(f"render.chunk_rays must be >= 1 or None, got {self.chunk_rays}")
        if int(self.frames_per_batch) < 1:
            raise ValueError(f"render.frames_per_batch must be >= 1, got {self.frames_per_batch}")
        if self.reference_size is not None and int(self.reference_size) < 8:
            raise ValueError(f"render.reference_size must be >= 8 pixels or None, got {self.reference_size}")


@dataclass(frozen=True)
class BakeShardConfig:
    """Output shards: ``{prefix}-{input shard name}-000000.tar``, one closed every ``subjects_per_shard``
    subjects (what a crash can lose at most) or when ``max_size`` bytes are reached."""

    prefix: str = "clips"
    subjects_per_shard: int = 8
    max_size: int = 4 << 30

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(self.prefix)):
            raise ValueError(f"shards.prefix must match [A-Za-z0-9_-]+, got {self.prefix!r}")
        if int(self.subjects_per_shard) < 1:
            raise ValueError(f"shards.subjects_per_shard must be >= 1, got {self.subjects_per_shard}")
        if int(self.max_size) < 1:
            raise ValueError(f"shards.max_size must be >= 1, got {self.max_size}")


@dataclass(frozen=True)
class BakeConfig:
    """Everything the bake needs; presets :meth:`paper` (512x512, 20 frames) and :meth:`tiny` (CPU tests).

    ``body_model_path``: folder with ``SMPL_NEUTRAL.pkl`` (None: ``$GAS_BODY_MODEL_PATH`` or the open
    body model); it must be the model the subject shards were fitted with (checked by label).
    """

    clip: ClipConfig = ClipConfig()
    render: NeRFRenderConfig = NeRFRenderConfig()
    shards: BakeShardConfig = BakeShardConfig()
    body_model_path: str | None = None

    @classmethod
    def paper(cls) -> "BakeConfig":
        """The paper's clips: 512x512, 20 frames, 4 orthogonal references; bf16 autocast on CUDA."""
        return cls()

    @classmethod
    def tiny(cls) -> "BakeConfig":
        """CPU preset for tests and demos: 64x64 clips of the 8 views of tiny subject shards, 4 references,
        one output shard per subject."""
        return cls(clip=ClipConfig(width=64, height=64, num_frames=8, num_references=4),
                   render=NeRFRenderConfig(device="cpu", chunk_rays=8192, frames_per_batch=4),
                   shards=BakeShardConfig(subjects_per_shard=1))


def load_bake_config(path: Path | str | None = None, *, preset: Literal["tiny", "paper"] = "paper",
                     overrides: list[str] | tuple[str, ...] = ()) -> BakeConfig:
    """``preset``, then the YAML file's fields, then ``KEY=VALUE`` overrides (``clip.width=256``)."""
    return load_config(BakeConfig, path, preset=preset, overrides=overrides)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cuda"`` -> ``cuda:$LOCAL_RANK`` when torchrun set it."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"render.device {device!r} is not a torch device ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"render.device is {device!r} but no CUDA device is available; use --device cpu")
    return resolved


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` from the arguments, else torchrun's ``RANK`` / ``WORLD_SIZE``, else (0, 1)."""
    try:
        world = int(world_size if world_size is not None else os.environ.get("WORLD_SIZE", 1))
        index = int(rank if rank is not None else os.environ.get("RANK", 0))
    except ValueError as error:
        raise ValueError(f"rank and world_size must be integers (RANK/WORLD_SIZE: {error})") from error
    if world < 1:
        raise ValueError(f"world_size must be >= 1, got {world}")
    if not 0 <= index < world:
        raise ValueError(f"rank must be in [0, {world}), got {index}")
    return index, world


# --------------------------------------------------------------------------------------- checkpoint
@dataclass(frozen=True)
class CheckpointInfo:
    """The NeRF checkpoint a bake uses: ``path`` as given (absolute for local paths), the folder holding
    the ``save_pretrained`` weights, and ``sha256`` of the weights file(s)."""

    path: str
    model_dir: str
    sha256: str

    def clip_extra(self) -> dict[str, str]:
        """What every clip's ``meta["extra"]`` records about the checkpoint."""
        return {"nerf_checkpoint": self.path, "nerf_checkpoint_sha256": self.sha256}


def describe_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Find the weights of a NeRF checkpoint and hash them.

    ``path``: a ``save_pretrained`` folder, or a training checkpoint directory (weights in ``path/model``).
    The digest is the sha256 of the weights file (``*.safetensors`` / ``*.bin``); for several files,
    of their contents in name order. Raises ValueError naming the folder when there are no weights.
    """
    folder = Path(path).expanduser().absolute()
    model_dir = folder if (folder / "config.json").is_file() else folder / "model"  # as load_nerf resolves it
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"checkpoint {folder} has no config.json (neither a save_pretrained folder nor a training "
                         "checkpoint with model/); pass the folder written by save_pretrained or train-nerf")
    weights = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not weights:
        raise ValueError(f"checkpoint {model_dir} holds no weights file (*.safetensors or *.bin)")
    digest = hashlib.sha256()
    for weight_file in weights:
        with weight_file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return CheckpointInfo(path=str(folder), model_dir=str(model_dir), sha256=digest.hexdigest())


def _checkpoint_manifest_extra(out_dir: str, checkpoint: CheckpointInfo, force_mixed: bool) -> dict[str, Any]:
    """The manifest ``extra`` of this bake; refuses to mix checkpoints in one folder unless ``force_mixed``."""
    manifest = load_manifest(out_dir)
    baked_with: dict[str, str] = {}
    if manifest is not None:
        if (manifest.schema_name, manifest.schema_version) != (CLIP_SCHEMA.name, CLIP_SCHEMA.version):
            raise ValueError(f"{out_dir} holds {manifest.schema_name} v{manifest.schema_version} shards, not clips; "
                             "bake into another folder")
        baked_with = {str(k): str(v) for k, v in dict(manifest.extra.get("nerf_checkpoints") or {}).items()}
        if manifest.extra.get("nerf_checkpoint_sha256"):
            baked_with.setdefault(str(manifest.extra["nerf_checkpoint_sha256"]),
                                  str(manifest.extra.get("nerf_checkpoint", "?")))
    others = {sha: where for sha, where in baked_with.items() if sha != checkpoint.sha256}
    if others and not force_mixed:
        listed = "; ".join(f"{where} (sha256 {sha[:12]}...)" for sha, where in sorted(others.items()))
        raise ValueError(
            f"{out_dir} was baked with another NeRF checkpoint: {listed}; this run uses {checkpoint.path} "
            f"(sha256 {checkpoint.sha256[:12]}...). Bake into another folder, or pass --force-mixed "
            "(force_mixed=True) to add clips of both checkpoints to it")
    baked_with[checkpoint.sha256] = checkpoint.path
    return {"nerf_checkpoint": checkpoint.path, "nerf_checkpoint_sha256": checkpoint.sha256,
            "nerf_checkpoints": dict(sorted(baked_with.items()))}


# --------------------------------------------------------------------------------------- sources and specs
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


# --------------------------------------------------------------------------------------- image helpers
def _resize(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> (N, height, width[, C]); area filter when shrinking, linear when enlarging."""
    if images.shape[1:3] == (height, width):
        return images
    shrinking = images.shape[2] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (width, height), interpolation=interpolation) for image in images])


def _resize_masks(masks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Masks uint8 (N, H, W) 0/255 resized and thresholded back to 0/255."""
    if masks.shape[1:3] == (height, width):
        return masks
    return np.where(_resize(masks, width, height) >= 128, 255, 0).astype(np.uint8)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (B, C, H, W) in [0, 1] -> uint8 (B, H, W, C) (C = 1 squeezed)."""
    array = (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _smpl_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """An SMPL dict with JSON-ready values (lists, floats, the body-model label)."""
    output = {key: np.asarray(item[key], dtype=np.float64).tolist() for key in _SMPL_PARAMETER_KEYS if key != "scale"}
    output["scale"] = float(np.asarray(item["scale"], dtype=np.float64).reshape(-1)[0])
    output["body_model"] = str(item["body_model"])
    return output


def _same_camera(a: Camera, b: Camera) -> bool:
    return a is b or (a.width == b.width and a.height == b.height and np.array_equal(a.K, b.K)
                      and np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t))


def _same_smpl(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a is b or all(np.array_equal(np.asarray(a[key]), np.asarray(b[key])) for key in _SMPL_PARAMETER_KEYS)


# --------------------------------------------------------------------------------------- baker
@dataclass
class BakeTimings:
    """Accumulated seconds per part of the bake and frames baked (for reports and benchmarks)."""

    frames: int = 0
    clips: int = 0
    nerf_s: float = 0.0
    normals_s: float = 0.0
    other_s: float = 0.0
    normals_reused: int = 0
    mlp_queries: int = 0


class ClipBaker:
    """Bakes :class:`ClipSpec` s of :class:`ClipSource` s into :class:`shards.schema.ClipSample` s.

    Holds the NeRF (on ``device``), the body model the subjects were fitted with, and one
    :class:`NormalMapRenderer` of the clip size (created on first use). Use as a context manager or call
    :meth:`close`. One baker serves one thread.

    Args:
        model: a :class:`gas_core.nerf.GeneralizableHumanNeRF`.
        body_model: the body model of the subjects' SMPL fits.
        config: sizes and render settings.
        checkpoint: recorded in every clip's ``meta["extra"]``.
        device: where the NeRF and the body model run.
    """

    def __init__(self, model: torch.nn.Module, body_model: BodyModel, config: BakeConfig, checkpoint: CheckpointInfo,
                 device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.body_model = body_model.to(device)
        self.config = config
        self.checkpoint = checkpoint
        self.device = device
        self.timings = BakeTimings()
        self._faces = body_model.faces.detach().cpu().numpy().astype(np.int64)
        self._normal_renderer: NormalMapRenderer | None = None

    @classmethod
    def open(cls, checkpoint: str | os.PathLike[str] | CheckpointInfo, config: BakeConfig) -> "ClipBaker":
        """Load the NeRF checkpoint (``render.bf16`` applied) and the body model; device resolved here."""
        from gas_core.nerf import GeneralizableHumanNeRF

        info = checkpoint if isinstance(checkpoint, CheckpointInfo) else describe_checkpoint(checkpoint)
        device = resolve_device(config.render.device)
        model = GeneralizableHumanNeRF.from_pretrained(info.model_dir, use_bf16=bool(config.render.bf16), low_cpu_mem_usage=False)
        return cls(model, BodyModel(config.body_model_path), config, info, device)

    def close(self) -> None:
        if self._normal_renderer is not None:
            self._normal_renderer.close()
            self._normal_renderer = None

    def __enter__(self) -> "ClipBaker":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ checks
    def check_source(self, source: ClipSource) -> None:
        """Raise :class:`BakeInputError` when ``source`` cannot be baked at this config's clip size."""
        name = f"subject {source.dataset}/{source.subject_id}"
        labels = {str(item.get("body_model", "")) for item in source.smpl}
        if labels != {self.body_model.label}:
            raise BakeInputError(f"{name} was fitted with body model {sorted(labels)}, but the bake loads "
                                 f"{self.body_model.label!r} ({self.body_model.path}); set body_model_path to the "
                                 "model the subject shards were made with")
        width, height = source.size
        clip = self.config.clip
        if width * clip.height != height * clip.width:
            raise BakeInputError(f"{name}: views are {width}x{height} but clips are {clip.width}x{clip.height}; "
                                 "the aspect ratios must match (set clip.width / clip.height)")

    # ------------------------------------------------------------------ baking
    def bake(self, source: ClipSource, spec: ClipSpec) -> ClipSample:
        """Render one clip: NeRF frames from the reference image, normal maps, resized ground truth.

        Returns a :class:`ClipSample` of ``len(spec.frame_indices)`` frames at the clip size; raises
        :class:`BakeInputError` for sources that cannot be baked (see :meth:`check_source`).
        """
        self.check_source(source)
        clip = self.config.clip
        width, height = clip.width, clip.height
        factor = width / source.size[0]
        started = time.perf_counter()
        reference_camera = source.cameras[spec.reference_index].scaled(factor)
        target_cameras = [camera.scaled(factor) for camera in spec.cameras]
        for camera in (reference_camera, *target_cameras):
            if (camera.width, camera.height) != (width, height):
                raise BakeInputError(f"subject {source.dataset}/{source.subject_id}: a camera scales to "
                                     f"{camera.width}x{camera.height}, not the clip's {width}x{height}")
        indices = np.asarray(spec.frame_indices)
        frames = _resize(source.images[indices], width, height)
        masks = _resize_masks(source.masks[indices], width, height)
        reference = _resize(source.images[spec.reference_index][None], width, height)
        reference_mask = _resize_masks(source.masks[spec.reference_index][None], width, height)
        self.timings.other_s += time.perf_counter() - started

        reference_params = SMPLParams.from_records([source.smpl[spec.reference_index]], device=self.device)
        target_params = SMPLParams.from_records(spec.smpl, device=self.device)
        started = time.perf_counter()
        nerf, opacity = self._render_nerf(source, spec.reference_index, reference_params, target_cameras, target_params)
        self.timings.nerf_s += time.perf_counter() - started
        normals = self.normal_maps(source, spec)

        self.timings.frames += len(indices)
        self.timings.clips += 1
        meta = {
            "dataset": source.dataset,
            "subject_id": source.subject_id,
            **({"clip_id": spec.clip_id(source)} if spec.clip_id(source) != clip_label(spec.mode, spec.reference_index) else {}),
            "mode": spec.mode,
            "reference_index": int(spec.reference_index),
            "frame_indices": [int(i) for i in spec.frame_indices],
            "source": dict(source.origin),
            "extra": {**self.checkpoint.clip_extra(), "clip_size": [width, height],
                      **({"reference_frame": source.source_frames[spec.reference_index % source.frames_per_camera],
                          "frames": [source.source_frames[i % source.frames_per_camera] for i in spec.frame_indices]}
                         if source.source_frames is not None else {})},
        }
        return ClipSample(
            frames=frames, nerf=nerf, normals=normals, masks=masks,
            reference=reference[0], reference_mask=reference_mask[0],
            cameras=[camera.to_dict() for camera in target_cameras], reference_camera=reference_camera.to_dict(),
            smpl=[_smpl_json(item) for item in spec.smpl], reference_smpl=_smpl_json(source.smpl[spec.reference_index]),
            meta=meta, nerf_masks=opacity if self.config.render.store_opacity else None,
        )

    def _reference_size(self) -> int:
        """Pixels of the reference given to the NeRF: ``render.reference_size``, else the model's training size."""
        size = self.config.render.reference_size
        return int(size if size is not None else self.model.config.image_size)

    @torch.no_grad()
    def _render_nerf(self, source: ClipSource, reference_index: int, reference_params: SMPLParams,
                     target_cameras: Sequence[Camera], target_params: SMPLParams) -> tuple[np.ndarray, np.ndarray]:
        """NeRF frames uint8 (N, H, W, 3) and opacities uint8 (N, H, W) of the targets, from one reference.

        The reference is resized to the NeRF's reference size and encoded once for all frames.
        """
        from gas_core.nerf import CameraBatch, PosedBody, ReferenceView

        device = self.device
        factor = self._reference_size() / source.size[0]
        camera = source.cameras[reference_index].scaled(factor)
        image = _resize(source.images[reference_index][None], camera.width, camera.height)
        mask = _resize_masks(source.masks[reference_index][None], camera.width, camera.height)
        view = ReferenceView(
            image=torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(0, 3, 1, 2).float().div_(255.0),
            mask=torch.from_numpy(np.ascontiguousarray(mask)).to(device)[:, None].float().div_(255.0),
            camera=CameraBatch.from_cameras([camera], device=device),
            body=PosedBody.from_body_model(self.body_model, reference_params))
        cameras = CameraBatch.from_cameras(target_cameras, device=device)
        bodies = PosedBody.from_body_model(self.body_model, target_params)
        batch = int(self.config.render.frames_per_batch)
        rgb_parts, opacity_parts = [], []
        encoding = self.model.encode_reference(view)
        for start in range(0, cameras.batch_size, batch):
            rows = slice(start, min(start + batch, cameras.batch_size))
            render = self.model.render(encoding, cameras.index(rows), bodies.index(rows),
                                       chunk_rays=self.config.render.chunk_rays)
            self.timings.mlp_queries += int(render.mlp_queries)
            rgb_parts.append(_to_uint8(render.rgb))
            opacity_parts.append(_to_uint8(render.opacity))
        return np.concatenate(rgb_parts), np.concatenate(opacity_parts)

    def normal_maps(self, source: ClipSource, spec: ClipSpec) -> np.ndarray:
        """The fitted body's normal maps of ``spec``'s frames at the clip size, uint8 (N, H, W, 3), official
        GAS encoding: the source's own maps when they have the clip size and the spec's cameras and SMPL are
        the source's, else rendered with :class:`NormalMapRenderer` from the posed body model."""
        clip = self.config.clip
        started = time.perf_counter()
        try:
            if (source.normals is not None and source.size == (clip.width, clip.height)
                    and all(_same_camera(spec.cameras[i], source.cameras[index])
                            and _same_smpl(spec.smpl[i], source.smpl[index]) for i, index in enumerate(spec.frame_indices))):
                self.timings.normals_reused += len(spec.frame_indices)
                return source.normals[np.asarray(spec.frame_indices)]
            cameras = [camera.scaled(clip.width / camera.width) for camera in spec.cameras]
            if self._normal_renderer is None:
                self._normal_renderer = NormalMapRenderer(width=clip.width, height=clip.height)
            if all(_same_smpl(item, spec.smpl[0]) for item in spec.smpl):  # one pose: pose and upload the mesh once
                with torch.no_grad():
                    vertices = self.body_model(SMPLParams.from_records(spec.smpl[:1], device=self.device)).vertices
                return self._normal_renderer.render_views(vertices[0].cpu().double().numpy(), self._faces, cameras)
            with torch.no_grad():
                vertices = self.body_model(SMPLParams.from_records(spec.smpl, device=self.device)).vertices
            return self._normal_renderer.render_frames(vertices.cpu().double().numpy(), self._faces, cameras)
        finally:
            self.timings.normals_s += time.perf_counter() - started


# --------------------------------------------------------------------------------------- planning
def output_prefix(input_url: str, prefix: str = "clips") -> str:
    """Output shard prefix of an input shard: ``.../subjects-000003.tar`` -> ``clips-subjects-000003``."""
    name = input_url.rstrip("/").rsplit("/", 1)[-1]
    stem = name[: -len(".tar")] if name.endswith(".tar") else name
    cleaned = _PREFIX_UNSAFE.sub("-", stem).strip("-")
    if not cleaned:
        raise ValueError(f"input shard {input_url!r} has no usable name for an output prefix")
    return f"{prefix}-{cleaned}"


@dataclass(frozen=True)
class InputShard:
    """One input shard of this rank: its URL, its output prefix and (when its manifest lists them) its
    subject keys; ``done`` when the output already holds every clip of every listed subject."""

    url: str
    prefix: str
    subject_keys: tuple[str, ...] | None = None
    done: bool = False


@dataclass(frozen=True)
class BakePlan:
    """What one rank will do: its input shards, the checkpoint, the clips already in the output."""

    rank: int
    world_size: int
    out_dir: str
    total_input_shards: int
    shards: tuple[InputShard, ...]
    checkpoint: CheckpointInfo
    manifest_extra: Mapping[str, Any]
    done_keys: frozenset[str]
    view_clips_done: Mapping[str, int] = field(default_factory=dict)  # subject key -> view clips in the output

    @property
    def todo(self) -> tuple[InputShard, ...]:
        return tuple(shard for shard in self.shards if not shard.done)

    @property
    def known_subjects(self) -> int | None:
        """Subjects in this rank's unfinished input shards (None when a shard's manifest is missing)."""
        counts = [len(shard.subject_keys) if shard.subject_keys is not None else None for shard in self.todo]
        return None if any(count is None for count in counts) else sum(counts)  # type: ignore[arg-type]


def _input_subject_keys(urls: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Subject keys of each input shard, from the manifests of their folders (shards not listed are absent)."""
    keys: dict[str, tuple[str, ...]] = {}
    folders: dict[str, list[str]] = {}
    for url in urls:
        folder, _, name = url.rstrip("/").rpartition("/")
        folders.setdefault(folder or ".", []).append(url)
    for folder, members in folders.items():
        try:
            manifest = load_manifest(folder)
        except ValueError as error:
            logger.warning("ignoring unreadable manifest of %s: %s", folder, error)
            continue
        if manifest is None:
            continue
        for url in members:
            entry = manifest.entry(url.rstrip("/").rsplit("/", 1)[-1])
            if entry is not None:
                keys[url] = entry.keys
    return keys


def _view_clips_per_subject(done_keys: frozenset[str]) -> Counter[str]:
    """Number of view clips each subject key has among ``done_keys`` (clip key = ``{subject key}__{label}``)."""
    counts: Counter[str] = Counter()
    for key in done_keys:
        subject_key, _, label = key.rpartition("__")
        if subject_key and label.startswith("view"):
            counts[subject_key] += 1
    return counts


def plan_bake(subjects: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
              checkpoint: str | os.PathLike[str] | CheckpointInfo, config: BakeConfig, *, rank: int | None = None,
              world_size: int | None = None, force_mixed: bool = False) -> BakePlan:
    """This rank's share of the bake.

    ``subjects``: subject shards (folder, manifest, glob, files; see :func:`shards.reader.resolve_shard_urls`);
    input shard ``i`` (in name order) goes to rank ``i % world_size``. ``rank`` / ``world_size`` default to
    torchrun's ``RANK`` / ``WORLD_SIZE``. Raises ValueError when the output folder holds clips of another
    NeRF checkpoint (unless ``force_mixed``) or two input shards would share an output prefix.
    """
    rank, world_size = resolve_rank(rank, world_size)
    out_dir = os.fspath(out_dir)
    info = checkpoint if isinstance(checkpoint, CheckpointInfo) else describe_checkpoint(checkpoint)
    extra = _checkpoint_manifest_extra(out_dir, info, force_mixed)
    urls = sorted(resolve_shard_urls(subjects), key=lambda url: url.rstrip("/").rsplit("/", 1)[-1])
    prefixes = [output_prefix(url, config.shards.prefix) for url in urls]
    clashes = sorted({p for p in prefixes if prefixes.count(p) > 1})
    if clashes:
        raise ValueError(f"input shards in different folders share names, so their output prefixes {clashes} would "
                         "collide; bake each folder into its own output folder")
    manifest = load_manifest(out_dir)
    done_keys = frozenset(manifest.keys) if manifest is not None else frozenset()
    listed = _input_subject_keys(urls)
    clips_per_subject = _view_clips_per_subject(done_keys)
    mine = []
    for index in range(rank, len(urls), world_size):
        url = urls[index]
        subject_keys = listed.get(url)
        done = subject_keys is not None and all(
            clips_per_subject[key] >= config.clip.num_references for key in subject_keys)
        mine.append(InputShard(url=url, prefix=prefixes[index], subject_keys=subject_keys, done=done))
    return BakePlan(rank=rank, world_size=world_size, out_dir=out_dir, total_input_shards=len(urls),
                    shards=tuple(mine), checkpoint=info, manifest_extra=extra, done_keys=done_keys,
                    view_clips_done=dict(clips_per_subject))


# --------------------------------------------------------------------------------------- baking shards
@dataclass(frozen=True)
class SubjectBakeReport:
    """Outcome of one subject: ``status`` "baked", "skipped" (all clips existed) or "failed"."""

    input_shard: str
    key: str
    status: str
    clips_written: int = 0
    clips_skipped: int = 0
    error: str = ""
    seconds: float = 0.0

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["seconds"] = round(self.seconds, 3)
        return row


@dataclass
class ShardBakeReport:
    """Outcome of one input shard: its subjects, the output shards written and, when the input shard
    could not be read to the end, ``error`` (subjects read before the damage are kept)."""

    input_shard: str
    prefix: str
    subjects: list[SubjectBakeReport] = field(default_factory=list)
    output_shards: list[str] = field(default_factory=list)
    error: str = ""
    skipped: bool = False

    @property
    def clips_written(self) -> int:
        return sum(report.clips_written for report in self.subjects)

    @property
    def clips_skipped(self) -> int:
        return sum(report.clips_skipped for report in self.subjects)

    @property
    def failed(self) -> list[SubjectBakeReport]:
        return [report for report in self.subjects if report.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.error and not self.failed


@dataclass(frozen=True)
class _SampleHeader:
    """What a raw input sample will give, read without decoding its images: its clip keys."""

    dataset: str
    subject_id: str
    clip_keys: tuple[str, ...]
    labels: tuple[str, ...]


def _sample_header(raw: Mapping[str, Any], clip: ClipConfig, where: str) -> _SampleHeader:
    """The clip labels/keys a raw subject sample (view clips) or video segment (pose clips) gives."""
    try:
        meta = json.loads(raw["meta.json"])
        dataset, subject_id = str(meta["dataset"]), str(meta["subject_id"])
        schema_name, _ = read_schema_tag(raw, where=where)
    except (KeyError, TypeError, ValueError) as error:
        raise BakeInputError(f"{where}: meta.json is missing or unreadable ({error!r})") from error
    try:
        if schema_name == VIDEO_SCHEMA.name:
            video = json.loads(raw["video.json"])
            segment = int(video["segment"])
            labels = pose_clip_labels(int(video["num_cameras"]), int(video["num_frames"]), clip)
        else:
            segment = None
            spec = SUBJECT_SCHEMA.field("views")
            matches = (SUBJECT_SCHEMA.match_member(suffix) for suffix in raw if not suffix.startswith("__"))
            labels = view_clip_labels(sum(1 for match in matches if match is not None and match[0] is spec), clip)
    except (KeyError, TypeError, ValueError) as error:
        raise BakeInputError(f"{where}: {error}") from error
    ids = tuple(segment_clip_id(segment, label) for label in labels)
    return _SampleHeader(dataset, subject_id, tuple(make_clip_key(dataset, subject_id, i) for i in ids), labels)


def _clip_source_and_specs(raw: Mapping[str, Any], clip: ClipConfig, origin: Mapping[str, Any],
                           where: str) -> tuple[ClipSource, list[ClipSpec]]:
    """Decode a raw input sample into its clip source and every clip spec it gives (view or pose clips)."""
    try:
        sample = decode_sample(raw, where=where)
    except SchemaError as error:
        raise BakeInputError(str(error)) from error
    if isinstance(sample, VideoSample):
        source = video_clip_source(sample, origin=origin)
        return source, pose_clip_specs(source, clip)
    if isinstance(sample, SubjectSample):
        source = subject_clip_source(sample, origin=origin)
        return source, view_clip_specs(source, clip)
    raise BakeInputError(f"{where}: a {sample.schema.name} sample cannot be baked; give subject or video shards")


def _read_subjects(url: str, report: ShardBakeReport) -> Iterator[dict[str, Any]]:
    """Raw samples of ``url``; a read error ends the iteration and is recorded in ``report.error``."""
    try:
        yield from iter_shard_samples(url)
    except ShardReadError as error:
        report.error = str(error)
        logger.warning("input shard unreadable past this point: %s", error)


def skip_input_shard(shard: InputShard, plan: BakePlan) -> ShardBakeReport:
    """Report of an input shard whose clips are all in the output (removes leftovers of a killed run)."""
    if os.path.isdir(plan.out_dir) or is_remote(plan.out_dir):
        clean_stale_tmp(plan.out_dir, shard.prefix)
    subjects = [SubjectBakeReport(shard.url, key, "skipped", clips_skipped=plan.view_clips_done.get(key, 0))
                for key in (shard.subject_keys or ())]
    return ShardBakeReport(input_shard=shard.url, prefix=shard.prefix, subjects=subjects, skipped=True)


def bake_input_shard(baker: ClipBaker, shard: InputShard, plan: BakePlan, *,
                     on_subject: Callable[[SubjectBakeReport], None] | None = None) -> ShardBakeReport:
    """Bake the missing clips of one input shard into ``{shard.prefix}-NNNNNN.tar`` shards in ``plan.out_dir``.

    Clips already in the output manifest (``plan.done_keys``) are skipped. An output shard is closed
    every ``shards.subjects_per_shard`` subjects; an exception that is not bad input (a bug, out of
    memory) propagates and removes only the open output shard. ``on_subject`` is called after each subject.
    """
    if shard.done:
        return skip_input_shard(shard, plan)
    config = baker.config
    report = ShardBakeReport(input_shard=shard.url, prefix=shard.prefix)
    if not is_remote(plan.out_dir):
        os.makedirs(plan.out_dir, exist_ok=True)
    clean_stale_tmp(plan.out_dir, shard.prefix)  # this rank owns the prefix: leftovers of a killed run
    done_keys = plan.done_keys | existing_keys(plan.out_dir)  # fresh: a retried task sees what it closed

    with contextlib.ExitStack() as open_writer:
        writer: ShardWriter | None = None
        subjects_in_writer = 0

        def close_writer() -> None:
            nonlocal writer, subjects_in_writer
            if writer is not None:
                open_writer.close()
                report.output_shards.extend(entry.file for entry in writer.closed_shards)
            writer, subjects_in_writer = None, 0

        for raw in _read_subjects(shard.url, report):
            started = time.perf_counter()
            key = str(raw.get("__key__", "?"))
            where = f"{shard.url} sample {key}"
            try:
                header = _sample_header(raw, config.clip, where)
                labels = header.clip_keys
                todo = [clip_key for clip_key in header.clip_keys if clip_key not in done_keys]
                if not todo:
                    subject = SubjectBakeReport(shard.url, key, "skipped", clips_skipped=len(labels))
                else:
                    source, all_specs = _clip_source_and_specs(
                        raw, config.clip, {"subject_shard": shard.url, "subject_key": key}, where)
                    baker.check_source(source)
                    specs = [spec for spec in all_specs if spec.key(source) in todo]
                    if writer is None:
                        writer = open_writer.enter_context(ShardWriter(
                            plan.out_dir, shard.prefix, CLIP_SCHEMA, max_count=1 << 30,
                            max_size=config.shards.max_size, clean_stale=False, manifest_extra=plan.manifest_extra))
                    for spec in specs:
                        writer.write(baker.bake(source, spec))
                    subjects_in_writer += 1
                    subject = SubjectBakeReport(shard.url, key, "baked", clips_written=len(specs),
                                                clips_skipped=len(labels) - len(specs),
                                                seconds=time.perf_counter() - started)
            except BakeInputError as error:
                logger.warning("subject not baked: %s", error)
                subject = SubjectBakeReport(shard.url, key, "failed", error=str(error),
                                            seconds=time.perf_counter() - started)
            report.subjects.append(subject)
            if subjects_in_writer >= config.shards.subjects_per_shard:
                close_writer()
            if on_subject is not None:
                on_subject(subject)
        close_writer()
    return report


@dataclass
class BakeReport:
    """Outcome of one rank's bake."""

    rank: int
    world_size: int
    shards: list[ShardBakeReport] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0

    @property
    def clips_written(self) -> int:
        return sum(shard.clips_written for shard in self.shards)

    @property
    def clips_skipped(self) -> int:
        return sum(shard.clips_skipped for shard in self.shards)

    @property
    def problems(self) -> list[str]:
        """One line per unreadable input shard or failed subject."""
        lines = [shard.error if shard.error.startswith(shard.input_shard) else f"{shard.input_shard}: {shard.error}"
                 for shard in self.shards if shard.error]
        lines += [f"{subject.key}: {subject.error}" for shard in self.shards for subject in shard.failed]
        return lines

    @property
    def ok(self) -> bool:
        return not self.problems

    def rows(self) -> list[dict[str, Any]]:
        """One row per subject (and per unreadable shard) for tables and artifacts."""
        rows = [subject.as_row() for shard in self.shards for subject in shard.subjects]
        rows += [{"input_shard": shard.input_shard, "key": "-", "status": "unreadable", "error": shard.error}
                 for shard in self.shards if shard.error]
        return rows

    def summary(self) -> str:
        skipped = sum(1 for shard in self.shards if shard.skipped)
        text = (f"rank {self.rank}/{self.world_size}: {self.clips_written} clips baked ({self.frames} frames), "
                f"{self.clips_skipped} already present, {len(self.shards)} input shards ({skipped} already done)")
        return text + (f"; {len(self.problems)} problem(s)" if self.problems else "")


def bake(subjects: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
         checkpoint: str | os.PathLike[str], config: BakeConfig = BakeConfig(), *, rank: int | None = None,
         world_size: int | None = None, force_mixed: bool = False, progress: bool | None = None) -> BakeReport:
    """Bake this rank's share of ``subjects`` into clip shards in ``out_dir`` (see the module docstring).

    ``progress``: tqdm bar over subjects (None: only on a terminal). Returns the report; problems (bad
    input) are in ``report.problems``, the rest completed. Other errors propagate.
    """
    started = time.perf_counter()
    plan = plan_bake(subjects, out_dir, checkpoint, config, rank=rank, world_size=world_size, force_mixed=force_mixed)
    report = BakeReport(rank=plan.rank, world_size=plan.world_size)
    bar = tqdm(total=plan.known_subjects, desc=f"bake rank {plan.rank}", unit="subject",
               disable=None if progress is None else not progress)
    for shard in plan.shards:
        if shard.done:
            report.shards.append(skip_input_shard(shard, plan))
    with bar, (ClipBaker.open(plan.checkpoint, config) if plan.todo else contextlib.nullcontext()) as baker:
        for shard in plan.todo:
            report.shards.append(bake_input_shard(baker, shard, plan, on_subject=lambda _: bar.update(1)))
        report.frames = baker.timings.frames if baker is not None else 0
    report.seconds = time.perf_counter() - started
    logger.info("%s", report.summary())
    return report


def config_with_device(config: BakeConfig, device: str | None) -> BakeConfig:
    """``config`` with ``render.device`` replaced when ``device`` is given."""
    if device is None:
        return config
    return replace(config, render=replace(config.render, device=device))
