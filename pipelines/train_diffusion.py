"""Training of the GAS video diffusion model (the paper's Equation 3, in SVD's EDM parametrisation).

One readable loop (:func:`train`) on top of small, separately tested pieces:

* configuration: :class:`DiffusionTrainConfig` (presets :meth:`~DiffusionTrainConfig.tiny` and
  :meth:`~DiffusionTrainConfig.paper`), YAML + ``--set key.sub=value`` via :func:`load_train_config`;
* data: :class:`MixedClipStream` streams clip shards (resampled, a fixed number of clips per
  worker and epoch so that DDP ranks stay in step) and mixes ``view`` and ``pose`` clips at
  ``data.view_fraction``; :class:`ClipCollator` batches them into a :class:`ClipBatch`, keeping the
  cached VAE latents when the shards carry them (:mod:`pipelines.cache_latents` writes them);
* one training step's maths: :func:`draw_training_noise` (noise levels, noise, condition dropout,
  noise augmentation, all from one seeded generator), :func:`encode_batch` (latents and
  :class:`~gas_core.diffusion.GASConditions`) and :func:`training_loss` (EDM loss);
* checkpoints: :func:`save_checkpoint` / :func:`load_checkpoint` (model, EMA, optimizer, LR
  schedule, grad scaler, step and data position, resolved config) and :func:`latest_checkpoint`.

The loss (EDM, sigma_data = 1): ``ln sigma ~ N(0.7, 1.6^2)``; the denoiser sees
``c_in * (x + sigma n)`` and ``c_noise = ln(sigma) / 4`` and returns ``F``;
``D = c_skip x_sigma + c_out F``; loss ``(sigma^2 + 1) / sigma^2 * mean((D - x)^2)`` with ``x`` the
SCALED VAE latents of the target frames. Conditions: the reference image's CLIP embedding and its
UNSCALED VAE latent (each dropped independently, replaced by zeros, so that classifier-free
guidance works at inference), the UNSCALED VAE latents of the NeRF frames and the normal maps
(never dropped: guidance keeps them), the view/pose switcher and SVD's added time ids
``[fps - 1, motion_bucket_id, noise_aug_strength]``. The reference image is noise-augmented in
pixel space before the VAE. Values and their source: :mod:`gas_core.diffusion.edm` and
:class:`ConditioningConfig`.

Launch: ``python -m pipelines.train_diffusion --preset tiny --set data.clips=[data/clips]`` (one
process) or ``torchrun --nproc_per_node 8 -m pipelines.train_diffusion --config run.yaml``
(DDP; NCCL on GPUs, gloo on CPUs; several nodes with ``--nnodes`` / ``--rdzv_endpoint``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import random
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch import Tensor

from gas_core.diffusion import GASConditions, GASModel, svd_added_time_ids
from gas_core.diffusion.edm import (
    SVD_NOISE_AUG_LOG_MEAN,
    SVD_NOISE_AUG_LOG_STD,
    SVD_SIGMA_LOG_MEAN,
    SVD_SIGMA_LOG_STD,
    add_noise,
    append_dims,
    denoise,
    denoising_loss,
    edm_preconditioning,
    noise_augment,
    sample_log_normal_sigmas,
)
from gas_core.diffusion.model import DENOISER_PARTS
from gas_core.diffusion.sampler import sample_latents
from gas_core.fileio import atomic_directory, atomic_write_bytes
from pipelines.config import load_config
from pipelines.distributed import DistributedContext, init_distributed
from shards.reader import make_clip_pipeline

__all__ = [
    "ModelSourceConfig",
    "NoiseLevelConfig",
    "ConditioningConfig",
    "DataConfig",
    "OptimizerConfig",
    "EMAConfig",
    "CheckpointConfig",
    "LoggingConfig",
    "DiffusionTrainConfig",
    "load_train_config",
    "config_to_yaml",
    "ClipBatch",
    "ClipCollator",
    "MixedClipStream",
    "TrainingNoise",
    "condition_dropout_masks",
    "apply_condition_dropout",
    "draw_training_noise",
    "latent_shape_of",
    "sample_clip",
    "encode_batch",
    "training_loss",
    "DistributedContext",
    "init_distributed",
    "TrainState",
    "TrainResult",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "train",
    "main",
]

logger = logging.getLogger(__name__)

CHECKPOINTS_DIRNAME = "checkpoints"
CHECKPOINT_PREFIX = "step-"
FINAL_DIRNAME = "final"
TENSORBOARD_DIRNAME = "tensorboard"
_TRAINING_STATE = "training_state.pt"
_CONFIG_FILE = "config.yaml"


# ============================================================================================ config
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
        _require(self.log_std >= 0, f"noise.log_std must be >= 0, got {self.log_std}")
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
        _require(self.noise_aug_log_std >= 0, f"conditioning.noise_aug_log_std must be >= 0, got {self.noise_aug_log_std}")
        _require(self.fps >= 1, f"conditioning.fps must be >= 1, got {self.fps}")


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
        _require(self.epoch_length >= 1, f"data.epoch_length must be >= 1, got {self.epoch_length}")
        _require(self.shuffle >= 0, f"data.shuffle must be >= 0, got {self.shuffle}")
        _require(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        _require(self.num_frames is None or self.num_frames >= 1, f"data.num_frames must be >= 1 or null, got {self.num_frames}")
        _require(self.mode_buffer >= 1, f"data.mode_buffer must be >= 1, got {self.mode_buffer}")
        _require(self.max_mode_wait >= 1, f"data.max_mode_wait must be >= 1, got {self.max_mode_wait}")


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
        _require(self.max_grad_norm >= 0, f"optimizer.max_grad_norm must be >= 0, got {self.max_grad_norm}")
        _require(self.warmup_steps >= 0, f"optimizer.warmup_steps must be >= 0, got {self.warmup_steps}")


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
        _require(self.every_steps >= 1, f"checkpoints.every_steps must be >= 1, got {self.every_steps}")
        _require(self.keep_last >= 1, f"checkpoints.keep_last must be >= 1, got {self.keep_last}")


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
        _require(self.every_steps >= 1, f"logging.every_steps must be >= 1, got {self.every_steps}")
        _require(self.sample_every_steps >= 0, f"logging.sample_every_steps must be >= 0, got {self.sample_every_steps}")
        _require(self.sample_steps >= 1, f"logging.sample_steps must be >= 1, got {self.sample_steps}")


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
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.gradient_accumulation_steps >= 1,
                 f"gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}")
        _require(self.max_steps >= 0, f"max_steps must be >= 0, got {self.max_steps}")
        _require(self.mixed_precision in ("no", "bf16", "fp16"),
                 f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")

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


# ============================================================================================ data
@dataclass
class ClipBatch:
    """A batch of B clips of F frames (H x W pixels), as the trainer consumes it.

    ``frames``, ``nerf``, ``normals``: float32 ``(B, F, 3, H, W)`` in [0, 1] (ground truth, NeRF
    renderings, SMPL normal maps); ``reference``: ``(B, 3, H, W)`` in [0, 1]; ``mode``: ``(B, 2)``
    one-hot (view = [0, 1], pose = [1, 0]); ``keys``: the clips' sample keys. Cached latents
    (all or none): ``target_latents`` ``(B, F, 4, h, w)`` SCALED, ``nerf_latents`` ``(B, F, 4, h, w)``
    and ``reference_latent`` ``(B, 4, h, w)`` UNSCALED, ``image_embedding`` ``(B, 1, D)``.
    """

    frames: Tensor
    nerf: Tensor
    normals: Tensor
    reference: Tensor
    mode: Tensor
    keys: list[str]
    target_latents: Tensor | None = None
    nerf_latents: Tensor | None = None
    reference_latent: Tensor | None = None
    image_embedding: Tensor | None = None

    _TENSORS = ("frames", "nerf", "normals", "reference", "mode", "target_latents", "nerf_latents",
                "reference_latent", "image_embedding")

    @property
    def has_cached_latents(self) -> bool:
        return self.target_latents is not None

    @property
    def batch_size(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[1])

    def _map(self, function) -> "ClipBatch":
        return replace(self, **{name: None if getattr(self, name) is None else function(getattr(self, name))
                                for name in self._TENSORS})

    def to(self, device: torch.device | str) -> "ClipBatch":
        return self._map(lambda tensor: tensor.to(device, non_blocking=True))

    def pin_memory(self) -> "ClipBatch":
        """Called by ``DataLoader(pin_memory=True)``."""
        return self._map(lambda tensor: tensor.pin_memory())

    def select(self, indices: Sequence[int] | Tensor) -> "ClipBatch":
        """The clips at ``indices`` (a new batch)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = self._map(lambda tensor: tensor[index.to(tensor.device)])
        batch.keys = [self.keys[int(i)] for i in index]
        return batch


