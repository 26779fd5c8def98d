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

Package layout (one job per module): :mod:`~pipelines.train_diffusion.config` (config dataclasses),
:mod:`~pipelines.train_diffusion.data` (clip batches and the mixed stream),
:mod:`~pipelines.train_diffusion.step` (one step's maths), :mod:`~pipelines.train_diffusion.checkpoints`
(save / load / resume), :mod:`~pipelines.train_diffusion.outputs` (TensorBoard, previews, final model),
:mod:`~pipelines.train_diffusion.loop` (:func:`train`) and :mod:`~pipelines.train_diffusion.cli` (:func:`main`).
"""

from __future__ import annotations

from pipelines.distributed import DistributedContext, init_distributed
from pipelines.train_diffusion.checkpoints import (
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIRNAME,
    FINAL_DIRNAME,
    TENSORBOARD_DIRNAME,
    TrainState,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    read_denoiser_weights,
    save_checkpoint,
)
from pipelines.train_diffusion.cli import main
from pipelines.train_diffusion.config import (
    CheckpointConfig,
    ConditioningConfig,
    DataConfig,
    DiffusionTrainConfig,
    EMAConfig,
    LoggingConfig,
    ModelSourceConfig,
    NoiseLevelConfig,
    OptimizerConfig,
    config_to_yaml,
    load_train_config,
)
from pipelines.train_diffusion.data import ClipBatch, ClipCollator, MixedClipStream
from pipelines.train_diffusion.loop import TrainResult, train
from pipelines.train_diffusion.outputs import sample_clip
from pipelines.train_diffusion.step import (
    TrainingNoise,
    _autocast,  # used by benchmarks/bench_train_diffusion.py
    apply_condition_dropout,
    condition_dropout_masks,
    draw_training_noise,
    encode_batch,
    latent_shape_of,
    training_loss,
)

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
    "read_denoiser_weights",
    "train",
    "main",
]
