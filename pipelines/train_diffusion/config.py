"""Configuration of diffusion training: the frozen config dataclasses, presets and YAML loading."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from gas_core.diffusion import GASModel
from gas_core.diffusion.edm import (
    SVD_NOISE_AUG_LOG_MEAN,
    SVD_NOISE_AUG_LOG_STD,
    SVD_SIGMA_LOG_MEAN,
    SVD_SIGMA_LOG_STD,
)
from pipelines.config import load_config
from shards.remote import Folder


def _coerce_numbers(config: Any) -> None:
    """In place on a frozen dataclass: YAML-parsed strings/ints become the declared float/int (``1e-5`` is a string in YAML 1.1)."""
    for spec in fields(config):
        value = getattr(config, spec.name)
        declared = str(spec.type).replace(" ", "")
        if declared in ("float", "float|None") and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                object.__setattr__(config, spec.name, float(value))
            except ValueError as error:
                raise ValueError(f"{spec.name} must be a number, got {value!r}") from error
        elif declared in ("int", "int|None") and isinstance(value, str):
            try:
                object.__setattr__(config, spec.name, int(value))
            except ValueError as error:
                raise ValueError(f"{spec.name} must be an integer, got {value!r}") from error


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_at_least(config: Any, prefix: str, **minimums: int) -> None:
    """Each named field of ``config`` must be >= its minimum, checked in order ("{prefix}{name} must be >= ...")."""
    for name, minimum in minimums.items():
        value = getattr(config, name)
        _require(value >= minimum, f"{prefix}{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class ModelSourceConfig:
    """Where the model comes from; exactly one of ``pretrained_dir``, ``base_svd_dir``, ``preset`` is used, in that order.

    ``pretrained_dir``: a :meth:`GASModel.save_pretrained` folder (continue training);
    ``base_svd_dir``: a local diffusers folder of SVD 1.1 img2vid (the paper's initialisation);
    ``preset``: random weights of that size (``tiny`` for CPU tests, ``paper`` for benchmarks).
    """

    preset: Literal["tiny", "paper"] | None = "tiny"
    base_svd_dir: str | None = None
    pretrained_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        _require(self.preset in (None, "tiny", "paper"), f"model.preset must be 'tiny', 'paper' or null, got {self.preset!r}")
        _require(any((self.preset, self.base_svd_dir, self.pretrained_dir)),
                 "model needs one of preset, base_svd_dir or pretrained_dir")

    def build(self) -> GASModel:
        """The model (float32 weights, on CPU)."""
        if self.pretrained_dir:
            return GASModel.from_pretrained(self.pretrained_dir)
        if self.base_svd_dir:
            return GASModel.from_base_svd(self.base_svd_dir)
        return GASModel.from_preset(str(self.preset), seed=self.seed)


@dataclass(frozen=True)
class NoiseLevelConfig:
    """EDM training noise levels ``ln sigma ~ N(log_mean, log_std^2)`` and ``sigma_data`` (SVD: 0.7, 1.6, 1)."""

    log_mean: float = SVD_SIGMA_LOG_MEAN
    log_std: float = SVD_SIGMA_LOG_STD
    sigma_data: float = 1.0

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        _require_at_least(self, "noise.", log_std=0)
        _require(self.sigma_data > 0, f"noise.sigma_data must be > 0, got {self.sigma_data}")


@dataclass(frozen=True)
class ConditioningConfig:
    """Condition dropout, reference noise augmentation and SVD's added time ids.

    ``embedding_dropout`` / ``reference_latent_dropout``: probability that a clip's CLIP embedding
    / reference latent is replaced by zeros, drawn independently (both dropped with probability
    the product: the unconditional branch of guidance). SVD_Xtend's ``train_svd.py`` uses
    ``--conditioning_dropout_prob 0.1`` (after InstructPix2Pix, section 3.2.1); it draws the two
    drops from one uniform number, so they are correlated there; here they are independent.
    ``noise_augmentation``: add ``strength * N(0, 1)`` to the reference image in [-1, 1] before the
    VAE, with ``strength ~ LogNormal(noise_aug_log_mean, noise_aug_log_std)`` (SVD_Xtend: -3.0,
    0.5), and pass ``strength`` as SVD's third added time id; False passes 0 (what the official GAS
    release samples with) and then cached reference latents are used as they are.
    ``fps`` / ``motion_bucket_id``: SVD's micro-conditioning (the release: 7 and 127).
    """

    embedding_dropout: float = 0.1
    reference_latent_dropout: float = 0.1
    noise_augmentation: bool = True
    noise_aug_log_mean: float = SVD_NOISE_AUG_LOG_MEAN
    noise_aug_log_std: float = SVD_NOISE_AUG_LOG_STD
    fps: int = 7
    motion_bucket_id: int = 127

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        for name in ("embedding_dropout", "reference_latent_dropout"):
            value = getattr(self, name)
            _require(0.0 <= value <= 1.0, f"conditioning.{name} must be in [0, 1], got {value}")
        _require_at_least(self, "conditioning.", noise_aug_log_std=0, fps=1)


@dataclass(frozen=True)
class DataConfig:
    """Clip shards and how they are streamed.

    ``clips``: shard folders / manifests / globs / URLs (see :func:`shards.reader.resolve_shard_urls`).
    ``view_fraction``: probability that a clip is a ``view`` clip (else ``pose``); 1.0 or 0.0 use one mode.
    ``epoch_length``: clips per DataLoader worker (per rank) and epoch; every rank runs
    ``max(1, num_workers) * (epoch_length // batch_size)`` batches per epoch.
    ``num_frames``: frames per clip used (the first ones; None: all, clips must then agree).
    ``use_cached_latents``: use ``target_latents`` / ``nerf_latents`` / ``reference_latent`` /
    ``image_embedding`` when every clip of a batch carries them (the VAE then does not run, except
    for the reference when ``conditioning.noise_augmentation`` is on).
    ``mode_buffer``: clips of the other mode kept while looking for the wanted one;
    ``max_mode_wait``: clips read in a row without the wanted mode before giving up with an error.
    """

    clips: tuple[str, ...] = ()
    view_fraction: float = 0.5
    epoch_length: int = 1000
    shuffle: int = 64
    num_workers: int = 2
    num_frames: int | None = None
    use_cached_latents: bool = True
    mode_buffer: int = 16
    max_mode_wait: int = 2000

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        if isinstance(self.clips, str):
            object.__setattr__(self, "clips", (self.clips,))
        object.__setattr__(self, "clips", tuple(str(item) for item in self.clips))
        _require(0.0 <= self.view_fraction <= 1.0, f"data.view_fraction must be in [0, 1], got {self.view_fraction}")
        _require_at_least(self, "data.", epoch_length=1, shuffle=0, num_workers=0)
        _require(self.num_frames is None or self.num_frames >= 1, f"data.num_frames must be >= 1 or null, got {self.num_frames}")
        _require_at_least(self, "data.", mode_buffer=1, max_mode_wait=1)


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with linear warm-up then a constant rate, and gradient-norm clipping (0 disables clipping).

    Paper: learning rate 1e-5 (Section 4.1.2). Betas, weight decay, epsilon and clipping norm are
    SVD_Xtend ``train_svd.py``'s defaults.
    """

    learning_rate: float = 1e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        _require(self.learning_rate > 0, f"optimizer.learning_rate must be > 0, got {self.learning_rate}")
        _require_at_least(self, "optimizer.", max_grad_norm=0, warmup_steps=0)


@dataclass(frozen=True)
class EMAConfig:
    """Exponential moving average of the denoiser (diffusers' ``EMAModel``; decay warms up as (1+t)/(10+t))."""

    enabled: bool = True
    decay: float = 0.9999

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        _require(0.0 <= self.decay < 1.0, f"ema.decay must be in [0, 1), got {self.decay}")


@dataclass(frozen=True)
class CheckpointConfig:
    """``every_steps``: save every this many optimizer steps (and at the end); ``keep_last``: older ones deleted.

    ``resume``: continue from the newest checkpoint in ``out_dir`` when there is one.
    """

    every_steps: int = 1000
    keep_last: int = 3
    resume: bool = True

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        _require_at_least(self, "checkpoints.", every_steps=1, keep_last=1)


@dataclass(frozen=True)
class LoggingConfig:
    """TensorBoard scalars every ``every_steps``; a sample grid every ``sample_every_steps`` (0: never).

    Samples: ``sample_steps`` Euler steps of the EDM sampler (SVD's sigma range, no guidance) from
    noise for the first clip of a fixed batch, with the EMA weights; the grid's rows are reference,
    NeRF, normal maps, ground truth, sample.
    """

    every_steps: int = 10
    sample_every_steps: int = 1000
    sample_steps: int = 10
    tensorboard: bool = True

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        _require_at_least(self, "logging.", every_steps=1, sample_every_steps=0, sample_steps=1)


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """Everything the diffusion trainer needs; presets :meth:`tiny` (CPU, seconds) and :meth:`paper`.

    ``batch_size`` is per rank and micro-step; the effective batch is ``batch_size *
    gradient_accumulation_steps * world_size`` (paper: 8 = 1 x 1 x 8 A100s). ``max_steps`` counts
    optimizer steps. ``mixed_precision``: autocast dtype of the forward pass (weights stay float32;
    ``fp16`` adds a gradient scaler). ``gradient_checkpointing`` recomputes UNet activations in
    the backward pass.
    """

    out_dir: str = "runs/diffusion"
    model: ModelSourceConfig = ModelSourceConfig()
    data: DataConfig = DataConfig()
    noise: NoiseLevelConfig = NoiseLevelConfig()
    conditioning: ConditioningConfig = ConditioningConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    ema: EMAConfig = EMAConfig()
    checkpoints: CheckpointConfig = CheckpointConfig()
    logging: LoggingConfig = LoggingConfig()
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    max_steps: int = 150_000
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    gradient_checkpointing: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        _require_at_least(self, "", batch_size=1, gradient_accumulation_steps=1, max_steps=0)
        _require(self.mixed_precision in ("no", "bf16", "fp16"),
                 f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        _require(Folder(self.out_dir).local, f"out_dir must be a folder on a local or shared disk (checkpoints, "
                 f"TensorBoard logs); clips may stream from object storage, got {self.out_dir!r}")

    @classmethod
    def paper(cls) -> "DiffusionTrainConfig":
        """Section 4.1.2: SVD 1.1 img2vid initialisation, 512x512, 20 frames, effective batch 8 (1 per GPU
        on 8 GPUs), learning rate 1e-5, 150k iterations; bf16, gradient checkpointing, EMA 0.9999."""
        return cls(
            model=ModelSourceConfig(preset=None, base_svd_dir="models/stable-video-diffusion-img2vid-xt-1-1"),
            data=DataConfig(clips=("data/shards/clips",), num_frames=20, num_workers=4, epoch_length=1000),
        )

    @classmethod
    def tiny(cls) -> "DiffusionTrainConfig":
        """A CPU preset for tests and demos: the ``tiny`` random model (64x64, 4 frames), a few steps."""
        return cls(
            out_dir="runs/diffusion-tiny",
            model=ModelSourceConfig(preset="tiny"),
            data=DataConfig(num_frames=4, num_workers=0, epoch_length=8, shuffle=8, mode_buffer=8, max_mode_wait=200),
            optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=0),
            ema=EMAConfig(decay=0.99),
            checkpoints=CheckpointConfig(every_steps=10, keep_last=2),
            logging=LoggingConfig(every_steps=1, sample_every_steps=10, sample_steps=4),
            batch_size=2,
            max_steps=20,
            mixed_precision="no",
            gradient_checkpointing=False,
        )


def load_train_config(path: str | Path | None = None, *, preset: Literal["tiny", "paper"] = "paper",
                      overrides: Sequence[str] = ()) -> DiffusionTrainConfig:
    """``preset``, then the YAML file's (nested) fields, then ``KEY=VALUE`` overrides (``data.clips=[a,b]``)."""
    return load_config(DiffusionTrainConfig, path, preset=preset, overrides=tuple(overrides))


def config_to_yaml(config: DiffusionTrainConfig) -> str:
    """The resolved config as YAML; ``load_train_config(file)`` reads it back to an equal config."""
    return yaml.safe_dump(asdict(config), sort_keys=False)