_CACHED_FIELDS = ("target_latents", "nerf_latents", "reference_latent", "image_embedding")


class ClipCollator:
    """``DataLoader`` ``collate_fn``: :func:`shards.reader.clip_to_tensors` dicts -> :class:`ClipBatch`.

    Keeps the first ``num_frames`` frames (None: all; the clips of a batch must then agree). Cached
    latents are kept when ``use_cached_latents`` and every clip carries all four. Picklable.
    """

    def __init__(self, num_frames: int | None = None, use_cached_latents: bool = True) -> None:
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
        self.num_frames = num_frames
        self.use_cached_latents = use_cached_latents

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> ClipBatch:
        if not samples:
            raise ValueError("samples must not be empty")
        frames = self.num_frames
        for sample in samples:
            available = int(sample["frames"].shape[0])
            if frames is not None and available < frames:
                raise ValueError(f"clip {sample.get('__key__', '?')} has {available} frames, num_frames is {frames}")
        window = slice(0, frames)

        def stack(name: str, per_frame: bool = True) -> Tensor:
            values = [sample[name][window] if per_frame else sample[name] for sample in samples]
            shapes = {tuple(value.shape) for value in values}
            if len(shapes) != 1:
                raise ValueError(f"clips of one batch must agree in {name!r} shape, got {sorted(shapes)} "
                                 "(set data.num_frames, or bake clips of one size)")
            return torch.stack(values)

        cached = self.use_cached_latents and all(all(sample.get(name) is not None for name in _CACHED_FIELDS)
                                                  for sample in samples)
        return ClipBatch(
            frames=stack("frames"),
            nerf=stack("nerf"),
            normals=stack("normals"),
            reference=stack("reference", per_frame=False),
            mode=stack("mode_one_hot", per_frame=False),
            keys=[str(sample.get("__key__", "")) for sample in samples],
            target_latents=stack("target_latents") if cached else None,
            nerf_latents=stack("nerf_latents") if cached else None,
            reference_latent=stack("reference_latent", per_frame=False) if cached else None,
            image_embedding=stack("image_embedding", per_frame=False) if cached else None,
        )


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class MixedClipStream(torch.utils.data.IterableDataset):
    """Endless resampled clip stream, cut into epochs of ``epoch_length`` clips per worker, mixing modes.

    Each clip's mode is drawn (``view`` with probability ``view_fraction``, else ``pose``) from an
    RNG seeded by (seed, epoch, rank, worker); the clip is taken from one resampled shard stream
    (:func:`shards.reader.make_clip_pipeline`, ``modes=None``, so every clip is decoded once),
    holding up to ``mode_buffer`` clips of each mode until they are wanted (older ones are dropped
    when a mode is over-represented). Raises ValueError when ``max_mode_wait`` clips in a row lack
    the wanted mode (e.g. no pose clips in the shards). Call :meth:`set_epoch` every epoch.
    Yields :func:`shards.reader.clip_to_tensors` dicts.
    """

    MODES = ("view", "pose")

    def __init__(self, urls: Sequence[str], *, view_fraction: float = 0.5, epoch_length: int = 1000, shuffle: int = 64,
                 seed: int = 0, mode_buffer: int = 16, max_mode_wait: int = 2000) -> None:
        super().__init__()
        if not urls:
            raise ValueError("urls must name at least one clip shard folder or file (data.clips)")
        if not 0.0 <= view_fraction <= 1.0:
            raise ValueError(f"view_fraction must be in [0, 1], got {view_fraction}")
        if epoch_length < 1:
            raise ValueError(f"epoch_length must be >= 1, got {epoch_length}")
        if mode_buffer < 1 or max_mode_wait < 1:
            raise ValueError("mode_buffer and max_mode_wait must be >= 1")
        self.urls = list(urls)
        self.view_fraction = float(view_fraction)
        self.epoch_length = int(epoch_length)
        self.shuffle = int(shuffle)
        self.seed = int(seed)
        self.mode_buffer = int(mode_buffer)
        self.max_mode_wait = int(max_mode_wait)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, _ = _rank_and_world()
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        chooser = random.Random(f"mix-{self.seed}-{self.epoch}-{rank}-{worker}")
        modes = None if 0.0 < self.view_fraction < 1.0 else (("view",) if self.view_fraction == 1.0 else ("pose",))
        source = make_clip_pipeline(self.urls, modes=modes, resampled=True, shuffle=self.shuffle, seed=self.seed)
        source.set_epoch(self.epoch)
        stream = iter(source)
        waiting: dict[str, deque] = {mode: deque(maxlen=self.mode_buffer) for mode in self.MODES}
        for _ in range(self.epoch_length):
            wanted = "view" if chooser.random() < self.view_fraction else "pose"
            read = 0
            while not waiting[wanted]:
                clip = next(stream)
                waiting[clip["mode"]].append(clip)
                read += 1
                if read > self.max_mode_wait and not waiting[wanted]:
                    raise ValueError(f"no {wanted!r} clip among {read} clips read from {self.urls}; "
                                     f"set data.view_fraction to {1.0 if wanted == 'pose' else 0.0} or add {wanted} clips")
            yield waiting[wanted].popleft()


