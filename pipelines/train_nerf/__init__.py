"""Training of the generalizable human NeRF on subject shards: one loop, checkpoints, resume, TensorBoard, DDP.

Steps (plain functions; :mod:`flows.train_nerf` wires them into Prefect, ``gas train-nerf`` calls
:func:`main_from_args`):

1. :func:`load_train_nerf_config` -- preset, YAML file, ``--set key.sub=value`` overrides;
2. :func:`train_nerf` -- streams subject shards (:func:`shards.reader.make_subject_pipeline`), draws
   (observation view, target view) pairs per subject, renders a window of the target view (a random
   ``patch_size`` patch inside the target body's box, or the whole box) and minimises
   ``rgb * MSE + mask * MSE(opacity, mask) + ssim * (1 - SSIM) + lpips * LPIPS``; checkpoints
   ``<out>/checkpoint/{model/, training_state.pt, config.yaml}`` atomically and resumes from it;
   logs losses and validation renders to ``<out>/tensorboard``.

Data parallel: launched by ``torchrun`` (``WORLD_SIZE`` > 1) each process reads its own share of the
shards (split by rank; a fixed ``subjects_per_epoch`` per worker keeps ranks in step), gradients are
averaged with ``all_reduce`` after every backward pass (gloo on CPU, NCCL on GPU), rank 0's buffers
(batch-norm statistics) are broadcast after every step as DDP does, and only rank 0 writes logs and
checkpoints.

Package layout (one job per module): :mod:`~pipelines.train_nerf.config` (:class:`NeRFTrainConfig`),
:mod:`~pipelines.train_nerf.data` (subjects and pair batches), :mod:`~pipelines.train_nerf.step` (target
windows, learning rate, box metrics), :mod:`~pipelines.train_nerf.ddp` (gradient averaging and
broadcasts), :mod:`~pipelines.train_nerf.checkpoints` (the checkpoint folder),
:mod:`~pipelines.train_nerf.loop` (:func:`train_nerf`) and :mod:`~pipelines.train_nerf.cli`
(``gas train-nerf``, ``python -m pipelines.train_nerf``, :func:`torchrun_command`).
"""

from __future__ import annotations

from gas_core.nerf import GeneralizableHumanNeRF  # patched through this package by tests/pipelines/test_train_nerf.py
from pipelines.train_nerf.checkpoints import CHECKPOINT_DIRNAME, CONFIG_FILE, TRAINING_STATE
from pipelines.train_nerf.cli import build_arg_parser, main_from_args, run_from_namespace, torchrun_command
from pipelines.train_nerf.config import (
    NeRFAugmentConfig,
    NeRFDataConfig,
    NeRFLogConfig,
    NeRFOptimConfig,
    NeRFTrainConfig,
    config_to_yaml,
    load_train_nerf_config,
)
from pipelines.train_nerf.data import (
    PairBatch,
    SubjectViews,
    augment_subject,
    iterate_pair_batches,
    pair_batch,
    subject_views,
    zoom_subject,
)
from pipelines.train_nerf.loop import TrainingDiverged, TrainReport, train_nerf
from pipelines.train_nerf.step import box_metrics, target_windows

__all__ = [
    "NeRFAugmentConfig",
    "NeRFDataConfig",
    "NeRFOptimConfig",
    "NeRFLogConfig",
    "NeRFTrainConfig",
    "load_train_nerf_config",
    "config_to_yaml",
    "PairBatch",
    "pair_batch",
    "SubjectViews",
    "subject_views",
    "iterate_pair_batches",
    "zoom_subject",
    "augment_subject",
    "target_windows",
    "box_metrics",
    "TrainReport",
    "TrainingDiverged",
    "train_nerf",
    "main_from_args",
    "run_from_namespace",
    "build_arg_parser",
    "torchrun_command",
    "CHECKPOINT_DIRNAME",
]
