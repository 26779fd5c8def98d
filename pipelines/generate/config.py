"""Configuration of ``gas generate``: :class:`GenerateConfig` and its parts, presets, overrides, dtype, guidance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from gas_core.body.fit.monocular import MonocularFitConfig
from gas_core.diffusion.guidance import pose_guidance_scales, view_guidance_scales
from gas_core.diffusion.windows import WINDOW_CONVENTIONS, overlap_range
from gas_core.presets import PaperDefaults
from gas_core.segment.video import MaskingConfig
from pipelines.bake_nerf import NeRFRenderConfig
from pipelines.config import ModelConfig, load_config
from pipelines.preprocess import VideoConfig, VideoKeypointConfig
from pipelines.video_quality import SegmentGates


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SamplingConfig:
    """Diffusion sampling.

    ``steps``: EDM Euler steps (25 in the paper). ``window``: frames per denoiser call including the
    reference frame (20, the model's clip length); longer sequences use overlapping windows.
    ``overlap``: frames shared by consecutive windows, read as ``window_convention`` says: ``"project"``
    (the default) counts them BESIDES the reference frame (``0 <= overlap < window - 1``);
    ``"official"`` counts the shared reference frame too, as the release's ``tile_overlap`` does
    (``1 <= overlap < window``; release tile 8, overlap 3 = project window 8, overlap 2).
    ``tiled_noise``: draw the initial noise for one window and repeat it along time, as the release
    does (False: independent noise per frame). ``decode_chunk``: frames per
    VAE decode call (None: ``window``). ``fps_id`` / ``motion_bucket_id``: SVD's micro-conditioning (the
    release samples with 7 and 127, no noise augmentation). ``seed``: initial noise.
    """

    steps: int = 25
    window: int = 20
    overlap: int = 4
    window_convention: Literal["project", "official"] = "project"
    tiled_noise: bool = False
    decode_chunk: int | None = None
    fps_id: int = 7
    motion_bucket_id: int = 127
    seed: int = 0

    def __post_init__(self) -> None:
        _positive(self.steps, "sampling.steps")
        _positive(self.window, "sampling.window")
        if self.window < 2:
            raise ValueError(f"sampling.window must be >= 2 (the reference frame and one more), got {self.window}")
        if self.window_convention not in WINDOW_CONVENTIONS:
            raise ValueError(f"sampling.window_convention must be one of {WINDOW_CONVENTIONS}, got {self.window_convention!r}")
        low, high = overlap_range(self.window, self.window_convention)
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or not low <= self.overlap < high:
            raise ValueError(f"sampling.overlap must be an int in [{low}, {high}) with window_convention "
                             f"{self.window_convention!r}, got {self.overlap!r}")
        if not isinstance(self.tiled_noise, bool):
            raise ValueError(f"sampling.tiled_noise must be true or false, got {self.tiled_noise!r}")
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


#: The driver's video settings: keypoints from detector weights or a synthetic video's ground truth; the
#: segment quality gates are measured but not enforced (the user's own driving video is used whole).
_DRIVER = VideoConfig(keypoints=VideoKeypointConfig(source="groundtruth"), gates=SegmentGates(enforce=False))


@dataclass(frozen=True)
class GenerateConfig(PaperDefaults):
    """Everything ``gas generate`` needs; presets :meth:`paper` (512 px, 20 views, 25 steps) and :meth:`tiny`.

    ``mode``: "view" (an orbit of novel views) or "pose" (a driving pose sequence). ``num_views``: views
    of the orbit (any count >= 2; frame 0 is the reference view). ``size``: output side in pixels (square,
    a multiple of 8). ``device``: "auto" (CUDA when present), "cpu", "cuda", "cuda:N". ``dtype``: "auto"
    (fp16 on CUDA, fp32 on CPU), "fp32", "fp16" or "bf16" (the diffusion model; the NeRF keeps its own
    ``nerf.bf16`` autocast). ``prefer_ema``: from a training checkpoint, load its EMA weights when present.
    ``body_model_path``: folder with ``SMPL_NEUTRAL.pkl`` (None: ``$GAS_BODY_MODEL_PATH`` or the open model).
    ``driver``: how a driving video given as the pose sequence is preprocessed (masks, monocular SMPL fit;
    :class:`pipelines.preprocess.VideoConfig`; its keypoints come from ``driver.keypoints.detector_weights``
    or a synthetic video's ground truth, ``driver.keypoints.source=groundtruth``; its segment quality gates
    are not enforced, ``driver.gates.enforce=false``). ``model``: :class:`ModelConfig` (``model.base_svd_dir`` for
    a checkpoint in the official release's layout).

    Preset ``paper()`` (the defaults): the paper's inference: 512x512, 20-view orbits, 25 steps, guidance 1
    -> 2 -> 1 (view) / 2 (pose), 20-frame windows; fp16 on a GPU.
    """

    mode: Literal["view", "pose"] = "view"
    num_views: int = 20
    size: int = 512
    device: str = "auto"
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    sampling: SamplingConfig = SamplingConfig()
    guidance: GuidanceConfig = GuidanceConfig()
    model: ModelConfig = ModelConfig()
    nerf: NeRFSettings = NeRFSettings()
    pose: PoseDriveConfig = PoseDriveConfig()
    reference: ReferenceConfig = ReferenceConfig()
    output: OutputConfig = OutputConfig()
    estimators: EstimatorConfig = EstimatorConfig()
    driver: VideoConfig = _DRIVER
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
    def tiny(cls) -> "GenerateConfig":
        """CPU preset for tests and demos: 64x64, 8 views, 3 steps, 8-frame windows, fp32."""
        return cls(num_views=8, size=64, device="cpu", dtype="fp32",
                   sampling=SamplingConfig(steps=3, window=8, overlap=2),
                   nerf=NeRFSettings(bf16=False, chunk_rays=8192, frames_per_batch=4),
                   output=OutputConfig(fps=7.0, strip_frames=12),
                   estimators=EstimatorConfig(monocular=MonocularFitConfig.tiny()), driver=replace(VideoConfig.tiny(), keypoints=_DRIVER.keypoints,
                                                                                  gates=_DRIVER.gates))


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
