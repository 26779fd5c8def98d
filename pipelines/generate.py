"""Single-image generation (paper section 3.5): novel views and novel poses of a person from one image.

``gas generate IMAGE --out DIR`` runs the whole inference path:

1. **Inputs** (:func:`read_generation_inputs`): the reference image, its person mask, the SMPL fit
   (the project's SMPL dict: ``betas`` (10,), ``body_pose`` (23, 3), ``global_orient`` (3,),
   ``transl`` (3,) metres, ``scale``, ``body_model``) and the camera (the project's
   :class:`~gas_core.cameras.Camera` JSON). :func:`generate` first reads every given file
   (:func:`check_input_files`: decodes, sizes, JSON, the driving video's first frame) before any model
   loads; a bad file raises :class:`GenerateInputError` naming it. Without a mask file the person segmenter
   (:mod:`gas_core.segment`) is used, without SMPL and camera files the monocular fitter
   (:func:`gas_core.body.fit.monocular.fit_smpl_monocular`), given their local weight files.
2. **Targets**: view mode (:func:`reference_orbit`) — ``num_views`` cameras evenly spaced in azimuth
   around the body's vertical axis: the reference camera turned about it, so distance, elevation and
   intrinsics are the reference's and view 0 is the reference view; pose mode (:func:`drive_poses`) — a
   driving pose sequence under the reference camera, with the reference's body shape (cross
   re-enactment; ``pose.keep_driver_shape`` takes the driver's) and the driver's root trajectory
   moved to start at the reference's pelvis. In both modes frame 0 is the reference itself
   (the reference view / pose), which every sampling window holds; pose mode drops it from the output.
3. **Conditions**: the NeRF frames and SMPL normal maps of every target, rendered by the bake's
   :class:`pipelines.bake_nerf.ClipBaker` (the code that made the training clips), then the VAE
   latents (UNSCALED) of the NeRF frames and of the reference, the CLIP embedding of the reference.
4. **Sampling**: :func:`gas_core.diffusion.sample_latents` (EDM Euler, ``sampling.steps`` steps) with the
   paper's guidance: view mode triangular 1 -> 2 (back view) -> 1 for any frame count, pose mode a fixed
   2; sequences longer than ``sampling.window`` frames go through overlapping windows that all keep the
   reference frame, so the denoiser never sees more than ``window`` frames; decoding runs in chunks.
   The per-frame guidance scales are logged and recorded in ``generation.json`` (``guidance_scales``).
5. **Outputs** (each written atomically): ``frames/frame_0000.png`` ..., ``video.mp4``, ``strip.png``
   (rows: NeRF frames, normal maps, output), ``generation.json`` (inputs, checkpoints, resolved config,
   timings) and the per-frame ``cameras.json`` / ``smpl.json`` used.

Configuration: :class:`GenerateConfig` (presets :meth:`GenerateConfig.tiny` / :meth:`GenerateConfig.paper`,
YAML + ``--set key.sub=value`` through :func:`load_generate_config`).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import math
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from gas_core.body.fit.monocular import MonocularFitConfig
from gas_core.body.smpl import MAX_BETAS, BodyModel, SMPLParams
from gas_core.cameras import Camera
from gas_core.diffusion import GASConditions, GASModel, GenerationMode, sample_latents, svd_added_time_ids
from gas_core.diffusion.guidance import pose_guidance_scales, view_guidance_scales
from gas_core.diffusion.model import GASDenoiser
from gas_core.fileio import atomic_directory, atomic_write_bytes
from pipelines.bake_nerf import (
    BakeConfig,
    BakeInputError,
    ClipBaker,
    ClipConfig,
    ClipSource,
    ClipSpec,
    NeRFRenderConfig,
    describe_checkpoint,
    resolve_device,
)
from gas_core.segment.video import MaskingConfig
from gas_core.videoio import VIDEO_SUFFIXES
from pipelines.config import load_config
from pipelines.datasets.errors import ScanReadError
from pipelines.preprocess import VideoConfig
from shards.manifest import load_manifest
from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.schema import VIDEO_SCHEMA, SchemaError, decode_video

__all__ = [
    "GenerateConfig",
    "GenerateInputError",
    "GenerateInputs",
    "GenerateResult",
    "GuidanceConfig",
    "NeRFSettings",
    "OutputConfig",
    "PoseDriveConfig",
    "PoseSequence",
    "ReferenceConfig",
    "ReferenceEstimator",
    "ReferenceInputs",
    "EstimatorConfig",
    "SamplingConfig",
    "SingleImageGenerator",
    "drive_poses",
    "generate",
    "guidance_scales_for",
    "load_diffusion_model",
    "load_generate_config",
    "main_from_args",
    "build_parser",
    "check_input_files",
    "config_from_args",
    "pelvis_positions",
    "prepare_reference",
    "read_camera_file",
    "read_generation_inputs",
    "read_image_file",
    "read_mask_file",
    "read_pose_sequence",
    "is_driving_video",
    "driving_video_poses",
    "video_shard_poses",
    "read_smpl_file",
    "reference_orbit",
    "resolve_dtype",
]

logger = logging.getLogger(__name__)

_SMPL_KEYS = ("betas", "body_pose", "global_orient", "transl", "scale")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class GenerateInputError(ValueError):
    """An input file (image, mask, SMPL, camera, pose sequence, checkpoint) is missing or unusable; the
    message names the file and the reason."""


# ============================================================================================ config
def _positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SamplingConfig:
    """Diffusion sampling.

    ``steps``: EDM Euler steps (25 in the paper). ``window``: frames per denoiser call including the
    reference frame (20, the model's clip length); longer sequences use overlapping windows sharing
    ``overlap`` frames besides the reference (``0 <= overlap < window - 1``). ``decode_chunk``: frames per
    VAE decode call (None: ``window``). ``fps_id`` / ``motion_bucket_id``: SVD's micro-conditioning (the
    release samples with 7 and 127, no noise augmentation). ``seed``: initial noise.
    """

    steps: int = 25
    window: int = 20
    overlap: int = 4
    decode_chunk: int | None = None
    fps_id: int = 7
    motion_bucket_id: int = 127
    seed: int = 0

    def __post_init__(self) -> None:
        _positive(self.steps, "sampling.steps")
        _positive(self.window, "sampling.window")
        if self.window < 2:
            raise ValueError(f"sampling.window must be >= 2 (the reference frame and one more), got {self.window}")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or not 0 <= self.overlap < self.window - 1:
            raise ValueError(f"sampling.overlap must be an int in [0, window - 1) = [0, {self.window - 1}), got {self.overlap!r}")
        if self.decode_chunk is not None:
            _positive(self.decode_chunk, "sampling.decode_chunk")
        _positive(self.fps_id, "sampling.fps_id")


@dataclass(frozen=True)
class GuidanceConfig:
    """Classifier-free guidance: view mode rises linearly with azimuth from ``view_min`` (reference view)
    to ``view_max`` (back view) and falls back; pose mode uses ``pose_scale`` for every frame (paper: 1, 2, 2)."""

    view_min: float = 1.0
    view_max: float = 2.0
    pose_scale: float = 2.0

    def __post_init__(self) -> None:
        for name in ("view_min", "view_max", "pose_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"guidance.{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))


@dataclass(frozen=True)
class NeRFSettings:
    """How the NeRF renders the condition frames (passed on to the bake's :class:`NeRFRenderConfig`):
    ``bf16`` autocast on CUDA, ``chunk_rays`` rays per network pass, ``frames_per_batch`` frames per
    render call, ``reference_size`` pixels of the reference given to the NeRF (None: its training size)."""

    bf16: bool = True
    chunk_rays: int | None = 65536
    frames_per_batch: int = 1
    reference_size: int | None = None

    def render_config(self, device: str) -> NeRFRenderConfig:
        """The bake's render settings for ``device`` (opacity kept: the strip and records use it)."""
        return NeRFRenderConfig(device=device, bf16=bool(self.bf16), chunk_rays=self.chunk_rays,
                                frames_per_batch=self.frames_per_batch, reference_size=self.reference_size,
                                store_opacity=True)


@dataclass(frozen=True)
class PoseDriveConfig:
    """Pose mode: how a driving sequence becomes the target poses.

    ``keep_driver_shape``: use the driver's betas (and scale) instead of the reference's (default: the
    reference's shape, cross re-enactment). ``align_translation``: move the driver's root trajectory so
    that its first frame's pelvis sits on the reference's pelvis. ``align_orientation``: also turn the
    driver's root so that its first frame faces as the reference does (for drivers fitted in another
    world frame). ``frame_stride`` / ``max_frames``: use every n-th driver frame, at most this many.
    """

    keep_driver_shape: bool = False
    align_translation: bool = True
    align_orientation: bool = False
    frame_stride: int = 1
    max_frames: int | None = None

    def __post_init__(self) -> None:
        _positive(self.frame_stride, "pose.frame_stride")
        if self.max_frames is not None:
            _positive(self.max_frames, "pose.max_frames")


@dataclass(frozen=True)
class ReferenceConfig:
    """The reference image: ``composite_background`` puts the masked person on ``background`` (RGB 0-255;
    black, as the scan renders the models were trained on); ``mask_threshold`` binarises soft masks;
    ``crop_margin``: a non-square image is cut to a square around the person's box enlarged by this
    fraction (at least the image's shorter side; outside the image is background)."""

    composite_background: bool = True
    background: tuple[int, int, int] = (0, 0, 0)
    mask_threshold: float = 0.5
    crop_margin: float = 0.1

    def __post_init__(self) -> None:
        background = tuple(int(v) for v in self.background)
        if len(background) != 3 or not all(0 <= v <= 255 for v in background):
            raise ValueError(f"reference.background must be three values in [0, 255], got {self.background!r}")
        object.__setattr__(self, "background", background)
        if not 0.0 < float(self.mask_threshold) < 1.0:
            raise ValueError(f"reference.mask_threshold must be in (0, 1), got {self.mask_threshold}")
        if float(self.crop_margin) < 0:
            raise ValueError(f"reference.crop_margin must be >= 0, got {self.crop_margin}")


@dataclass(frozen=True)
class EstimatorConfig:
    """What fills in a missing mask, SMPL or camera file (paper section 4.1.1: Grounded-SAM masks, a
    monocular SMPL fit). All weights are local files (never downloaded).

    ``masking``: :class:`gas_core.segment.video.MaskingConfig` — person boxes (``detector_weights``, YOLO,
    or Grounding DINO) and box-prompted SAM masks (``sam_checkpoint``); a single image needs both.
    ``keypoint_weights``: an ultralytics pose checkpoint for the COCO-17 keypoints the monocular fit uses.
    ``monocular``: :class:`gas_core.body.fit.monocular.MonocularFitConfig` (its camera: the world-origin
    camera of the assumed field of view, world = camera frame).
    """

    masking: MaskingConfig = MaskingConfig(smoothing_window=1)
    keypoint_weights: str | None = None
    monocular: MonocularFitConfig = MonocularFitConfig()


@dataclass(frozen=True)
class OutputConfig:
    """What is written: ``fps`` of the MP4; the strip shows at most ``strip_frames`` frames (evenly chosen)."""

    fps: float = 7.0
    write_video: bool = True
    write_strip: bool = True
    strip_frames: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not 0 < float(self.fps) <= 240:
            raise ValueError(f"output.fps must be in (0, 240], got {self.fps!r}")
        _positive(self.strip_frames, "output.strip_frames")


@dataclass(frozen=True)
class GenerateConfig:
    """Everything ``gas generate`` needs; presets :meth:`paper` (512 px, 20 views, 25 steps) and :meth:`tiny`.

    ``mode``: "view" (an orbit of novel views) or "pose" (a driving pose sequence). ``num_views``: views
    of the orbit (any count >= 2; frame 0 is the reference view). ``size``: output side in pixels (square,
    a multiple of 8). ``device``: "auto" (CUDA when present), "cpu", "cuda", "cuda:N". ``dtype``: "auto"
    (fp16 on CUDA, fp32 on CPU), "fp32", "fp16" or "bf16" (the diffusion model; the NeRF keeps its own
    ``nerf.bf16`` autocast). ``prefer_ema``: from a training checkpoint, load its EMA weights when present.
    ``body_model_path``: folder with ``SMPL_NEUTRAL.pkl`` (None: ``$GAS_BODY_MODEL_PATH`` or the open model).
    ``driver``: how a driving video given as the pose sequence is preprocessed (masks, monocular SMPL fit;
    :class:`pipelines.preprocess.VideoConfig`).
    """

    mode: Literal["view", "pose"] = "view"
    num_views: int = 20
    size: int = 512
    device: str = "auto"
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    sampling: SamplingConfig = SamplingConfig()
    guidance: GuidanceConfig = GuidanceConfig()
    nerf: NeRFSettings = NeRFSettings()
    pose: PoseDriveConfig = PoseDriveConfig()
    reference: ReferenceConfig = ReferenceConfig()
    output: OutputConfig = OutputConfig()
    estimators: EstimatorConfig = EstimatorConfig()
    driver: VideoConfig = VideoConfig()
    prefer_ema: bool = True
    body_model_path: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("view", "pose"):
            raise ValueError(f"mode must be 'view' or 'pose', got {self.mode!r}")
        _positive(self.num_views, "num_views")
        if self.num_views < 2:
            raise ValueError(f"num_views must be >= 2 (the reference view and at least one novel view), got {self.num_views}")
        _positive(self.size, "size")
        if self.size % 8 or self.size < 16:
            raise ValueError(f"size must be a multiple of 8 and >= 16 (VAE latents are size / 8), got {self.size}")
        if self.dtype not in ("auto", *_DTYPES):
            raise ValueError(f"dtype must be one of auto, fp32, fp16, bf16, got {self.dtype!r}")

    @classmethod
    def paper(cls) -> "GenerateConfig":
        """The paper's inference: 512x512, 20-view orbits, 25 steps, guidance 1 -> 2 -> 1 (view) / 2 (pose),
        20-frame windows; fp16 on a GPU."""
        return cls()

    @classmethod
    def tiny(cls) -> "GenerateConfig":
        """CPU preset for tests and demos: 64x64, 8 views, 3 steps, 8-frame windows, fp32."""
        return cls(num_views=8, size=64, device="cpu", dtype="fp32",
                   sampling=SamplingConfig(steps=3, window=8, overlap=2),
                   nerf=NeRFSettings(bf16=False, chunk_rays=8192, frames_per_batch=4),
                   output=OutputConfig(fps=7.0, strip_frames=12),
                   estimators=EstimatorConfig(monocular=MonocularFitConfig.tiny()), driver=VideoConfig.tiny())


def load_generate_config(path: Path | str | None = None, *, preset: Literal["tiny", "paper"] = "paper",
                         overrides: Sequence[str] = ()) -> GenerateConfig:
    """``preset``, then the YAML file's fields, then ``KEY=VALUE`` overrides (``sampling.steps=10``)."""
    return load_config(GenerateConfig, path, preset=preset, overrides=list(overrides))


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The diffusion model's dtype: "auto" -> fp16 on CUDA, fp32 on CPU; fp16 on CPU is refused."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of auto, fp32, fp16, bf16, got {dtype!r}")
    if dtype == "fp16" and device.type != "cuda":
        raise ValueError("dtype fp16 needs a CUDA device (CPU kernels lack half precision); use fp32 or bf16 on CPU")
    return _DTYPES[dtype]


def guidance_scales_for(mode: str, num_frames: int, guidance: GuidanceConfig) -> torch.Tensor:
    """Per-frame guidance float32 (num_frames,): triangular over the orbit (view) or fixed (pose)."""
    if mode == "view":
        return view_guidance_scales(num_frames, guidance.view_min, guidance.view_max)
    if mode == "pose":
        return pose_guidance_scales(num_frames, guidance.pose_scale)
    raise ValueError(f"mode must be 'view' or 'pose', got {mode!r}")


# ============================================================================================ input files
def _require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise GenerateInputError(f"{what} file {path} does not exist (or is not a file)")
    return path


def read_image_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference image: uint8 (H, W, 3) RGB, and its alpha channel uint8 (H, W) when it has one."""
    path = _require_file(path, "image")
    try:
        with Image.open(path) as image:
            image.load()
            alpha = np.asarray(image.getchannel("A")) if image.mode in ("RGBA", "LA", "PA") else None
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, ImportError) as error:  # ultralytics' PIL patch raises ImportError
        raise GenerateInputError(f"image file {path} is not a readable image ({error})") from error
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise GenerateInputError(f"image file {path} is {rgb.shape[1]}x{rgb.shape[0]} pixels; at least 8x8 is needed")
    return np.ascontiguousarray(rgb), alpha


def read_mask_file(path: str | Path, size: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """A person mask uint8 (H, W) 0/255 from a grey, RGB(A) or binary image of ``size`` = (width, height)."""
    path = _require_file(path, "mask")
    try:
        with Image.open(path) as image:
            image.load()
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, ImportError) as error:
        raise GenerateInputError(f"mask file {path} is not a readable image ({error})") from error
    if (grey.shape[1], grey.shape[0]) != tuple(size):
        raise GenerateInputError(f"mask file {path} is {grey.shape[1]}x{grey.shape[0]} but the image is {size[0]}x{size[1]}")
    mask = np.where(grey >= threshold, 255, 0).astype(np.uint8)
    if not mask.any():
        raise GenerateInputError(f"mask file {path} marks no pixel as the person")
    return mask


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GenerateInputError(f"{what} file {path} is not valid JSON ({error})") from error


def read_smpl_file(path: str | Path, body_model: BodyModel | None = None) -> dict[str, Any]:
    """The project's SMPL dict from a JSON file: ``betas`` (<= 10,), ``body_pose`` (23, 3), ``global_orient``
    (3,), ``transl`` (3,) metres, ``scale`` (default 1), ``body_model`` label.

    Returns the dict with numpy float64 arrays (betas padded to 10). When ``body_model`` is given, the
    file's label must name it (a file without a label gets the model's, with a warning).
    """
    path = _require_file(path, "SMPL")
    data = _read_json(path, "SMPL")
    if isinstance(data, Mapping) and "smpl" in data and isinstance(data["smpl"], Mapping):
        data = data["smpl"]
    if not isinstance(data, Mapping):
        raise GenerateInputError(f"SMPL file {path} must hold a JSON object of SMPL parameters, got {type(data).__name__}")
    try:
        smpl = _smpl_arrays(data, batch_shape=())
    except ValueError as error:
        raise GenerateInputError(f"SMPL file {path}: {error}") from error
    label = data.get("body_model")
    if body_model is not None:
        if label is None:
            logger.warning("SMPL file %s names no body model; assuming %r", path, body_model.label)
            label = body_model.label
        elif str(label) != body_model.label:
            raise GenerateInputError(f"SMPL file {path} was fitted with body model {label!r}, but the loaded body model "
                                     f"is {body_model.label!r}; set body_model_path to the model it was fitted with")
    smpl["body_model"] = str(label) if label is not None else ""
    return smpl


def _smpl_arrays(data: Mapping[str, Any], batch_shape: tuple[int, ...]) -> dict[str, Any]:
    """Validated float64 arrays of SMPL fields with a leading ``batch_shape`` (``()`` or ``(T,)``)."""
    shapes = {"body_pose": (23, 3), "global_orient": (3,), "transl": (3,)}
    out: dict[str, Any] = {}
    for name, shape in shapes.items():
        if name not in data:
            raise ValueError(f"{name} is missing")
        out[name] = _finite_array(data[name], name)
        expected = batch_shape + shape
        if name == "body_pose" and out[name].shape == batch_shape + (69,):
            out[name] = out[name].reshape(expected)
        if out[name].shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {out[name].shape}")
    if "betas" in data:
        betas = _finite_array(data["betas"], "betas").reshape(-1)
        if betas.size > MAX_BETAS:
            raise ValueError(f"betas must have at most {MAX_BETAS} values, got {betas.size}")
        out["betas"] = np.pad(betas, (0, MAX_BETAS - betas.size))
    elif not batch_shape:
        raise ValueError("betas is missing")
    scale = _finite_array(data.get("scale", 1.0), "scale").reshape(-1)
    if scale.size < 1 or float(scale[0]) <= 0:
        raise ValueError(f"scale must be a positive number, got {data.get('scale')!r}")
    out["scale"] = float(scale[0])
    return out


def _finite_array(value: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not a numeric array ({error})") from error
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def read_camera_file(path: str | Path) -> Camera:
    """A :class:`Camera` from the project's camera JSON (``K``, ``R``, ``t``, ``width``, ``height``, OpenCV);
    a list holding one camera, or an object with a ``camera`` entry, are accepted too."""
    path = _require_file(path, "camera")
    data = _read_json(path, "camera")
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, Mapping) and isinstance(data.get("camera"), Mapping):
        data = data["camera"]
    if not isinstance(data, Mapping):
        raise GenerateInputError(f"camera file {path} must hold one camera object (K, R, t, width, height)")
    try:
        return Camera.from_dict(dict(data))
    except (ValueError, TypeError) as error:
        raise GenerateInputError(f"camera file {path}: {error}") from error


@dataclass(frozen=True)
class PoseSequence:
    """A driving pose sequence of T frames: ``body_pose`` (T, 23, 3) and ``global_orient`` (T, 3) axis-angle
    radians, ``transl`` (T, 3) metres; optional ``betas`` (10,) and ``scale`` of the driver; ``source`` file."""

    body_pose: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    betas: np.ndarray | None = None
    scale: float | None = None
    source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.body_pose.shape[0])


def read_pose_sequence(path: str | Path) -> PoseSequence:
    """Per-frame SMPL parameters from a JSON or NPZ file.

    JSON: an object of arrays (``body_pose`` (T, 23, 3) or (T, 69), ``global_orient`` (T, 3), ``transl``
    (T, 3), optional ``betas`` (10,) or (T, 10) — the first frame's is used — and ``scale``), or a list of
    per-frame SMPL dicts (also under a ``frames`` key). NPZ: the same arrays. Raises
    :class:`GenerateInputError` naming the file.
    """
    path = _require_file(path, "pose sequence")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                data: Any = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError) as error:
            raise GenerateInputError(f"pose sequence file {path} is not a readable NPZ archive ({error})") from error
    else:
        data = _read_json(path, "pose sequence")
    if isinstance(data, Mapping) and isinstance(data.get("frames"), list):
        data = data["frames"]
    if isinstance(data, list):
        if not data or not all(isinstance(item, Mapping) for item in data):
            raise GenerateInputError(f"pose sequence file {path} must list per-frame SMPL objects")
        try:
            data = {name: [item[name] for item in data] for name in ("body_pose", "global_orient", "transl")} | (
                {"betas": data[0]["betas"]} if "betas" in data[0] else {}) | (
                {"scale": data[0]["scale"]} if "scale" in data[0] else {})
        except KeyError as error:
            raise GenerateInputError(f"pose sequence file {path}: a frame lacks {error.args[0]!r}") from error
    if not isinstance(data, Mapping):
        raise GenerateInputError(f"pose sequence file {path} must hold per-frame SMPL arrays")
    try:
        if "body_pose" not in data:
            raise ValueError("body_pose is missing")
        frames = int(np.shape(data["body_pose"])[0]) if np.ndim(data["body_pose"]) >= 2 else 0
        if frames < 1:
            raise ValueError(f"body_pose must be (T, 23, 3) with T >= 1, got shape {np.shape(data['body_pose'])}")
        fields = dict(data)
        if "betas" in fields and np.ndim(fields["betas"]) == 2:
            fields["betas"] = np.asarray(fields["betas"])[0]
        has_betas = "betas" in fields
        has_scale = "scale" in fields
        arrays = _smpl_arrays(fields, batch_shape=(frames,))
    except ValueError as error:
        raise GenerateInputError(f"pose sequence file {path}: {error}") from error
    return PoseSequence(body_pose=arrays["body_pose"], global_orient=arrays["global_orient"], transl=arrays["transl"],
                        betas=arrays["betas"] if has_betas else None, scale=arrays["scale"] if has_scale else None,
                        source=str(path))


# ============================================================================================ driving videos
def is_driving_video(path: str | Path) -> bool:
    """True for a driving video rather than a pose file: a video file, a TikTok-style frame folder (with
    ``images/``) or video shards (a folder whose manifest holds ``video`` samples, or a ``.tar``)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES or path.suffix == ".tar"
    if path.is_dir():
        if (path / "images").is_dir():
            return True
        manifest = load_manifest(path) if (path / "manifest.json").is_file() else None
        return manifest is not None and manifest.schema_name == VIDEO_SCHEMA.name
    return False


def video_shard_poses(shards: str | Path, out_file: Path) -> Path:
    """The per-frame SMPL of the first video in video shards (its segments in order, the first camera),
    written as a pose-sequence NPZ (``body_pose`` (T, 23, 3), ``global_orient``, ``transl``, ``betas``)."""
    segments: dict[str, list[tuple[int, Any]]] = {}
    for url in resolve_shard_urls(str(shards)):
        for raw in iter_shard_samples(url):
            try:
                video = decode_video(raw, where=f"{url} sample {raw.get('__key__', '?')}")
            except SchemaError as error:
                raise GenerateInputError(f"driving video shards {shards}: {error}") from error
            segments.setdefault(video.meta["subject_id"], []).append((int(video.video["segment"]), video))
    if not segments:
        raise GenerateInputError(f"driving video shards {shards} hold no video segment")
    first = sorted(segments)[0]
    frames = [item for _, video in sorted(segments[first], key=lambda pair: pair[0])
              for item in video.smpl[: video.num_frames]]
    arrays = {name: np.stack([np.asarray(item[name], dtype=np.float64) for item in frames])
              for name in ("body_pose", "global_orient", "transl")}
    arrays["betas"] = np.asarray(frames[0]["betas"], dtype=np.float64)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(out_file, buffer.getvalue())
    logger.info("driving poses: %d frames of video %s from %s", len(frames), first, shards)
    return out_file


#: The ``video.*`` settings of :class:`pipelines.preprocess.VideoConfig` that preprocessing errors name;
#: for a driving video they are set as ``driver.*``.
_VIDEO_SETTING = re.compile(r"\bvideo\.(?=(?:%s)\b)" % "|".join(f.name for f in dataclasses.fields(VideoConfig)))


def _driver_settings(message: str) -> str:
    """A preprocessing error message with its ``video.<setting>`` names as ``gas generate`` takes them (``driver.``)."""
    return _VIDEO_SETTING.sub("driver.", message)


def _check_driving_video(path: Path, config: GenerateConfig) -> None:
    """A driving video file or frame folder whose first frame decodes and whose fit will have keypoints
    (video shards are read as they are later). Raises :class:`GenerateInputError` naming the video or setting."""
    from pipelines.datasets.tiktok import VideoRef, iter_ref_frames, video_info
    from pipelines.preprocess_video import read_video_groundtruth

    if path.suffix == ".tar" or (path.is_dir() and not (path / "images").is_dir()):
        return
    video = config.driver
    ref = VideoRef(dataset="driver", subject_id=path.stem, path=path, kind="frames" if path.is_dir() else "file")
    frames = None
    try:
        video_info(ref, frames_fps=video.frames_fps)
        frames = iter_ref_frames(ref, fps=video.fps, max_side=video.max_side, frames_fps=video.frames_fps, max_frames=1)
        if next(iter(frames), None) is None:
            raise ValueError("it holds no frame")
    except (ScanReadError, ValueError, OSError) as error:  # gas_core.videoio.VideoReadError is a ValueError
        raise GenerateInputError(f"driving video {path} is not readable: {error}") from error
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    weights = video.keypoints.detector_weights
    if weights and not Path(weights).is_file():
        raise GenerateInputError(f"driver.keypoints.detector_weights {weights} does not exist (the keypoint detector "
                                 f"for driving video {path})")
    if not weights and read_video_groundtruth(ref) is None:
        raise GenerateInputError(
            f"driving video {path}: its monocular body fit needs 2D keypoints and no keypoint detector is configured; "
            "set driver.keypoints.detector_weights to a local ultralytics pose model (e.g. --set "
            "driver.keypoints.detector_weights=/models/yolov8x-pose.pt), or give a pose sequence file (JSON/NPZ)")


def driving_video_poses(path: str | Path, work_dir: Path, config: GenerateConfig) -> Path:
    """A driving video turned into a pose-sequence NPZ in ``work_dir``.

    Video shards are read as they are; a video file or frame folder is first preprocessed like the
    ``tiktok`` dataset (masks, per-segment monocular SMPL fit; ``config.driver``) into ``work_dir``.
    Raises :class:`GenerateInputError` naming the video (and, for a missing setting, the ``driver.*``
    setting to give) when it cannot be used; folders this call created are removed again on failure.
    """
    from pipelines.datasets.tiktok import VideoRef
    from pipelines.preprocess import PreprocessConfig, pack_staged_subjects
    from pipelines.preprocess_video import preprocess_video

    path = Path(path)
    work_dir = Path(work_dir)
    if path.suffix == ".tar" or (path.is_dir() and not (path / "images").is_dir()):
        return video_shard_poses(path, work_dir / "poses.npz")
    shards = work_dir / "shards"
    staging = shards / "_staging"
    created = next((folder for folder in (work_dir, shards, staging) if not folder.exists()), None)
    preprocess_config = PreprocessConfig(video=config.driver, body_model_path=config.body_model_path)
    ref = VideoRef(dataset="driver", subject_id=path.stem, path=path, kind="frames" if path.is_dir() else "file")
    try:
        try:
            report = preprocess_video(ref, preprocess_config, staging)
        except (ScanReadError, FileNotFoundError) as error:
            raise GenerateInputError(f"driving video {path}: {_driver_settings(str(error))}") from error
        pack_staged_subjects(staging, shards, preprocess_config)
        logger.info("driving video %s: %d segments of %d frames", path, report.segments, report.frames)
        poses = video_shard_poses(shards, work_dir / "poses.npz")
    except BaseException:
        if created is not None:  # the outermost folder this call made, with everything in it
            shutil.rmtree(created, ignore_errors=True)
        raise
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()
    return poses


# ============================================================================================ geometry
def _axis_angle_to_matrix(vectors: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(vectors, dtype=np.float64).reshape(-1, 3)).as_matrix()


def _matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)).as_rotvec()