# ============================================================================================ one step
@dataclass
class TrainingNoise:
    """All random draws of one training step for a batch of B clips (reproducible from one generator).

    ``sigmas`` ``(B,)`` EDM noise levels; ``noise`` ``(B, F, 4, h, w)`` standard normal;
    ``drop_embedding`` / ``drop_reference_latent`` ``(B,)`` bool condition dropout;
    ``aug_strengths`` ``(B,)`` reference noise-augmentation strengths (zeros when disabled) and
    ``aug_noise`` ``(B, 3, H, W)`` its standard normal draw.
    """

    sigmas: Tensor
    noise: Tensor
    drop_embedding: Tensor
    drop_reference_latent: Tensor
    aug_strengths: Tensor
    aug_noise: Tensor


def condition_dropout_masks(batch_size: int, *, embedding_rate: float, reference_latent_rate: float,
                            generator: torch.Generator | None = None,
                            device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Independent Bernoulli masks ``(drop_embedding, drop_reference_latent)``, each ``(batch_size,)`` bool."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for name, rate in (("embedding_rate", embedding_rate), ("reference_latent_rate", reference_latent_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    uniforms = torch.rand(2, batch_size, generator=generator, device=device)
    return uniforms[0] < embedding_rate, uniforms[1] < reference_latent_rate


def apply_condition_dropout(conditions: GASConditions, drop_embedding: Tensor, drop_reference_latent: Tensor) -> GASConditions:
    """Zero the CLIP embedding of the clips where ``drop_embedding`` ``(B,)`` is True and the reference
    latent where ``drop_reference_latent`` is; NeRF latents, normal maps, mode and time ids are kept."""
    batch = conditions.reference_latent.shape[0]
    for name, mask in (("drop_embedding", drop_embedding), ("drop_reference_latent", drop_reference_latent)):
        if mask.shape != (batch,) or mask.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor of shape ({batch},), got {mask.dtype} {tuple(mask.shape)}")
    keep_embedding = append_dims((~drop_embedding).to(conditions.image_embedding.dtype), conditions.image_embedding.ndim)
    keep_latent = append_dims((~drop_reference_latent).to(conditions.reference_latent.dtype), conditions.reference_latent.ndim)
    return replace(conditions, image_embedding=conditions.image_embedding * keep_embedding,
                   reference_latent=conditions.reference_latent * keep_latent)


def draw_training_noise(batch: ClipBatch, latent_shape: Sequence[int], config: DiffusionTrainConfig,
                        generator: torch.Generator) -> TrainingNoise:
    """Draw one step's randomness on the generator's device, always in the same order
    (sigmas, noise, dropout, augmentation), so every data path sees the same draws.

    ``latent_shape``: ``(F, 4, h, w)`` of one clip's target latents.
    """
    device = generator.device
    size = batch.batch_size
    sigmas = sample_log_normal_sigmas(size, log_mean=config.noise.log_mean, log_std=config.noise.log_std,
                                      generator=generator, device=device)
    noise = torch.randn((size, *latent_shape), generator=generator, device=device)
    conditioning = config.conditioning
    drop_embedding, drop_latent = condition_dropout_masks(
        size, embedding_rate=conditioning.embedding_dropout, reference_latent_rate=conditioning.reference_latent_dropout,
        generator=generator, device=device)
    if conditioning.noise_augmentation:
        strengths = sample_log_normal_sigmas(size, log_mean=conditioning.noise_aug_log_mean,
                                             log_std=conditioning.noise_aug_log_std, generator=generator, device=device)
        aug_noise = torch.randn(tuple(batch.reference.shape), generator=generator, device=device)
    else:
        strengths = torch.zeros(size, device=device)
        aug_noise = torch.zeros(tuple(batch.reference.shape), device=device)
    return TrainingNoise(sigmas=sigmas, noise=noise, drop_embedding=drop_embedding, drop_reference_latent=drop_latent,
                         aug_strengths=strengths, aug_noise=aug_noise)


def latent_shape_of(model: GASModel, batch: ClipBatch) -> tuple[int, int, int, int]:
    """``(F, 4, h, w)`` of the batch's target latents (``h = H / 8``)."""
    if batch.target_latents is not None:
        return tuple(int(v) for v in batch.target_latents.shape[1:])  # type: ignore[return-value]
    factor = model.denoiser.pose_net.downscale_factor
    height, width = batch.frames.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"clip images must have sides divisible by {factor}, got {height}x{width}")
    return batch.num_frames, int(model.vae.config.latent_channels), height // factor, width // factor


