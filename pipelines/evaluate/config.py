"""Configuration of ``gas eval``: :class:`EvalConfig` and its parts, presets, the device, the table rows and columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

from gas_core.diffusion.windows import WINDOW_CONVENTIONS, overlap_range
from gas_core.metrics import LPIPS, PAPER_METRICS, PSNR, SSIM
from gas_core.presets import PaperDefaults
from pipelines.config import ModelConfig, load_config


#: Label of Table 4's row: the clips' NeRF renderings scored as they are ("before diffusion").
NERF_ROW = "NeRF renderings"
#: Column regions: the paper's protocol (whole frames, THuman backgrounds painted with the true mask)
#: and the person's box (SHERF's region, nothing painted).
PAPER_REGION, BOX_REGION = "paper", "box"
#: The tables' columns: the paper's four metrics under its protocol, then PSNR, SSIM, LPIPS in the box.
EVAL_COLUMNS = (*(replace(c, region=PAPER_REGION, region_label="paper protocol") for c in PAPER_METRICS),
                *(replace(c, region=BOX_REGION, region_label="person box") for c in (PSNR, SSIM, LPIPS)))
#: Smallest side of a person box in pixels (LPIPS' minimum; SSIM needs 11): narrower boxes are widened.
BOX_MIN_SIDE = 32


@dataclass(frozen=True)
class SamplingConfig:
    """How the diffusion model generates a clip (section 3.5 of the paper).

    ``num_steps``: Euler steps of the EDM sampler. ``view_guidance_min`` / ``view_guidance_max``: the
    triangular view-mode schedule (reference view -> back view); ``pose_guidance``: the fixed
    pose-mode scale. ``window``: frames per denoiser call (reference included) for clips longer than
    ``window`` (None: all frames at once). ``overlap``: frames shared by consecutive windows, read as
    ``window_convention`` says: ``"project"`` (the default) counts them BESIDES the reference frame
    (``0 <= overlap < window - 1``); ``"official"`` counts the shared reference frame too, as the
    release's ``tile_overlap`` does (``1 <= overlap < window``; release tile 8, overlap 3 = project
    window 8, overlap 2). ``tiled_noise``: draw the initial noise for one window and repeat it along
    time, as the release does (False: independent noise per frame).
    ``decode_chunk``: frames per VAE decoder call. ``fps`` / ``motion_bucket_id``: SVD's
    micro-conditioning (the release samples with 7 and 127). ``seed``: with each clip's key, seeds
    the clip's initial noise (results do not depend on the clip order). ``bf16``: bfloat16 autocast
    of the denoiser on CUDA (CPU runs float32).
    """

    num_steps: int = 25
    view_guidance_min: float = 1.0
    view_guidance_max: float = 2.0
    pose_guidance: float = 2.0
    window: int | None = 20
    overlap: int = 4
    window_convention: Literal["project", "official"] = "project"
    tiled_noise: bool = False
    decode_chunk: int = 20
    fps: int = 7
    motion_bucket_id: int = 127
    seed: int = 0
    bf16: bool = True

    def __post_init__(self) -> None:
        if int(self.num_steps) < 1:
            raise ValueError(f"sampling.num_steps must be >= 1, got {self.num_steps}")
        for name in ("view_guidance_min", "view_guidance_max", "pose_guidance"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"sampling.{name} must be >= 0, got {getattr(self, name)}")
        if self.window is not None and int(self.window) < 2:
            raise ValueError(f"sampling.window must be >= 2 or None, got {self.window}")
        if self.window_convention not in WINDOW_CONVENTIONS:
            raise ValueError(f"sampling.window_convention must be one of {WINDOW_CONVENTIONS}, got {self.window_convention!r}")
        if self.window is not None:
            low, high = overlap_range(int(self.window), self.window_convention)
            if not low <= int(self.overlap) < high:
                raise ValueError(f"sampling.overlap must be in [{low}, {high}) with window_convention "
                                 f"{self.window_convention!r}, got {self.overlap} for window {self.window}")
        if not isinstance(self.tiled_noise, bool):
            raise ValueError(f"sampling.tiled_noise must be true or false, got {self.tiled_noise!r}")
        if int(self.decode_chunk) < 1:
            raise ValueError(f"sampling.decode_chunk must be >= 1, got {self.decode_chunk}")


@dataclass(frozen=True)
class ProtocolConfig:
    """Which clips and pixels are scored. A split file's own protocol (``mask_background``,
    ``input_views``, ``frames_after_reference``) wins over these defaults, which apply to plain id lists.

    ``mask_background``: None follows the split file, else ``mask_background_datasets``; True / False
    force it for every dataset. ``background``: grey level of the removed background (1 = white).
    ``frames_after_reference``: novel poses, frames after the reference that are scored.
    ``include_nerf_row``: add Table 4's "NeRF renderings" row. ``max_clips``: score at most this many
    clips per dataset (None: all; for quick looks, recorded in the table's settings).
    """

    mask_background: bool | None = None
    mask_background_datasets: tuple[str, ...] = ("thuman",)
    background: float = 1.0
    frames_after_reference: int = 100
    include_nerf_row: bool = True
    max_clips: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.background) <= 1.0:
            raise ValueError(f"protocol.background must lie in [0, 1], got {self.background}")
        if int(self.frames_after_reference) < 1:
            raise ValueError(f"protocol.frames_after_reference must be >= 1, got {self.frames_after_reference}")
        if self.max_clips is not None and int(self.max_clips) < 1:
            raise ValueError(f"protocol.max_clips must be >= 1 or None, got {self.max_clips}")


@dataclass(frozen=True)
class MetricsConfig:
    """Metric weights, all local files (nothing is downloaded).

    ``lpips_weights``: the ImageNet backbone file of :class:`~gas_core.metrics.LPIPSMetric` (None: no
    LPIPS column); ``lpips_network``: ``"vgg"`` or ``"alex"``. ``i3d_weights``: a Kinetics-400 I3D
    state dict for FVD (None: no FVD column); ``i3d_num_classes``: width of its logits layer, the
    FVD features (400 for Kinetics-400); ``i3d_batch_size``: videos per I3D pass.
    """

    lpips_weights: str | None = None
    lpips_network: Literal["vgg", "alex"] = "vgg"
    i3d_weights: str | None = None
    i3d_num_classes: int = 400
    i3d_batch_size: int = 4

    def __post_init__(self) -> None:
        if self.lpips_network not in ("vgg", "alex"):
            raise ValueError(f"metrics.lpips_network must be 'vgg' or 'alex', got {self.lpips_network!r}")
        if int(self.i3d_num_classes) < 1:
            raise ValueError(f"metrics.i3d_num_classes must be >= 1, got {self.i3d_num_classes}")
        if int(self.i3d_batch_size) < 1:
            raise ValueError(f"metrics.i3d_batch_size must be >= 1, got {self.i3d_batch_size}")


@dataclass(frozen=True)
class EvalConfig(PaperDefaults):
    """Everything ``gas eval`` needs besides its inputs; presets :meth:`paper` and :meth:`tiny`.

    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    ``model``: :class:`ModelConfig` (``model.base_svd_dir`` for checkpoints in the release's layout).
    Load with ``load_eval_config("eval.yaml", preset="paper", overrides=["sampling.num_steps=50"])``.

    Preset ``paper()`` (the defaults): the paper's protocol: 25 Euler steps, triangular view guidance 1 ->
    2, pose guidance 2, 20-frame windows (overlap 4) for the 100-frame pose clips, THuman backgrounds
    removed.
    """

    sampling: SamplingConfig = SamplingConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    metrics: MetricsConfig = MetricsConfig()
    model: ModelConfig = ModelConfig()
    device: str = "auto"

    @classmethod
    def tiny(cls) -> "EvalConfig":
        """CPU preset for tests and demos: 2 steps, 4-frame windows, 8 frames after a pose reference."""
        return cls(sampling=SamplingConfig(num_steps=2, window=4, overlap=1, decode_chunk=4, bf16=False),
                   protocol=ProtocolConfig(frames_after_reference=8), device="cpu")


def load_eval_config(path: Path | str | None = None, *, preset: Literal["tiny", "paper"] = "paper",
                     overrides: Sequence[str] = ()) -> EvalConfig:
    """``preset``, then the YAML file's fields, then ``KEY=VALUE`` overrides (``sampling.num_steps=50``)."""
    return load_config(EvalConfig, path, preset=preset, overrides=tuple(overrides))


def resolve_eval_device(device: str) -> torch.device:
    """``config.device`` as a torch device: ``"auto"`` -> CUDA when present, else CPU (ValueError when CUDA is asked for and absent)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a torch device ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r} but no CUDA device is available; use --set device=cpu")
    return resolved
