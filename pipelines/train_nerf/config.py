"""Configuration of a NeRF training run: :class:`NeRFTrainConfig` and its parts, presets, YAML + overrides, YAML out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from gas_core.nerf import NeRFModelConfig
from gas_core.nerf.losses import LossWeights
from gas_core.presets import PaperDefaults
from pipelines.config import override_field


@dataclass(frozen=True)
class NeRFDataConfig:
    """How training pairs are drawn from subject shards.

    ``image_size``: views are resized to this square size (pixels). Each decoded subject gives
    ``pairs_per_subject`` (observation, target) view pairs; a step takes one pair from each of
    ``batch_size`` subjects (per process). ``shuffle``: sample shuffle buffer. ``subjects_per_epoch``:
    subjects per epoch per DataLoader worker (webdataset ``with_epoch``; ranks stay in step).
    ``body_model_path``: folder with the ``SMPL_NEUTRAL.pkl`` the shards were fitted with (None: default).
    """

    image_size: int = 512
    batch_size: int = 1
    pairs_per_subject: int = 4
    shuffle: int = 64
    subjects_per_epoch: int = 1000
    num_workers: int = 0
    body_model_path: str | None = None

    def __post_init__(self) -> None:
        for name in ("image_size", "batch_size", "pairs_per_subject", "subjects_per_epoch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0 or self.shuffle < 0:
            raise ValueError("data.num_workers and data.shuffle must be >= 0")


@dataclass(frozen=True)
class NeRFOptimConfig:
    """Adam with SHERF's betas; the learning rate halves every ``lr_halving_steps``.

    ``patch_size``: side of the random target patch rendered per pair (pixels), None renders the
    target body's whole box (SHERF). ``max_steps``: optimisation steps; ``max_wall_s``: also stop
    after this many seconds of training (None: no limit). ``grad_clip``: max gradient norm (0: off).
    ``stalled_steps``: stop with an error when the gradient has been exactly zero this many steps in
    a row (the network's output no longer depends on its weights: it cannot learn again; 0: off).
    """

    learning_rate: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    lr_halving_steps: int = 4000
    max_steps: int = 200_000
    max_wall_s: float | None = None
    grad_clip: float = 1.0
    patch_size: int | None = None
    stalled_steps: int = 50

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"optim.learning_rate must be positive, got {self.learning_rate}")
        if len(tuple(self.betas)) != 2:
            raise ValueError(f"optim.betas must be two numbers, got {self.betas}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.lr_halving_steps < 1 or self.max_steps < 0:
            raise ValueError("optim.lr_halving_steps must be >= 1 and optim.max_steps >= 0")
        if self.patch_size is not None and self.patch_size < 8:
            raise ValueError(f"optim.patch_size must be >= 8 pixels or None, got {self.patch_size}")
        if self.stalled_steps < 0:
            raise ValueError(f"optim.stalled_steps must be >= 0 (0: off), got {self.stalled_steps}")


@dataclass(frozen=True)
class NeRFAugmentConfig:
    """Random zoom-out of the training subjects: people smaller in the frame and off its centre.

    With probability ``zoom_probability`` a subject streamed for training has every view shrunk by one
    factor drawn uniformly from [``min_zoom``, 1] and placed at one random whole-pixel offset inside the
    frame (black around it); its cameras follow exactly (:func:`pipelines.train_nerf.data.zoom_subject`),
    so the reference and the targets of its pairs show the same scene, smaller. 0 turns it off (and then
    draws no random numbers, so a run is as before).
    """

    zoom_probability: float = 0.0
    min_zoom: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.zoom_probability) <= 1.0:
            raise ValueError(f"augment.zoom_probability must be in [0, 1], got {self.zoom_probability}")
        if not 0.0 < float(self.min_zoom) <= 1.0:
            raise ValueError(f"augment.min_zoom must be in (0, 1], got {self.min_zoom}")


@dataclass(frozen=True)
class NeRFLogConfig:
    """Every ``log_every`` steps losses go to TensorBoard; every ``val_every`` steps ``val_pairs``
    validation pairs are rendered; every ``checkpoint_every`` steps (and at the end) a checkpoint is written."""

    log_every: int = 50
    val_every: int = 1000
    val_pairs: int = 4
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        for name in ("log_every", "val_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"log.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class NeRFTrainConfig(PaperDefaults):
    """Everything a NeRF training run needs; presets :meth:`tiny` (CPU, minutes) and :meth:`paper`.

    ``lpips_weights``: local torchvision VGG16 state dict for the LPIPS term (None or missing: the
    term is skipped with a warning and the checkpoint's config records ``loss.lpips: 0.0``).
    ``backbone_weights``: local torchvision ResNet state dict initialising the image encoder.
    ``device``: "auto" (CUDA when present), "cpu" or "cuda". ``threads``: torch CPU threads (None: torch's default).

    Preset ``paper()`` (the defaults): SHERF's setting: 512 px, the paper model, whole-box renders, batch 1
    per GPU, lr 2e-3 halved every 4k steps.
    """

    model: NeRFModelConfig = NeRFModelConfig.paper()
    data: NeRFDataConfig = NeRFDataConfig()
    optim: NeRFOptimConfig = NeRFOptimConfig()
    loss: LossWeights = LossWeights()
    augment: NeRFAugmentConfig = NeRFAugmentConfig()
    log: NeRFLogConfig = NeRFLogConfig()
    lpips_weights: str | None = None
    backbone_weights: str | None = None
    device: str = "auto"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    @classmethod
    def tiny(cls) -> "NeRFTrainConfig":
        """A CPU preset: the tiny model at 96 px, 8 samples per ray, 24 px patches, 4 pairs per step, Adam
        with momentum (betas 0.9, 0.99) for quick progress in few steps; half the subjects zoomed out by a
        factor in [0.3, 1] (see :class:`NeRFAugmentConfig`)."""
        return cls(model=replace(NeRFModelConfig.tiny(), image_size=96, samples_per_ray=8),
                   data=NeRFDataConfig(image_size=96, batch_size=4, pairs_per_subject=8, shuffle=16,
                                       subjects_per_epoch=64),
                   optim=NeRFOptimConfig(learning_rate=1e-3, betas=(0.9, 0.99), lr_halving_steps=1500, max_steps=3000,
                                         patch_size=24),
                   augment=NeRFAugmentConfig(zoom_probability=0.5, min_zoom=0.3),
                   log=NeRFLogConfig(log_every=10, val_every=200, val_pairs=4, checkpoint_every=200),
                   device="cpu")


def load_train_nerf_config(path: Path | None = None, *, preset: Literal["tiny", "paper"] = "paper",
                           overrides: Sequence[str] = ()) -> NeRFTrainConfig:
    """Build a config: ``preset``, then the YAML file's fields (nested mappings), then ``KEY=VALUE`` overrides.

    Overrides use :func:`pipelines.config.override_field` (``model.samples_per_ray=16``, ``optim.betas=[0, 0.9]``).
    """
    if preset not in ("tiny", "paper"):
        raise ValueError(f"preset must be 'tiny' or 'paper', got {preset!r}")
    config = NeRFTrainConfig.tiny() if preset == "tiny" else NeRFTrainConfig.paper()
    if path is not None:
        document = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(document, dict):
            raise ValueError(f"{path}: expected a mapping of config fields")
        config = _apply_mapping(config, document)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override must look like KEY=VALUE, got {item!r}")
        config = override_field(config, key.strip(), value)
    return config


def _apply_mapping(config: Any, document: dict[str, Any], prefix: str = "") -> Any:
    """``config`` with a nested mapping of field values applied, each (sub-)config replaced in one go
    (so a file may change fields that are only valid together, such as ``mlp_depth`` and ``mlp_skip``)."""
    names = {f.name for f in fields(config)}
    updates: dict[str, Any] = {}
    for key, value in document.items():
        if key not in names:
            raise ValueError(f"unknown config field {prefix}{key!r}; known: {sorted(names)}")
        current = getattr(config, key)
        if isinstance(value, dict) and is_dataclass(current):
            updates[key] = _apply_mapping(current, value, f"{prefix}{key}.")
        else:
            updates[key] = tuple(value) if isinstance(value, list) else value
    return replace(config, **updates)


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def config_to_yaml(config: NeRFTrainConfig, *, notes: Sequence[str] = ()) -> str:
    """The config as YAML that :func:`load_train_nerf_config` reads back; ``notes`` become leading comments."""
    header = "".join(f"# {line}\n" for line in notes)
    return header + yaml.safe_dump(_plain(config), sort_keys=False)