@torch.no_grad()
def encode_batch(model: GASModel, batch: ClipBatch, noise: TrainingNoise,
                 conditioning: ConditioningConfig) -> tuple[Tensor, GASConditions]:
    """Target latents ``(B, F, 4, h, w)`` (SCALED) and the conditions (dropout applied) of a batch.

    The frozen VAE / CLIP encoder run only for what the batch does not carry cached; the reference
    latent is re-encoded from the noise-augmented reference whenever augmentation is on.
    """
    size, frames = batch.batch_size, batch.num_frames

    def encode_frames(images: Tensor) -> Tensor:  # (B, F, 3, H, W) in [0, 1] -> (B, F, 4, h, w) unscaled
        latents = model.encode_latents(images.flatten(0, 1) * 2.0 - 1.0)
        return latents.reshape(size, frames, *latents.shape[1:])

    if batch.has_cached_latents:
        targets, nerf_latents, embedding = batch.target_latents, batch.nerf_latents, batch.image_embedding
    else:
        targets = encode_frames(batch.frames) * model.scaling_factor
        nerf_latents = encode_frames(batch.nerf)
        embedding = model.encode_image_embedding(batch.reference * 2.0 - 1.0)
    if conditioning.noise_augmentation or batch.reference_latent is None:
        augmented = noise_augment(batch.reference * 2.0 - 1.0, noise.aug_strengths, noise=noise.aug_noise)
        # The augmented image leaves [-1, 1] by a few strengths; the VAE takes it as it is (as SVD does).
        reference_latent = _encode_unchecked(model, augmented)
    else:
        reference_latent = batch.reference_latent
    device = noise.sigmas.device
    conditions = GASConditions(
        reference_latent=reference_latent.float().to(device),
        image_embedding=embedding.float().to(device),
        nerf_latents=nerf_latents.float().to(device),
        normal_maps=batch.normals.to(device),
        mode=batch.mode.to(device),
        added_time_ids=_added_time_ids(size, conditioning, noise.aug_strengths),
    )
    conditions = apply_condition_dropout(conditions, noise.drop_embedding, noise.drop_reference_latent)
    return targets.float().to(device), conditions