@torch.no_grad()
def pelvis_positions(body_model: BodyModel, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """World pelvis positions (N, 3) metres of N SMPL dicts."""
    return body_model(SMPLParams.from_records(items)).joints[:, 0].double().cpu().numpy()  # forward moves params to its device


def drive_poses(reference_smpl: Mapping[str, Any], sequence: PoseSequence, body_model: BodyModel,
                config: PoseDriveConfig = PoseDriveConfig()) -> list[dict[str, Any]]:
    """The target SMPL dicts of pose mode, one per used driver frame.

    Shape: the reference's ``betas`` and ``scale`` (cross re-enactment), or the driver's when
    ``config.keep_driver_shape`` (missing driver values fall back to the reference's). Root: with
    ``config.align_orientation`` every frame's root rotation is pre-multiplied by the rotation that turns
    the driver's first frame onto the reference's (its trajectory turned with it); with
    ``config.align_translation`` the trajectory is shifted so that the first frame's pelvis lands on
    the reference's pelvis. Frames: every ``frame_stride``-th, at most ``max_frames``.
    """
    indices = np.arange(0, sequence.num_frames, config.frame_stride)
    if config.max_frames is not None:
        indices = indices[: config.max_frames]
    betas = np.asarray(reference_smpl["betas"], dtype=np.float64)
    scale = float(reference_smpl["scale"])
    if config.keep_driver_shape:
        betas = sequence.betas if sequence.betas is not None else betas
        scale = sequence.scale if sequence.scale is not None else scale
    frames = [{"betas": np.asarray(betas, dtype=np.float64).copy(), "body_pose": sequence.body_pose[i].copy(),
               "global_orient": sequence.global_orient[i].copy(), "transl": sequence.transl[i].copy(),
               "scale": float(scale), "body_model": str(reference_smpl["body_model"])} for i in indices]
    if not (config.align_translation or config.align_orientation):
        return frames
    pelvis = pelvis_positions(body_model, frames)  # (N, 3) as driven, before alignment
    reference_pelvis = pelvis_positions(body_model, [reference_smpl])[0]
    rotation = np.eye(3)
    if config.align_orientation:
        reference_root = _axis_angle_to_matrix(reference_smpl["global_orient"])[0]
        first_root = _axis_angle_to_matrix(frames[0]["global_orient"])[0]
        rotation = reference_root @ first_root.T
        roots = rotation[None] @ _axis_angle_to_matrix(np.stack([f["global_orient"] for f in frames]))
        for frame, orient in zip(frames, _matrix_to_axis_angle(roots)):
            frame["global_orient"] = orient
        turned = pelvis_positions(body_model, frames)  # the root turns about the pelvis, which stays where it was
        wanted = pelvis[0] + (pelvis - pelvis[0]) @ rotation.T  # the trajectory turned about the first pelvis
        for frame, now, target in zip(frames, turned, wanted):
            frame["transl"] = frame["transl"] + (target - now)
        pelvis = wanted
    if config.align_translation:
        shift = reference_pelvis - pelvis[0]
        for frame in frames:
            frame["transl"] = frame["transl"] + shift
    return frames


def _rotation_y(angle: float) -> np.ndarray:
    cosine, sine = math.cos(angle), math.sin(angle)
    return np.array([[cosine, 0.0, sine], [0.0, 1.0, 0.0], [-sine, 0.0, cosine]])


def reference_orbit(reference_camera: Camera, target: np.ndarray, num_views: int) -> list[Camera]:
    """``num_views`` cameras orbiting the vertical line through ``target`` (3,) world metres (the body's centre).

    View ``i`` is the reference camera turned by ``360 i / num_views`` degrees about the world's +y axis
    (the project's up) through ``target``: view 0 IS the reference camera, and every view keeps its
    intrinsics, image size, distance to the axis, height and elevation, so the person stays where the
    reference shows it. (For the scan orbits the training clips were baked from — cameras of
    :func:`gas_core.cameras.orbit_cameras` looking at the subject — this is exactly their orbit.)
    """
    if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
        raise ValueError(f"num_views must be a positive int, got {num_views!r}")
    target = np.asarray(target, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(target)):
        raise ValueError("target must be finite")
    cameras = []
    for index in range(num_views):
        turn = _rotation_y(2.0 * math.pi * index / num_views)
        center = target + turn @ (reference_camera.center - target)
        rotation = reference_camera.R @ turn.T
        cameras.append(Camera(K=reference_camera.K, R=rotation, t=-rotation @ center,
                              width=reference_camera.width, height=reference_camera.height))
    return cameras


def _flip_world_upright(camera: Camera, smpl: Mapping[str, Any], body_model: BodyModel) -> tuple[Camera, dict[str, Any]]:
    """Turn camera and body 180 degrees about the world x axis (a y-down world, e.g. a camera frame, becomes y-up).

    Images do not change: camera and body turn together.
    """
    flip = np.diag([1.0, -1.0, -1.0])
    pelvis = pelvis_positions(body_model, [smpl])[0]
    root = _axis_angle_to_matrix(smpl["global_orient"])[0]
    flipped = dict(smpl)
    flipped["global_orient"] = _matrix_to_axis_angle(flip @ root)[0]
    turned_pelvis = pelvis_positions(body_model, [flipped])[0]
    flipped["transl"] = np.asarray(smpl["transl"], dtype=np.float64) + (flip @ pelvis - turned_pelvis)
    rotation = camera.R @ flip.T
    return Camera(K=camera.K, R=rotation, t=camera.t, width=camera.width, height=camera.height), flipped


# ============================================================================================ reference image
@dataclass(frozen=True)
class ReferenceInputs:
    """The reference after :func:`read_generation_inputs`: ``image`` uint8 (H, W, 3), ``mask`` uint8 (H, W)
    0/255, ``camera`` of that size, ``smpl`` (the project's SMPL dict), and where each came from."""

    image: np.ndarray
    mask: np.ndarray
    camera: Camera
    smpl: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)


