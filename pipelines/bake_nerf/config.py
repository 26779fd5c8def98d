"""Bake configuration: clip sizes, NeRF render settings, output shards, presets, device and rank resolution."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

from gas_core.presets import PaperDefaults
from pipelines.config import load_config


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
class BakeConfig(PaperDefaults):
    """Everything the bake needs; presets :meth:`paper` (512x512, 20 frames) and :meth:`tiny` (CPU tests).

    ``body_model_path``: folder with ``SMPL_NEUTRAL.pkl`` (None: ``$GAS_BODY_MODEL_PATH`` or the open
    body model); it must be the model the subject shards were fitted with (checked by label).

    Preset ``paper()`` (the defaults): the paper's clips: 512x512, 20 frames, 4 orthogonal references; bf16
    autocast on CUDA.
    """

    clip: ClipConfig = ClipConfig()
    render: NeRFRenderConfig = NeRFRenderConfig()
    shards: BakeShardConfig = BakeShardConfig()
    body_model_path: str | None = None

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


def config_with_device(config: BakeConfig, device: str | None) -> BakeConfig:
    """``config`` with ``render.device`` replaced when ``device`` is given."""
    if device is None:
        return config
    return replace(config, render=replace(config.render, device=device))