def _encode_unchecked(model: GASModel, images: Tensor) -> Tensor:
    """``vae.encode(images).latent_dist.mode()`` (UNSCALED) without the [-1, 1] range check (noise-augmented images)."""
    weight = next(model.vae.parameters())
    return model.vae.encode(images.to(device=weight.device, dtype=weight.dtype)).latent_dist.mode()


def _added_time_ids(batch_size: int, conditioning: ConditioningConfig, strengths: Tensor) -> Tensor:
    ids = svd_added_time_ids(batch_size, fps=conditioning.fps, motion_bucket_id=conditioning.motion_bucket_id,
                             device=strengths.device)
    ids[:, 2] = strengths.float()
    return ids


def training_loss(model: GASModel, denoiser: torch.nn.Module, batch: ClipBatch, noise: TrainingNoise,
                  config: DiffusionTrainConfig) -> Tensor:
    """Per-clip EDM loss ``(B,)`` of one batch: encode, add noise, precondition, denoise, weight.

    ``denoiser`` is ``model.denoiser`` or its DDP wrapper (the call goes through it for gradient sync).
    """
    targets, conditions = encode_batch(model, batch, noise, config.conditioning)
    noisy = add_noise(targets, noise.noise, noise.sigmas)
    preconditioning = edm_preconditioning(noise.sigmas, sigma_data=config.noise.sigma_data)
    model_output = denoiser(append_dims(preconditioning.c_in, noisy.ndim) * noisy, preconditioning.c_noise, conditions)
    denoised = denoise(model_output.float(), noisy, preconditioning)
    return denoising_loss(denoised, targets, noise.sigmas, sigma_data=config.noise.sigma_data)


# ============================================================================================ distributed
def _barrier(context: DistributedContext) -> None:
    if context.distributed:
        torch.distributed.barrier()


def _mean_over_ranks(value: float, context: DistributedContext) -> float:
    if not context.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    torch.distributed.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


# ============================================================================================ checkpoints
@dataclass
class TrainState:
    """Progress: ``step`` optimizer steps done; the data position (``epoch``, next ``batch_in_epoch``); clips seen (this rank)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    clips_seen: int = 0


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS_DIRNAME / f"{CHECKPOINT_PREFIX}{step:08d}"


def _list_checkpoints(out_dir: str | Path) -> list[Path]:
    folder = Path(out_dir) / CHECKPOINTS_DIRNAME
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX)
             and path.name[len(CHECKPOINT_PREFIX):].isdigit() and (path / _TRAINING_STATE).is_file()]
    return sorted(found, key=lambda path: int(path.name[len(CHECKPOINT_PREFIX):]))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``out_dir/checkpoints`` (None when there is none)."""
    found = _list_checkpoints(out_dir)
    return found[-1] if found else None


def _trainable(denoiser: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, parameter) for name, parameter in denoiser.named_parameters() if parameter.requires_grad]


def _read_part_weights(directory: Path) -> dict[str, Tensor]:
    """Weights of a ``save_pretrained`` folder of denoiser parts, named as in ``denoiser.state_dict()``."""
    from safetensors.torch import load_file

    weights: dict[str, Tensor] = {}
    for part in DENOISER_PARTS:
        files = sorted((directory / part).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{directory / part} holds no .safetensors weights")
        for file in files:
            weights.update({f"{part}.{key}": value for key, value in load_file(str(file)).items()})
    return weights


def save_checkpoint(directory: str | Path, *, denoiser: torch.nn.Module, ema: Any | None, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: torch.amp.GradScaler, state: TrainState, config: DiffusionTrainConfig) -> Path:
    """Write a checkpoint folder atomically: ``model/`` and ``ema/`` (denoiser parts, ``save_pretrained``),
    ``training_state.pt`` (optimizer, LR schedule, grad scaler, EMA counters, progress) and ``config.yaml``."""
    directory = Path(directory)
    parameters = [parameter for _, parameter in _trainable(denoiser)]
    with atomic_directory(directory, replace_existing=True) as staging:
        denoiser.save_pretrained(staging / "model")
        ema_state = None
        if ema is not None:
            ema.store(parameters)
            ema.copy_to(parameters)
            try:
                denoiser.save_pretrained(staging / "ema")
            finally:
                ema.restore(parameters)
            ema_state = {key: value for key, value in ema.state_dict().items() if key != "shadow_params"}
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "ema": ema_state, "state": asdict(state)},
                   staging / _TRAINING_STATE)
        (staging / _CONFIG_FILE).write_text(config_to_yaml(config))
    return directory