def prepare_reference(image: np.ndarray, mask: np.ndarray, camera: Camera, size: int,
                      config: ReferenceConfig = ReferenceConfig()) -> tuple[np.ndarray, np.ndarray, Camera]:
    """Square ``size`` x ``size`` reference (uint8 (size, size, 3), mask (size, size) 0/255) and its camera.

    A square image is only resized. A non-square one is first cut to a square around the mask's box
    (side: the box's longer side times ``1 + crop_margin``, at least the image's shorter side), padded
    with the background where the square leaves the image; ``K`` moves with the crop. With
    ``composite_background`` the pixels outside the mask become ``background``.
    """
    import cv2

    height, width = mask.shape
    if (camera.width, camera.height) != (width, height):
        raise ValueError(f"camera is {camera.width}x{camera.height} but the image is {width}x{height}")
    background = np.asarray(config.background, dtype=np.uint8)
    if config.composite_background:
        image = np.where(mask[..., None] > 0, image, background[None, None]).astype(np.uint8)
    if width != height:
        rows, cols = np.nonzero(mask)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        side = int(math.ceil(max(bottom - top, right - left) * (1.0 + float(config.crop_margin))))
        side = max(side, min(width, height))
        x0 = int(round((left + right) / 2.0 - side / 2.0))
        y0 = int(round((top + bottom) / 2.0 - side / 2.0))
        canvas = np.empty((side, side, 3), dtype=np.uint8)
        canvas[:] = background
        mask_canvas = np.zeros((side, side), dtype=np.uint8)
        src_x0, src_y0 = max(x0, 0), max(y0, 0)
        src_x1, src_y1 = min(x0 + side, width), min(y0 + side, height)
        canvas[src_y0 - y0:src_y1 - y0, src_x0 - x0:src_x1 - x0] = image[src_y0:src_y1, src_x0:src_x1]
        mask_canvas[src_y0 - y0:src_y1 - y0, src_x0 - x0:src_x1 - x0] = mask[src_y0:src_y1, src_x0:src_x1]
        K = camera.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        image, mask = canvas, mask_canvas
        camera = Camera(K=K, R=camera.R, t=camera.t, width=side, height=side)
    factor = size / camera.width
    if camera.width != size:
        interpolation = cv2.INTER_AREA if camera.width > size else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=interpolation)
        mask = np.where(cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR) >= 128, 255, 0).astype(np.uint8)
        camera = camera.scaled(factor)
        camera = Camera(K=camera.K, R=camera.R, t=camera.t, width=size, height=size)
    if not mask.any():
        raise ValueError("the person mask is empty after resizing the reference")
    return np.ascontiguousarray(image), np.ascontiguousarray(mask), camera