def load_checkpoint(directory: str | Path, *, denoiser: torch.nn.Module, ema: Any | None, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: torch.amp.GradScaler) -> TrainState:
    """Restore what :func:`save_checkpoint` wrote into the given objects (in place); returns the progress."""
    directory = Path(directory)
    weights = _read_part_weights(directory / "model")
    device = next(denoiser.parameters()).device
    denoiser.load_state_dict({key: value.to(device) for key, value in weights.items()}, strict=True)
    saved = torch.load(directory / _TRAINING_STATE, map_location=device, weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    if ema is not None:
        if saved["ema"] is None or not (directory / "ema").is_dir():
            raise ValueError(f"{directory} has no EMA weights but ema.enabled is true")
        ema_weights = _read_part_weights(directory / "ema")
        for (name, _), shadow in zip(_trainable(denoiser), ema.shadow_params):
            shadow.copy_(ema_weights[name].to(shadow.device))
        for key, value in saved["ema"].items():
            setattr(ema, key, value)
    return TrainState(**saved["state"])


def _prune_checkpoints(out_dir: str | Path, keep_last: int) -> None:
    for old in _list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


# ============================================================================================ the loop
@dataclass
class TrainResult:
    """What a :func:`train` call did on this rank: ``losses`` of its optimizer steps (mean over ranks),
    the final ``step``, the checkpoint it resumed from, the exported model folder (rank 0), timing."""

    step: int
    losses: list[float] = field(default_factory=list)
    resumed_from: str | None = None
    final_dir: str | None = None
    seconds: float = 0.0
    seconds_per_step: float = float("nan")
    model: GASModel | None = field(default=None, repr=False)  # the trained model in memory (online weights)


def _step_generator(config: DiffusionTrainConfig, rank: int, step: int, micro_step: int, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, rank, step, micro-step): a resumed run redraws exactly the same noise."""
    digest = hashlib.sha256(f"{config.seed}-{rank}-{step}-{micro_step}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _batches(loader: torch.utils.data.DataLoader, stream: MixedClipStream, state: TrainState,
             batches_per_epoch: int) -> Iterator[ClipBatch]:
    """Batches from the data position in ``state`` on, across epochs; advances ``state.epoch`` / ``batch_in_epoch``."""
    if state.batch_in_epoch >= batches_per_epoch:
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    while True:
        stream.set_epoch(state.epoch)
        skip = state.batch_in_epoch
        for position, batch in enumerate(loader):
            if position < skip:
                continue
            state.batch_in_epoch = position + 1
            yield batch
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0


def _build_loader(config: DiffusionTrainConfig, context: DistributedContext) -> tuple[torch.utils.data.DataLoader, MixedClipStream, int]:
    data = config.data
    stream = MixedClipStream(data.clips, view_fraction=data.view_fraction, epoch_length=data.epoch_length,
                             shuffle=data.shuffle, seed=config.seed, mode_buffer=data.mode_buffer,
                             max_mode_wait=data.max_mode_wait)
    if data.epoch_length < config.batch_size:
        raise ValueError(f"data.epoch_length ({data.epoch_length}) must be >= batch_size ({config.batch_size})")
    loader = torch.utils.data.DataLoader(
        stream, batch_size=config.batch_size, drop_last=True, num_workers=data.num_workers,
        collate_fn=ClipCollator(data.num_frames, data.use_cached_latents),
        pin_memory=context.device.type == "cuda", persistent_workers=False,
    )
    batches_per_epoch = max(1, data.num_workers) * (data.epoch_length // config.batch_size)
    return loader, stream, batches_per_epoch


def _autocast(config: DiffusionTrainConfig, device: torch.device):
    if config.mixed_precision == "no":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _prepare_model(config: DiffusionTrainConfig, context: DistributedContext) -> GASModel:
    model = config.model.build()
    frozen_dtype = torch.float32
    if context.device.type == "cuda" and config.mixed_precision != "no":
        frozen_dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16
    for frozen in (model.vae, model.image_encoder):  # a dtype argument only when casting (diffusers warns otherwise)
        if frozen_dtype == torch.float32:
            frozen.to(context.device)
        else:
            frozen.to(context.device, dtype=frozen_dtype)
    model.denoiser.to(context.device, dtype=torch.float32)
    model.denoiser.train()
    model.denoiser.requires_grad_(True)
    if config.gradient_checkpointing:
        model.denoiser.unet.enable_gradient_checkpointing()
    return model


def _warmup_schedule(warmup_steps: int):
    def factor(step: int) -> float:
        return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)
    return factor


def train(config: DiffusionTrainConfig) -> TrainResult:
    """Train (or continue training) the GAS denoiser as ``config`` says; returns this rank's :class:`TrainResult`.

    Every rank runs this function (``torchrun``); rank 0 writes logs, checkpoints and the final model.
    Resumes from the newest checkpoint in ``config.out_dir`` when ``config.checkpoints.resume``.
    """
    from diffusers.training_utils import EMAModel

    context = init_distributed()
    out_dir = Path(config.out_dir)
    started = time.perf_counter()
    model = _prepare_model(config, context)
    denoiser = model.denoiser
    named_parameters = _trainable(denoiser)
    parameters = [parameter for _, parameter in named_parameters]
    optimizer_config = config.optimizer
    optimizer = torch.optim.AdamW(parameters, lr=optimizer_config.learning_rate,
                                  betas=(optimizer_config.adam_beta1, optimizer_config.adam_beta2),
                                  weight_decay=optimizer_config.weight_decay, eps=optimizer_config.adam_epsilon)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_schedule(optimizer_config.warmup_steps))
    scaler = torch.amp.GradScaler(context.device.type, enabled=config.mixed_precision == "fp16")
    ema = EMAModel(parameters, decay=config.ema.decay, foreach=False) if config.ema.enabled else None

    state = TrainState()
    resumed_from = latest_checkpoint(out_dir) if config.checkpoints.resume else None
    if resumed_from is not None:
        state = load_checkpoint(resumed_from, denoiser=denoiser, ema=ema, optimizer=optimizer, scheduler=scheduler,
                                scaler=scaler)
        logger.info("resumed from %s at step %d", resumed_from, state.step)
    training_module: torch.nn.Module = denoiser
    if context.distributed:  # wraps after loading: DDP broadcasts rank 0's weights, every rank has them anyway
        training_module = torch.nn.parallel.DistributedDataParallel(
            denoiser, device_ids=[context.device.index] if context.device.type == "cuda" else None)
    if context.is_main:
        atomic_write_bytes(out_dir / _CONFIG_FILE, config_to_yaml(config).encode())
    writer = _tensorboard_writer(config, out_dir) if context.is_main else None

    loader, stream, batches_per_epoch = _build_loader(config, context)
    batches = _batches(loader, stream, state, batches_per_epoch)
    accumulation = config.gradient_accumulation_steps
    result = TrainResult(step=state.step, resumed_from=None if resumed_from is None else str(resumed_from))
    preview: ClipBatch | None = None
    window_start, window_steps = time.perf_counter(), 0
    loop_started, loop_start_step = time.perf_counter(), state.step

    while state.step < config.max_steps:
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for micro_step in range(accumulation):
            batch = next(batches).to(context.device)
            if preview is None:
                preview = batch.select([0])
            generator = _step_generator(config, context.rank, state.step, micro_step, context.device)
            noise = draw_training_noise(batch, latent_shape_of(model, batch), config, generator)
            last = micro_step == accumulation - 1
            sync = contextlib.nullcontext() if last or not context.distributed else training_module.no_sync()
            with sync:
                with _autocast(config, context.device):
                    loss = training_loss(model, training_module, batch, noise, config).mean()
                scaler.scale(loss / accumulation).backward()
            step_loss += float(loss.detach()) / accumulation
            state.clips_seen += batch.batch_size
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(
            parameters, optimizer_config.max_grad_norm if optimizer_config.max_grad_norm > 0 else float("inf")))
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.step(parameters)
        state.step += 1
        window_steps += 1
        mean_loss = _mean_over_ranks(step_loss, context)
        result.losses.append(mean_loss)

        if state.step % config.logging.every_steps == 0 or state.step == config.max_steps:
            elapsed = time.perf_counter() - window_start
            seconds_per_step = elapsed / max(window_steps, 1)
            frames_per_second = config.batch_size * accumulation * context.world_size * batch.num_frames / max(seconds_per_step, 1e-9)
            if context.is_main:
                logger.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f %.2f s/step %.1f frames/s",
                            state.step, config.max_steps, mean_loss, scheduler.get_last_lr()[0], grad_norm,
                            seconds_per_step, frames_per_second)
                if writer is not None:
                    writer.add_scalar("train/loss", mean_loss, state.step)
                    writer.add_scalar("train/lr", scheduler.get_last_lr()[0], state.step)
                    writer.add_scalar("train/grad_norm", grad_norm, state.step)
                    writer.add_scalar("train/seconds_per_step", seconds_per_step, state.step)
                    writer.add_scalar("train/frames_per_second", frames_per_second, state.step)
                    if context.device.type == "cuda":
                        writer.add_scalar("train/peak_memory_gib", torch.cuda.max_memory_allocated(context.device) / 2**30, state.step)
            window_start, window_steps = time.perf_counter(), 0
        sample_every = config.logging.sample_every_steps
        if writer is not None and preview is not None and sample_every and state.step % sample_every == 0:
            _log_sample_grid(writer, model, ema, parameters, preview, config, state.step)
        if state.step % config.checkpoints.every_steps == 0 or state.step == config.max_steps:
            if context.is_main:
                save_checkpoint(checkpoint_path(out_dir, state.step), denoiser=denoiser, ema=ema, optimizer=optimizer,
                                scheduler=scheduler, scaler=scaler, state=state, config=config)
                _prune_checkpoints(out_dir, config.checkpoints.keep_last)
            _barrier(context)

    result.step = state.step
    if len(result.losses):
        result.seconds_per_step = (time.perf_counter() - loop_started) / max(state.step - loop_start_step, 1)
    if context.is_main:
        result.final_dir = str(_export_final(model, ema, parameters, out_dir))
        if writer is not None:
            writer.close()
    _barrier(context)
    result.seconds = time.perf_counter() - started
    result.model = model
    return result


def _tensorboard_writer(config: DiffusionTrainConfig, out_dir: Path):
    if not config.logging.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out_dir / TENSORBOARD_DIRNAME))


@contextlib.contextmanager
def _ema_weights(ema: Any | None, parameters: list[torch.nn.Parameter]):
    """Temporarily swap the EMA weights into the model (no-op without EMA)."""
    if ema is None:
        yield
        return
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)


def _export_final(model: GASModel, ema: Any | None, parameters: list[torch.nn.Parameter], out_dir: Path) -> Path:
    """``out_dir/final``: a :meth:`GASModel.save_pretrained` folder with the EMA weights (when enabled)."""
    target = out_dir / FINAL_DIRNAME
    with _ema_weights(ema, parameters):
        model.save_pretrained(target, overwrite=True)
    return target


@torch.no_grad()
def sample_clip(model: GASModel, conditions: GASConditions, *, num_frames: int, num_steps: int,
                generator: torch.Generator | None = None, sigma_data: float = 1.0) -> Tensor:
    """Preview sampler: :func:`gas_core.diffusion.sampler.sample_latents` (EDM Euler steps over Karras sigmas), no guidance.

    ``conditions`` for B clips of ``num_frames`` frames; returns SCALED latents ``(B, F, 4, h, w)``.
    (Guidance schedules and long-sequence windows are options of ``sample_latents`` used by generation.)
    """
    if num_frames != conditions.nerf_latents.shape[1]:
        raise ValueError(f"num_frames ({num_frames}) must equal the frames of conditions.nerf_latents "
                         f"({conditions.nerf_latents.shape[1]})")
    return sample_latents(model, conditions, num_steps=num_steps, generator=generator, sigma_data=sigma_data)


def _log_sample_grid(writer, model: GASModel, ema: Any | None, parameters: list[torch.nn.Parameter], preview: ClipBatch,
                     config: DiffusionTrainConfig, step: int) -> None:
    """Rows: reference (repeated), NeRF, normal maps, ground truth, EMA sample; one column per frame."""
    from torchvision.utils import make_grid

    device = preview.frames.device
    quiet = replace(config.conditioning, embedding_dropout=0.0, reference_latent_dropout=0.0, noise_augmentation=False)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    noise = draw_training_noise(preview, latent_shape_of(model, preview), replace(config, conditioning=quiet), generator)
    with _ema_weights(ema, parameters), _autocast(config, device):
        _, conditions = encode_batch(model, preview, noise, quiet)
        latents = sample_clip(model, conditions, num_frames=preview.num_frames, num_steps=config.logging.sample_steps,
                              generator=generator, sigma_data=config.noise.sigma_data)
        decoded = model.decode_latents(latents.flatten(0, 1), preview.num_frames)
    sample = ((decoded.float().clamp(-1, 1) + 1) / 2).cpu()
    frames = preview.num_frames
    rows = [preview.reference[0:1].expand(frames, -1, -1, -1), preview.nerf[0], preview.normals[0], preview.frames[0]]
    grid = make_grid(torch.cat([row.float().cpu() for row in rows] + [sample]), nrow=frames, padding=2)
    writer.add_image("samples/reference_nerf_normals_truth_sample", grid, step)


# ============================================================================================ entry point
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipelines.train_diffusion`` / ``torchrun ... -m pipelines.train_diffusion``: one rank of a training run."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.train_diffusion", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file with DiffusionTrainConfig fields (e.g. a run's config.yaml)")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set data.clips=[data/clips] (repeatable)")
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s")
    try:
        config = load_train_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = train(config)
    logger.info("done: %d steps, final loss %s, model %s", result.step,
                f"{result.losses[-1]:.4f}" if result.losses else "n/a", result.final_dir)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