# ============================================================================================ estimators
class ReferenceEstimator:
    """Fills in what the input files leave out: the person mask (:mod:`gas_core.segment`: person boxes, then
    a box-prompted SAM mask) and the SMPL fit with its camera (COCO-17 keypoints, then
    :func:`gas_core.body.fit.monocular.fit_smpl_monocular`).

    The models are built from ``config`` on first use; ready ones may be passed instead: ``person_detector``
    (``detect(frame) -> Detections``), ``box_masker`` (``mask(frame, box) -> (H, W) bool``) and
    ``keypoint_detector`` (a callable ``(image (H, W, 3) uint8, box (4,)) -> (17, 3)`` u, v, confidence).
    """

    def __init__(self, config: EstimatorConfig, body_model: BodyModel, *, person_detector: Any = None,
                 box_masker: Any = None, keypoint_detector: Any = None) -> None:
        self.config = config
        self.body_model = body_model
        self.person_detector = person_detector
        self.box_masker = box_masker
        self.keypoint_detector = keypoint_detector

    def mask(self, image: np.ndarray, image_path: Path) -> np.ndarray:
        """Person mask uint8 (H, W) 0/255 of ``image`` (H, W, 3) uint8 RGB."""
        from gas_core.segment.video import VideoMasker

        masking = replace(self.config.masking, smoothing_window=1)
        has_detector = self.person_detector is not None or masking.detector_weights is not None or \
            masking.grounding_dino_config is not None
        has_masker = self.box_masker is not None or masking.sam_checkpoint is not None
        if not (has_detector and has_masker):
            raise GenerateInputError(
                f"no mask file was given for {image_path}; segmenting one image needs a person detector and SAM: set "
                "estimators.masking.detector_weights (or grounding_dino_config/_weights) and "
                "estimators.masking.sam_checkpoint to local weight files, or pass --mask")
        try:
            masker = VideoMasker(masking, detector=self.person_detector, box_masker=self.box_masker)
            masks = [masker.process(image[None]), masker.finish()]
        except (ValueError, FileNotFoundError, OSError) as error:
            raise GenerateInputError(f"segmenting {image_path} failed: {error}") from error
        found = [part.masks for part in masks if len(part)]
        mask = found[0][0] if found else np.zeros(image.shape[:2], np.uint8)
        if not mask.any():
            raise GenerateInputError(f"no person was found in {image_path}; pass --mask")
        return np.where(mask > 0, 255, 0).astype(np.uint8)

    def smpl_and_camera(self, image: np.ndarray, mask: np.ndarray, image_path: Path) -> tuple[dict[str, Any], Camera]:
        """SMPL dict (world = camera frame) and camera of the person in ``image``, from a monocular fit."""
        from gas_core.body.fit.monocular import detect_video_keypoints, fit_smpl_monocular

        rows, cols = np.nonzero(mask)
        box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)
        if self.keypoint_detector is not None:
            keypoints = np.asarray(self.keypoint_detector(image, box), dtype=np.float64)[None]
        elif self.config.keypoint_weights is not None:
            try:
                keypoints = detect_video_keypoints(self.config.keypoint_weights, [image], box[None],
                                                   device=self.config.monocular.device)
            except (ValueError, FileNotFoundError, OSError) as error:
                raise GenerateInputError(f"keypoints of {image_path}: {error}") from error
        else:
            raise GenerateInputError(
                f"no SMPL and camera files were given for {image_path}; the monocular fit needs a keypoint detector: set "
                "estimators.keypoint_weights to a local ultralytics pose checkpoint, or pass --smpl and --camera")
        try:
            fit = fit_smpl_monocular(self.body_model, keypoints, (image.shape[1], image.shape[0]), self.config.monocular)
        except ValueError as error:
            raise GenerateInputError(f"the monocular body fit of {image_path} failed: {error}") from error
        params = fit.params
        smpl = {"betas": params.betas[0].detach().cpu().double().numpy(),
                "body_pose": params.body_pose[0].detach().cpu().double().numpy(),
                "global_orient": params.global_orient[0].detach().cpu().double().numpy(),
                "transl": params.transl[0].detach().cpu().double().numpy(),
                "scale": float(params.scale[0]), "body_model": self.body_model.label}
        smpl["betas"] = np.pad(smpl["betas"], (0, MAX_BETAS - smpl["betas"].size))
        logger.info("monocular fit of %s: reprojection error %.1f px", image_path, float(np.nanmean(fit.reprojection_error_px)))
        return smpl, fit.camera


def read_generation_inputs(image_path: str | Path, *, mask_path: str | Path | None = None,
                           smpl_path: str | Path | None = None, camera_path: str | Path | None = None,
                           body_model: BodyModel, config: GenerateConfig = GenerateConfig(),
                           estimator: ReferenceEstimator | None = None) -> ReferenceInputs:
    """Read and check the reference image, mask, SMPL and camera files (or estimate what is missing).

    The mask comes from ``mask_path``, else the image's alpha channel, else ``estimator`` (default: a
    :class:`ReferenceEstimator` of ``config.estimators``: :mod:`gas_core.segment`). SMPL and camera come from
    their files (both or neither), else the estimator's monocular fit. The camera is scaled when its size
    differs from the image's with the same aspect ratio. Raises :class:`GenerateInputError`.
    """
    if estimator is None:
        estimator = ReferenceEstimator(config.estimators, body_model)
    image_path = Path(image_path)
    image, alpha = read_image_file(image_path)
    size = (image.shape[1], image.shape[0])
    sources = {"image": str(image_path)}
    mask = _given_mask(image_path, alpha, mask_path, size, float(config.reference.mask_threshold))
    if mask is not None:
        sources["mask"] = str(mask_path) if mask_path is not None else f"{image_path} (alpha channel)"
    else:
        mask = estimator.mask(image, image_path)
        sources["mask"] = "gas_core.segment"
    _check_fit_pair(smpl_path, camera_path)
    if smpl_path is not None:
        smpl = read_smpl_file(smpl_path, body_model)
        camera = _camera_for_image(read_camera_file(camera_path), size, camera_path, image_path)
        sources["smpl"], sources["camera"] = str(smpl_path), str(camera_path)
    else:
        smpl, camera = estimator.smpl_and_camera(image, mask, image_path)
        sources["smpl"] = sources["camera"] = "gas_core.body.fit.monocular"
    return ReferenceInputs(image=image, mask=mask, camera=camera, smpl=smpl, sources=sources)


def _given_mask(image_path: Path, alpha: np.ndarray | None, mask_path: str | Path | None, size: tuple[int, int],
                threshold: float) -> np.ndarray | None:
    """The mask uint8 (H, W) 0/255 from ``mask_path``, else the image's alpha channel, else None (to estimate)."""
    if mask_path is not None:
        return read_mask_file(mask_path, size, threshold)
    if alpha is None or not (alpha < 255).any():
        return None
    mask = np.where(alpha.astype(np.float32) / 255.0 >= threshold, 255, 0).astype(np.uint8)
    if not mask.any():
        raise GenerateInputError(f"image file {image_path}: its alpha channel marks no pixel as the person")
    return mask


def _check_fit_pair(smpl_path: str | Path | None, camera_path: str | Path | None) -> None:
    if (smpl_path is None) != (camera_path is None):
        missing = "camera" if camera_path is None else "SMPL"
        raise GenerateInputError(f"give both an SMPL and a camera file, or neither (the {missing} file is missing); "
                                 "they must come from one fit")


def _camera_for_image(camera: Camera, size: tuple[int, int], camera_path: str | Path, image_path: str | Path) -> Camera:
    """``camera`` for an image of ``size`` = (width, height): rescaled when only the scale differs."""
    if (camera.width, camera.height) == size:
        return camera
    if camera.width * size[1] != camera.height * size[0]:
        raise GenerateInputError(f"camera file {camera_path} is for {camera.width}x{camera.height} images but "
                                 f"image file {image_path} is {size[0]}x{size[1]}")
    camera = camera.scaled(size[0] / camera.width)
    return Camera(K=camera.K, R=camera.R, t=camera.t, width=size[0], height=size[1])


def check_input_files(inputs: "GenerateInputs", config: GenerateConfig) -> None:
    """Read and check every input file of ``inputs`` without loading any model (a second, not the minutes
    the models and a driving video's preprocessing take), so that :func:`generate` fails on a bad file first.

    Checked: the image decodes; the mask decodes, has the image's size and marks the person (or the
    image's alpha channel does); SMPL and camera are given together, parse, and the camera has the image's
    aspect ratio; pose mode: a pose file parses, a driving video exists and its first frame decodes, and
    its monocular fit has keypoints (``driver.keypoints.detector_weights`` or the video's ground truth).
    The SMPL file's body-model label is checked later, against the loaded body model.

    Raises:
        GenerateInputError: naming the file (or the setting) and the reason.
    """
    if config.mode == "pose" and inputs.poses is None:
        raise GenerateInputError("pose mode needs a pose sequence file (--poses)")
    image_path = Path(inputs.image)
    image, alpha = read_image_file(image_path)
    size = (image.shape[1], image.shape[0])
    _given_mask(image_path, alpha, inputs.mask, size, float(config.reference.mask_threshold))
    _check_fit_pair(inputs.smpl, inputs.camera)
    if inputs.smpl is not None:
        read_smpl_file(inputs.smpl)
        _camera_for_image(read_camera_file(inputs.camera), size, inputs.camera, image_path)
    if config.mode == "pose":
        if is_driving_video(inputs.poses):
            _check_driving_video(Path(inputs.poses), config)
        else:
            read_pose_sequence(inputs.poses)


# ============================================================================================ models
def load_diffusion_model(path: str | Path, *, prefer_ema: bool = True, torch_dtype: torch.dtype | None = None) -> GASModel:
    """A :class:`GASModel` from any folder the project writes:

    * a :meth:`GASModel.save_pretrained` folder (``gas_model.json``; e.g. a run's ``final/``);
    * a training run's ``out_dir`` (its ``final/``, else its newest ``checkpoints/step-*``);
    * a training checkpoint ``checkpoints/step-XXXXXXXX/`` (``model/``, ``ema/``, ``training_state.pt``,
      ``config.yaml``): the frozen VAE and CLIP encoder come from the model source its ``config.yaml``
      names (preset and seed, base SVD folder or pretrained folder), the denoiser from ``ema/`` (when
      ``prefer_ema`` and present) or ``model/``.

    Raises :class:`GenerateInputError` naming the folder when it is none of these.
    """
    from pipelines.train_diffusion import FINAL_DIRNAME, latest_checkpoint, load_train_config

    folder = Path(path)
    if not folder.is_dir():
        raise GenerateInputError(f"diffusion checkpoint {folder} is not a folder")
    if (folder / "gas_model.json").is_file():
        return GASModel.from_pretrained(folder, torch_dtype=torch_dtype)
    if (folder / FINAL_DIRNAME / "gas_model.json").is_file():
        return GASModel.from_pretrained(folder / FINAL_DIRNAME, torch_dtype=torch_dtype)
    if not (folder / "config.yaml").is_file() or not (folder / "model").is_dir():
        newest = latest_checkpoint(folder)
        if newest is None:
            raise GenerateInputError(
                f"diffusion checkpoint {folder} is neither a GASModel folder (gas_model.json), a training run "
                "(final/ or checkpoints/step-*) nor a training checkpoint (model/, config.yaml)")
        folder = newest
    try:
        train_config = load_train_config(folder / "config.yaml", preset="tiny")
    except (ValueError, TypeError) as error:
        raise GenerateInputError(f"diffusion checkpoint {folder}: config.yaml is unreadable ({error})") from error
    weights = folder / "ema" if prefer_ema and (folder / "ema").is_dir() else folder / "model"
    logger.info("diffusion model: frozen parts from %s, denoiser from %s", train_config.model, weights)
    base = train_config.model.build()
    try:
        base.denoiser = GASDenoiser.from_pretrained(weights, torch_dtype=torch_dtype)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise GenerateInputError(f"diffusion checkpoint {weights}: {error}") from error
    if torch_dtype is not None:
        base.to(dtype=torch_dtype)
    return base


# ============================================================================================ generation
@dataclass
class GenerateResult:
    """What :meth:`SingleImageGenerator.generate` wrote and how long each stage took (seconds)."""

    out_dir: Path
    frames_dir: Path
    video: Path | None
    strip: Path | None
    num_frames: int
    seconds: dict[str, float] = field(default_factory=dict)
    #: classifier-free guidance scale of every written frame (``frames/frame_0000.png`` first)
    guidance_scales: tuple[float, ...] = ()

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds.get("total", float("nan")) / max(self.num_frames, 1)


@dataclass(frozen=True)
class GenerateInputs:
    """Input files of one generation: ``image``; optional ``mask``, ``smpl`` + ``camera`` (estimated when
    absent) and, for pose mode, ``poses`` (the driving sequence)."""

    image: str | Path
    mask: str | Path | None = None
    smpl: str | Path | None = None
    camera: str | Path | None = None
    poses: str | Path | None = None


def _to_uint8_frames(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    pixels = ((images.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _strip_image(rows: Sequence[np.ndarray], max_frames: int) -> np.ndarray:
    """Rows of frames (each uint8 (N, H, W, 3)) side by side; at most ``max_frames`` evenly chosen columns."""
    count = rows[0].shape[0]
    columns = np.unique(np.linspace(0, count - 1, min(count, max_frames)).round().astype(int))
    gap = 2
    height, width = rows[0].shape[1:3]
    canvas = np.full((len(rows) * (height + gap) - gap, len(columns) * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for r, frames in enumerate(rows):
        for c, index in enumerate(columns):
            canvas[r * (height + gap):r * (height + gap) + height, c * (width + gap):c * (width + gap) + width] = frames[index]
    return canvas


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    """MP4 (H.264) of uint8 (N, H, W, 3) frames, atomically (through :mod:`gas_core.videoio`)."""
    from gas_core import videoio

    videoio.write_mp4(frames, path, fps)


def _json_ready(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


class SingleImageGenerator:
    """Holds the NeRF (inside a :class:`ClipBaker`), the diffusion model and the body model; generates
    any number of videos. Use as a context manager (it owns a GL context for normal maps).

    Args:
        baker: renders NeRF frames and normal maps (its ``config.clip`` size is replaced per call).
        model: the GAS diffusion model, already on ``device`` in its sampling dtype.
        config: the generation config.
        device: where the diffusion model runs.
        checkpoints: recorded in ``generation.json``.
    """

    def __init__(self, baker: ClipBaker, model: GASModel, config: GenerateConfig, device: torch.device,
                 checkpoints: Mapping[str, str] | None = None, estimator: ReferenceEstimator | None = None) -> None:
        self.baker = baker
        self.model = model
        self.config = config
        self.device = device
        self.checkpoints = dict(checkpoints or {})
        self.estimator = estimator

    @classmethod
    def open(cls, nerf_checkpoint: str | Path, diffusion_checkpoint: str | Path,
             config: GenerateConfig = GenerateConfig()) -> "SingleImageGenerator":
        """Load the NeRF and the diffusion model onto ``config.device``.

        The NeRF (a ``save_pretrained`` folder or a ``train-nerf`` checkpoint, the layouts
        ``gas_core.nerf.load_nerf`` reads) through the bake's :meth:`ClipBaker.open`, which also applies
        ``nerf.bf16``; the diffusion model through :func:`load_diffusion_model`, cast to ``config.dtype``.
        """
        try:
            device = resolve_device(config.device)
        except ValueError as error:
            raise ValueError(str(error).replace("render.device", "device")) from error
        dtype = resolve_dtype(config.dtype, device)
        bake_config = BakeConfig(clip=ClipConfig(width=config.size, height=config.size, num_frames=1, num_references=1),
                                 render=config.nerf.render_config(str(device)), body_model_path=config.body_model_path)
        try:
            info = describe_checkpoint(nerf_checkpoint)
        except (FileNotFoundError, ValueError, OSError) as error:
            raise GenerateInputError(f"NeRF checkpoint {nerf_checkpoint}: {error}") from error
        model = load_diffusion_model(diffusion_checkpoint, prefer_ema=config.prefer_ema)
        if dtype == torch.float32:
            model.to(device)
        else:
            model.to(device, dtype=dtype)
        baker = ClipBaker.open(info, bake_config)
        return cls(baker, model, config, device, {"nerf": str(info.path), "nerf_sha256": info.sha256,
                                                   "diffusion": str(Path(diffusion_checkpoint).absolute())})

    def close(self) -> None:
        self.baker.close()

    def __enter__(self) -> "SingleImageGenerator":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def body_model(self) -> BodyModel:
        return self.baker.body_model

    # ------------------------------------------------------------------ steps
    def targets(self, camera: Camera, smpl: Mapping[str, Any],
                poses: PoseSequence | None) -> tuple[list[Camera], list[dict[str, Any]]]:
        """Cameras and SMPL dicts of every frame (frame 0: the reference), at the output size."""
        config = self.config
        if config.mode == "view":
            vertices = self._vertices([smpl])[0]
            target = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
            cameras = reference_orbit(camera, target, config.num_views)
            return cameras, [dict(smpl) for _ in cameras]
        if poses is None:
            raise ValueError("pose mode needs a pose sequence (GenerateInputs.poses / --poses)")
        driven = drive_poses(smpl, poses, self.body_model, config.pose)
        frames = [dict(smpl), *driven]
        return [camera] * len(frames), frames

    @torch.no_grad()
    def _vertices(self, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.body_model(SMPLParams.from_records(items)).vertices.double().cpu().numpy()

    def render_conditions(self, image: np.ndarray, mask: np.ndarray, camera: Camera, smpl: Mapping[str, Any],
                          cameras: Sequence[Camera], frames_smpl: Sequence[Mapping[str, Any]],
                          progress: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """NeRF frames uint8 (F, H, W, 3), their opacity (F, H, W) and normal maps (F, H, W, 3) of the targets.

        Rendered by :meth:`ClipBaker.bake` from a one-frame :class:`ClipSource` (the reference) in chunks of
        ``sampling.window`` frames, so that memory stays bounded for long sequences.
        """
        config = self.config
        source = ClipSource(dataset="generate", subject_id="reference", images=image[None], masks=mask[None],
                            cameras=(camera,), smpl=(smpl,))
        chunk = int(config.sampling.window)
        nerf, opacity, normals = [], [], []
        starts = range(0, len(cameras), chunk)
        for start in tqdm(starts, desc="NeRF + normal maps", unit="chunk", disable=None if progress is None else not progress):
            stop = min(start + chunk, len(cameras))
            spec = ClipSpec(mode=config.mode, reference_index=0, frame_indices=(0,) * (stop - start),
                            cameras=tuple(cameras[start:stop]), smpl=tuple(frames_smpl[start:stop]))
            try:
                clip = self.baker.bake(source, spec)
            except BakeInputError as error:
                raise GenerateInputError(str(error)) from error
            nerf.append(clip.nerf)
            opacity.append(clip.nerf_masks)
            normals.append(clip.normals)
        return np.concatenate(nerf), np.concatenate(opacity), np.concatenate(normals)

    @torch.no_grad()
    def build_conditions(self, reference: np.ndarray, nerf: np.ndarray, normals: np.ndarray) -> GASConditions:
        """:class:`GASConditions` of one clip of F frames (as :func:`pipelines.train_diffusion.encode_batch`
        builds them for training, without dropout or noise augmentation): reference latent and NeRF
        latents UNSCALED, the CLIP embedding, normal maps in [0, 1], the mode, SVD's added time ids."""
        device, model = self.device, self.model

        def as_tensor(images: np.ndarray) -> torch.Tensor:  # uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]
            return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)

        sampling = self.config.sampling
        reference_pixels = as_tensor(reference[None]) * 2.0 - 1.0
        chunk = sampling.decode_chunk or sampling.window
        nerf_latents = model.encode_latents(as_tensor(nerf) * 2.0 - 1.0, chunk_size=chunk).float()
        mode = GenerationMode.VIEW if self.config.mode == "view" else GenerationMode.POSE
        return GASConditions(
            reference_latent=model.encode_latents(reference_pixels).float(),
            image_embedding=model.encode_image_embedding(reference_pixels).float(),
            nerf_latents=nerf_latents[None],
            normal_maps=as_tensor(normals)[None],
            mode=mode.one_hot(1, device=device),
            added_time_ids=svd_added_time_ids(1, fps=sampling.fps_id, motion_bucket_id=sampling.motion_bucket_id,
                                              device=device),
        )

    @torch.no_grad()
    def sample(self, conditions: GASConditions, progress: bool | None = None,
               guidance_scales: torch.Tensor | None = None) -> np.ndarray:
        """Sample and decode: uint8 (F, H, W, 3) frames. Windows of ``sampling.window`` frames when F is larger.

        ``guidance_scales``: float (F,) per frame; None: the config's schedule (:func:`guidance_scales_for`).
        """
        config = self.config
        sampling = config.sampling
        frames = int(conditions.nerf_latents.shape[1])
        scales = guidance_scales_for(config.mode, frames, config.guidance) if guidance_scales is None else guidance_scales
        if tuple(scales.shape) != (frames,):
            raise ValueError(f"guidance_scales must have shape ({frames},), got {tuple(scales.shape)}")
        generator = torch.Generator(device=self.device).manual_seed(int(sampling.seed))
        latents = sample_latents(self.model, conditions, num_steps=sampling.steps, guidance_scales=scales,
                                 window=sampling.window if frames > sampling.window else None,
                                 overlap=sampling.overlap, generator=generator,
                                 progress=bool(progress) if progress is not None else sys.stderr.isatty())
        chunk = sampling.decode_chunk or sampling.window
        decoded = []
        for start in tqdm(range(0, frames, chunk), desc="decoding", unit="chunk",
                          disable=None if progress is None else not progress):
            part = latents[0, start:start + chunk]
            decoded.append(_to_uint8_frames(self.model.decode_latents(part, num_frames=part.shape[0])))
        return np.concatenate(decoded)

    # ------------------------------------------------------------------ all of it
    def generate(self, inputs: GenerateInputs, out_dir: str | Path, *, progress: bool | None = None) -> GenerateResult:
        """Read ``inputs``, render the conditions, sample, write the outputs into ``out_dir`` (see the module docstring)."""
        config = self.config
        out_dir = Path(out_dir)
        timings: dict[str, float] = {}
        started = clock = time.perf_counter()
        if config.mode == "pose" and inputs.poses is None:
            raise GenerateInputError("pose mode needs a pose sequence file (--poses)")
        if config.mode == "view" and inputs.poses is not None:
            logger.warning("view mode ignores the pose sequence %s (set mode=pose to use it)", inputs.poses)
        poses = read_pose_sequence(inputs.poses) if config.mode == "pose" else None
        reference = read_generation_inputs(inputs.image, mask_path=inputs.mask, smpl_path=inputs.smpl,
                                           camera_path=inputs.camera, body_model=self.body_model, config=config,
                                           estimator=self.estimator)
        try:
            image, mask, camera = prepare_reference(reference.image, reference.mask, reference.camera, config.size,
                                                    config.reference)
        except ValueError as error:
            raise GenerateInputError(f"image file {inputs.image}: {error}") from error
        smpl = dict(reference.smpl)
        if config.mode == "view" and float(-camera.R[1] @ np.array([0.0, 1.0, 0.0])) < 0:
            logger.info("the reference camera's up points down the world y axis: turning the scene upright for the orbit")
            camera, smpl = _flip_world_upright(camera, smpl, self.body_model)
        try:
            cameras, frames_smpl = self.targets(camera, smpl, poses)
        except ValueError as error:
            raise GenerateInputError(f"{inputs.poses or inputs.camera}: {error}") from error
        timings["inputs"] = time.perf_counter() - clock

        clock = time.perf_counter()
        nerf, opacity, normals = self.render_conditions(image, mask, camera, smpl, cameras, frames_smpl, progress)
        timings["nerf_and_normals"] = time.perf_counter() - clock
        clock = time.perf_counter()
        conditions = self.build_conditions(image, nerf, normals)
        timings["encode"] = time.perf_counter() - clock
        clock = time.perf_counter()
        scales = guidance_scales_for(config.mode, len(cameras), config.guidance)
        output = self.sample(conditions, progress, guidance_scales=scales)
        timings["sample_and_decode"] = time.perf_counter() - clock

        keep = slice(1, None) if config.mode == "pose" else slice(None)  # pose mode: frame 0 is the reference pose
        output, nerf, normals = output[keep], nerf[keep], normals[keep]
        cameras, frames_smpl = cameras[keep], frames_smpl[keep]
        guidance = tuple(round(float(value), 6) for value in scales[keep])
        dropped = f"; the dropped reference frame had {float(scales[0]):.3g}" if config.mode == "pose" else ""
        logger.info("guidance scale per written frame (%s mode%s): %s", config.mode, dropped,
                    " ".join(f"{value:.3g}" for value in guidance))
        clock = time.perf_counter()
        result = self._write(out_dir, inputs, reference, output, nerf, normals, cameras, frames_smpl, timings)
        timings["write"] = time.perf_counter() - clock
        timings["total"] = time.perf_counter() - started
        result.seconds = dict(timings)
        result.guidance_scales = guidance
        atomic_write_bytes(out_dir / "generation.json", json.dumps(_json_ready(
            self._record(inputs, reference, len(output), timings, guidance)), indent=2).encode())
        logger.info("generated %d frames into %s in %.1f s (%.2f s per frame)", len(output), out_dir,
                    timings["total"], timings["total"] / max(len(output), 1))
        return result

    def _record(self, inputs: GenerateInputs, reference: ReferenceInputs, frames: int,
                timings: Mapping[str, float], guidance: Sequence[float]) -> dict[str, Any]:
        return {"mode": self.config.mode, "frames": frames, "inputs": {**dict(reference.sources),
                                                                       **({"poses": str(inputs.poses)} if inputs.poses else {})},
                "guidance_scales": list(guidance),
                "checkpoints": self.checkpoints, "body_model": self.body_model.label, "device": str(self.device),
                "dtype": str(next(self.model.denoiser.parameters()).dtype).removeprefix("torch."),
                "config": asdict(self.config), "seconds": dict(timings)}

    def _write(self, out_dir: Path, inputs: GenerateInputs, reference: ReferenceInputs, output: np.ndarray,
               nerf: np.ndarray, normals: np.ndarray, cameras: Sequence[Camera],
               frames_smpl: Sequence[Mapping[str, Any]], timings: Mapping[str, float]) -> GenerateResult:
        config = self.config
        out_dir.mkdir(parents=True, exist_ok=True)
        frames_dir = out_dir / "frames"
        with atomic_directory(frames_dir, replace_existing=True) as staging:
            for index, frame in enumerate(output):
                (staging / f"frame_{index:04d}.png").write_bytes(_png_bytes(frame))
        atomic_write_bytes(out_dir / "cameras.json", json.dumps([c.to_dict() for c in cameras], indent=1).encode())
        smpl_rows = [{key: _json_ready(item[key]) for key in (*_SMPL_KEYS, "body_model")} for item in frames_smpl]
        atomic_write_bytes(out_dir / "smpl.json", json.dumps(smpl_rows).encode())
        video = strip = None
        if config.output.write_strip:
            strip = out_dir / "strip.png"
            atomic_write_bytes(strip, _png_bytes(_strip_image([nerf, normals, output], config.output.strip_frames)))
        if config.output.write_video:
            video = out_dir / "video.mp4"
            _write_mp4(output, video, float(config.output.fps))
        return GenerateResult(out_dir=out_dir, frames_dir=frames_dir, video=video, strip=strip,
                              num_frames=int(len(output)))


def generate(inputs: GenerateInputs, out_dir: str | Path, *, nerf_checkpoint: str | Path,
             diffusion_checkpoint: str | Path, config: GenerateConfig = GenerateConfig(),
             progress: bool | None = None) -> GenerateResult:
    """One generation from files: load the models (:meth:`SingleImageGenerator.open`), generate, clean up.

    Every input file is read and checked first (:func:`check_input_files`), and the checkpoints must
    exist, before a driving video is preprocessed or any model loads: a bad file fails in about a
    second with :class:`GenerateInputError` naming it.
    """
    check_input_files(inputs, config)
    for path, what in ((nerf_checkpoint, "NeRF checkpoint"), (diffusion_checkpoint, "diffusion checkpoint")):
        if not Path(path).exists():
            raise GenerateInputError(f"{what} {path} does not exist")
    if config.mode == "pose" and is_driving_video(inputs.poses):
        inputs = replace(inputs, poses=driving_video_poses(inputs.poses, Path(out_dir) / "driver", config))
        read_pose_sequence(inputs.poses)
    with SingleImageGenerator.open(nerf_checkpoint, diffusion_checkpoint, config) as generator:
        result = generator.generate(inputs, out_dir, progress=progress)
    return result


# ============================================================================================ command line
def build_parser(prog: str = "gas generate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Novel views or novel poses of a person from one image "
                                                            "(NeRF + normal-map conditions, GAS video diffusion).")
    parser.add_argument("image", help="reference image (PNG/JPEG; an alpha channel serves as the mask)")
    parser.add_argument("--out", required=True, help="output folder (frames/, video.mp4, strip.png, generation.json)")
    parser.add_argument("--nerf", required=True, help="NeRF checkpoint: save_pretrained folder or train-nerf checkpoint")
    parser.add_argument("--diffusion", required=True,
                        help="diffusion model: GASModel folder, training run folder or training checkpoint folder")
    parser.add_argument("--mask", help="person mask image (default: the image's alpha, else gas_core.segment)")
    parser.add_argument("--smpl", help="SMPL parameters JSON of the reference (with --camera; default: monocular fit)")
    parser.add_argument("--camera", help="camera JSON of the reference (OpenCV K, R, t, width, height)")
    parser.add_argument("--mode", choices=["view", "pose"], help="novel views (orbit) or novel poses (default: view)")
    parser.add_argument("--poses", help="pose mode: driving SMPL sequence (JSON or NPZ), a driving video (file or frame "
                        "folder; preprocessed with the driver.* settings) or video shards")
    parser.add_argument("--keep-driver-shape", action="store_true", help="pose mode: use the driver's betas")
    parser.add_argument("--num-views", type=int, help="view mode: views of the orbit")
    parser.add_argument("--steps", type=int, help="sampling steps")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--config", help="YAML file of GenerateConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set guidance.view_max=2.5 (repeatable)")
    return parser


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    """The config of a parsed command line: preset, YAML, ``--set``, then the dedicated options."""
    overrides = list(args.set)
    for option, key in (("mode", "mode"), ("num_views", "num_views"), ("steps", "sampling.steps"),
                        ("seed", "sampling.seed"), ("device", "device")):
        value = getattr(args, option)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.keep_driver_shape:
        overrides.append("pose.keep_driver_shape=true")
    return load_generate_config(args.config, preset=args.preset, overrides=overrides)


def main_from_args(argv: list[str]) -> int:
    """``gas generate ...``: returns 0 on success, 2 for bad arguments or input files (message on stderr)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
        result = generate(GenerateInputs(image=args.image, mask=args.mask, smpl=args.smpl, camera=args.camera,
                                         poses=args.poses), args.out, nerf_checkpoint=args.nerf,
                          diffusion_checkpoint=args.diffusion, config=config)
    except (GenerateInputError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{result.num_frames} frames: {result.frames_dir}"
          + (f", {result.video}" if result.video else "") + (f", {result.strip}" if result.strip else "")
          + f" ({result.seconds_per_frame:.2f} s per frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_from_args(sys.argv[1:]))
