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
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch import Tensor
from torch import distributed as dist
from torch.nn import functional as F

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.fileio import atomic_directory
from gas_core.nerf import CameraBatch, GeneralizableHumanNeRF, NeRFModelConfig, PosedBody, ReferenceView
from gas_core.nerf.losses import LossWeights, load_lpips, reconstruction_losses, ssim
from gas_core.nerf.sampling import pixel_centers
from pipelines.config import override_field
from pipelines.distributed import DistributedContext, init_distributed
from shards.reader import make_subject_pipeline, resolve_shard_urls

__all__ = [
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
    "target_windows",
    "box_metrics",
    "TrainReport",
    "train_nerf",
    "main_from_args",
    "run_from_namespace",
    "build_arg_parser",
    "torchrun_command",
    "CHECKPOINT_DIRNAME",
]

logger = logging.getLogger(__name__)

CHECKPOINT_DIRNAME = "checkpoint"
TRAINING_STATE = "training_state.pt"
CONFIG_FILE = "config.yaml"


# --------------------------------------------------------------------------------------- config
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
    """

    learning_rate: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    lr_halving_steps: int = 4000
    max_steps: int = 200_000
    max_wall_s: float | None = None
    grad_clip: float = 1.0
    patch_size: int | None = None

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
class NeRFTrainConfig:
    """Everything a NeRF training run needs; presets :meth:`tiny` (CPU, minutes) and :meth:`paper`.

    ``lpips_weights``: local torchvision VGG16 state dict for the LPIPS term (None or missing: the
    term is skipped with a warning and the checkpoint's config records ``loss.lpips: 0.0``).
    ``backbone_weights``: local torchvision ResNet state dict initialising the image encoder.
    ``device``: "auto" (CUDA when present), "cpu" or "cuda". ``threads``: torch CPU threads (None: torch's default).
    """

    model: NeRFModelConfig = NeRFModelConfig.paper()
    data: NeRFDataConfig = NeRFDataConfig()
    optim: NeRFOptimConfig = NeRFOptimConfig()
    loss: LossWeights = LossWeights()
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
    def paper(cls) -> "NeRFTrainConfig":
        """SHERF's setting: 512 px, the paper model, whole-box renders, batch 1 per GPU, lr 2e-3 halved every 4k steps."""
        return cls()

    @classmethod
    def tiny(cls) -> "NeRFTrainConfig":
        """A CPU preset: the tiny model at 96 px, 8 samples per ray, 24 px patches, 4 pairs per step, Adam
        with momentum (betas 0.9, 0.99) for quick progress in few steps."""
        return cls(model=replace(NeRFModelConfig.tiny(), image_size=96, samples_per_ray=8),
                   data=NeRFDataConfig(image_size=96, batch_size=4, pairs_per_subject=8, shuffle=16,
                                       subjects_per_epoch=64),
                   optim=NeRFOptimConfig(learning_rate=1e-3, betas=(0.9, 0.99), lr_halving_steps=1500, max_steps=3000,
                                         patch_size=24),
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


# --------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SubjectViews:
    """One subject resized for training: views (N, 3, S, S) masked to black, masks (N, 1, S, S), cameras, body params."""

    key: str
    views: Tensor
    masks: Tensor
    cameras: CameraBatch
    smpl: dict[str, Tensor]
    body_model: str


def subject_views(sample: dict[str, Any], image_size: int) -> SubjectViews:
    """A :func:`shards.reader.subject_to_tensors` dict -> :class:`SubjectViews` at ``image_size`` pixels."""
    views, masks = sample["views"], sample["masks"]
    height, width = views.shape[-2:]
    if height != width:
        raise ValueError(f"subject {sample.get('__key__', '?')}: views must be square, got {width}x{height}")
    factor = image_size / width
    if image_size != width:
        views = F.interpolate(views, size=(image_size, image_size), mode="area")
        masks = F.interpolate(masks, size=(image_size, image_size), mode="area")
    cameras = CameraBatch(K=sample["K"], R=sample["R"], t=sample["t"], width=width, height=height).scaled(factor)
    return SubjectViews(key=str(sample.get("__key__", sample.get("subject_id", "?"))), views=views * masks, masks=masks,
                        cameras=cameras, smpl=sample["smpl"], body_model=str(sample["body_model"]))


@dataclass(frozen=True)
class PairBatch:
    """B (observation, target) pairs: the reference views and the target views to reproduce."""

    reference: ReferenceView
    target_camera: CameraBatch
    target_body: PosedBody
    target_rgb: Tensor  # (B, 3, S, S) masked to black
    target_mask: Tensor  # (B, 1, S, S)

    def to(self, device: torch.device) -> "PairBatch":
        return PairBatch(reference=self.reference.to(device), target_camera=self.target_camera.to(device),
                         target_body=self.target_body.to(device), target_rgb=self.target_rgb.to(device),
                         target_mask=self.target_mask.to(device))


def pair_batch(subjects: Sequence[SubjectViews], pairs: Sequence[tuple[int, int]], body_model: BodyModel) -> PairBatch:
    """A batch of (observation view, target view) index ``pairs``, one per entry of ``subjects``, posed with ``body_model``."""
    params = SMPLParams(**{name: torch.stack([subject.smpl[name].reshape(shape) for subject in subjects])
                           for name, shape in (("betas", (-1,)), ("body_pose", (23, 3)), ("global_orient", (3,)),
                                               ("transl", (3,)), ("scale", ()))})
    body = PosedBody.from_body_model(body_model, params)

    def cameras(indices: Sequence[int]) -> CameraBatch:
        chosen = [subject.cameras.index(index) for subject, index in zip(subjects, indices)]
        return CameraBatch(K=torch.cat([c.K for c in chosen]), R=torch.cat([c.R for c in chosen]),
                           t=torch.cat([c.t for c in chosen]), width=chosen[0].width, height=chosen[0].height)

    observed = [pair[0] for pair in pairs]
    target = [pair[1] for pair in pairs]
    reference = ReferenceView(image=torch.stack([s.views[i] for s, i in zip(subjects, observed)]),
                              mask=torch.stack([s.masks[i] for s, i in zip(subjects, observed)]),
                              camera=cameras(observed), body=body)
    return PairBatch(reference=reference, target_camera=cameras(target), target_body=body,
                     target_rgb=torch.stack([s.views[j] for s, j in zip(subjects, target)]),
                     target_mask=torch.stack([s.masks[j] for s, j in zip(subjects, target)]))


def iterate_pair_batches(subjects: Iterator[SubjectViews], body_model: BodyModel, *, batch_size: int,
                         pairs_per_subject: int, rng: random.Random) -> Iterator[PairBatch]:
    """Group ``batch_size`` subjects and yield ``pairs_per_subject`` batches from them, one random pair of
    distinct views per subject in each; an incomplete last group is dropped (every rank yields as many)."""
    group: list[SubjectViews] = []
    for subject in subjects:
        if subject.body_model != body_model.label:
            raise ValueError(f"subject {subject.key} was fitted with {subject.body_model!r} but the loaded body model "
                             f"is {body_model.label!r}; set data.body_model_path")
        if subject.views.shape[0] < 2:
            raise ValueError(f"subject {subject.key} has {subject.views.shape[0]} view(s); pairs need at least 2")
        group.append(subject)
        if len(group) < batch_size:
            continue
        for _ in range(pairs_per_subject):
            pairs = [tuple(rng.sample(range(s.views.shape[0]), 2)) for s in group]
            yield pair_batch(group, pairs, body_model)
        group = []


def target_windows(target_camera: CameraBatch, target_body: PosedBody, patch_size: int | None,
                   rng: random.Random) -> tuple[Tensor, int, int]:
    """Pixel windows to render per target: top-left corners (B, 2) (x, y) and the shared window size (h, w).

    The body's box is the projection of its posed vertices, grown by 4% of the image. With
    ``patch_size`` a random square patch overlapping the box; without it the box itself (all boxes
    of the batch padded to the largest, centred, clamped to the image).
    """
    width, height = target_camera.width, target_camera.height
    uv, _ = target_camera.project(target_body.vertices.float())
    margin = 0.04 * max(width, height)
    low = (uv.amin(dim=1) - margin).floor().clamp_min(0)
    high = (uv.amax(dim=1) + margin).ceil()
    high = torch.minimum(high, torch.tensor([width, height], dtype=high.dtype))
    corners = []
    if patch_size is not None:
        size_w, size_h = min(patch_size, width), min(patch_size, height)
        for b in range(target_camera.batch_size):
            x = rng.uniform(float(low[b, 0]) - size_w / 2, float(high[b, 0]) - size_w / 2)
            y = rng.uniform(float(low[b, 1]) - size_h / 2, float(high[b, 1]) - size_h / 2)
            corners.append((min(max(int(x), 0), width - size_w), min(max(int(y), 0), height - size_h)))
        return torch.tensor(corners), size_h, size_w
    size = (high - low).amax(dim=0)
    size_w, size_h = int(min(size[0].item(), width)), int(min(size[1].item(), height))
    for b in range(target_camera.batch_size):
        centre = (low[b] + high[b]) / 2
        x = int(round(float(centre[0]) - size_w / 2))
        y = int(round(float(centre[1]) - size_h / 2))
        corners.append((min(max(x, 0), width - size_w), min(max(y, 0), height - size_h)))
    return torch.tensor(corners), size_h, size_w


def _window_pixels(corners: Tensor, height: int, width: int) -> Tensor:
    """Pixel centres (B, h * w, 2) of windows with top-left ``corners`` (B, 2)."""
    local = pixel_centers(width, height)
    return local[None] + corners[:, None, :].float()


def _crop(images: Tensor, corners: Tensor, height: int, width: int) -> Tensor:
    return torch.stack([images[b, :, y:y + height, x:x + width] for b, (x, y) in enumerate(corners.tolist())])


def box_metrics(rgb: Tensor, opacity: Tensor, target_rgb: Tensor, target_mask: Tensor) -> dict[str, Tensor]:
    """Per-image quality (B,) inside each target's person box (the mask's bounding box), as SHERF reports.

    Args: rendered rgb (B, 3, H, W), opacity (B, 1, H, W); targets masked to black and masks, same sizes.
    Returns ``psnr`` (dB), ``ssim`` in the box, and ``mask_iou`` of opacity > 0.5 against mask > 0.5 (whole image).
    """
    psnr, similarity, iou = [], [], []
    for b in range(rgb.shape[0]):
        rows = torch.nonzero(target_mask[b, 0].amax(dim=1) > 0.5).squeeze(-1)
        cols = torch.nonzero(target_mask[b, 0].amax(dim=0) > 0.5).squeeze(-1)
        if rows.numel() == 0:
            y0, y1, x0, x1 = 0, rgb.shape[-2], 0, rgb.shape[-1]
        else:
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        crop, truth = rgb[b:b + 1, :, y0:y1, x0:x1].float().clamp(0, 1), target_rgb[b:b + 1, :, y0:y1, x0:x1].float()
        mse = F.mse_loss(crop, truth)
        psnr.append(-10.0 * torch.log10(mse.clamp_min(1e-10)))
        similarity.append(ssim(crop, truth)[0])
        predicted, actual = opacity[b] > 0.5, target_mask[b] > 0.5
        union = (predicted | actual).sum()
        iou.append((predicted & actual).sum() / union.clamp_min(1))
    return {"psnr": torch.stack(psnr), "ssim": torch.stack(similarity), "mask_iou": torch.stack(iou).float()}


# --------------------------------------------------------------------------------------- distributed
def _average_gradients(model: torch.nn.Module, world_size: int) -> None:
    """All-reduce and average the gradients of every trainable parameter (missing gradients count as zero)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([p.grad.reshape(-1) for p in parameters])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.grad.copy_(flat[offset:offset + count].view_as(parameter))
        offset += count


def _broadcast_state(model: torch.nn.Module, *, parameters: bool = True) -> None:
    """Copy rank 0's parameters (optional) and buffers (batch-norm statistics) to every rank, as DDP does."""
    tensors = (list(model.parameters()) if parameters else []) + list(model.buffers())
    for tensor in tensors:
        dist.broadcast(tensor.data, src=0)


# --------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainReport:
    """End of a run: steps done (in total, and by this run), wall seconds of this run, last losses, last
    validation metrics, where the checkpoint is and whether LPIPS was used."""

    steps: int
    steps_this_run: int
    wall_s: float
    losses: dict[str, float]
    validation: dict[str, float]
    checkpoint: str
    lpips_used: bool
    notes: tuple[str, ...] = field(default=())


def _learning_rate(config: NeRFOptimConfig, step: int) -> float:
    return config.learning_rate * 0.5 ** (step // config.lr_halving_steps)


def _subject_stream(shards: Any, config: NeRFTrainConfig, process: DistributedContext, epoch: int, *,
                    resampled: bool) -> Iterator[SubjectViews]:
    pipeline = make_subject_pipeline(shards, shuffle=config.data.shuffle, resampled=resampled,
                                     epoch_length=config.data.subjects_per_epoch, seed=config.seed)
    pipeline.set_epoch(epoch)
    if config.data.num_workers > 0:
        loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=config.data.num_workers,
                                             multiprocessing_context="spawn")
    else:
        loader = pipeline
    for sample in loader:
        yield subject_views(sample, config.data.image_size)


def _validation_batch(source: Any, config: NeRFTrainConfig, body_model: BodyModel) -> PairBatch | None:
    """A fixed batch of ``log.val_pairs`` pairs (first subjects of ``source``, views 0 -> middle view)."""
    if config.log.val_pairs < 1:
        return None
    pipeline = make_subject_pipeline(source, split_by_node=False, split_by_worker=False)
    subjects = []
    for sample in pipeline:
        subjects.append(subject_views(sample, config.data.image_size))
        if len(subjects) == config.log.val_pairs:
            break
    if not subjects:
        return None
    pairs = [(0, s.views.shape[0] // 2) for s in subjects]
    return pair_batch(subjects, pairs, body_model)


def _render_batch(model: GeneralizableHumanNeRF, batch: PairBatch, chunk_rays: int | None = None):
    model.eval()
    result = model.render(batch.reference, batch.target_camera, batch.target_body, chunk_rays=chunk_rays)
    model.train()
    return result


def _write_checkpoint(out_dir: Path, model: GeneralizableHumanNeRF, optimizer: torch.optim.Optimizer, step: int,
                      config: NeRFTrainConfig, notes: Sequence[str]) -> Path:
    target = out_dir / CHECKPOINT_DIRNAME
    with atomic_directory(target, replace_existing=True) as folder:
        model.save_pretrained(folder / "model")
        torch.save({"optimizer": optimizer.state_dict(), "step": step, "config": _plain(config)},
                   folder / TRAINING_STATE)
        (folder / CONFIG_FILE).write_text(config_to_yaml(config, notes=notes))
    return target


def _resolve_lpips(config: NeRFTrainConfig, device: torch.device) -> tuple[NeRFTrainConfig, Any, list[str]]:
    """Load LPIPS when its weight is on and its trunk weights exist; otherwise zero the weight and say why."""
    notes: list[str] = []
    if config.loss.lpips <= 0:
        return config, None, notes
    path = config.lpips_weights
    if path is None or not Path(path).is_file():
        reason = "no lpips_weights given" if path is None else f"lpips_weights {path} does not exist"
        logger.warning("LPIPS term skipped: %s (loss.lpips set to 0 in the run config)", reason)
        notes.append(f"loss.lpips was {config.loss.lpips} but the LPIPS term is skipped: {reason}")
        return replace(config, loss=replace(config.loss, lpips=0.0)), None, notes
    return config, load_lpips(path).to(device), notes


def train_nerf(config: NeRFTrainConfig, shards: Any, out_dir: str | os.PathLike[str], *,
               val_shards: Any = None, resume: bool = True) -> TrainReport:
    """Train (or resume training) the NeRF on subject ``shards``; checkpoints and logs go to ``out_dir``.

    Args:
        config: the run's settings.
        shards: subject shards (folder, manifest, glob, list; see :func:`shards.reader.resolve_shard_urls`).
        out_dir: run folder: ``checkpoint/`` (model/, training_state.pt, config.yaml) and ``tensorboard/``.
        val_shards: shards of validation subjects (None: the first training subjects).
        resume: continue from ``out_dir/checkpoint`` when it exists (model, optimizer, step).
    Returns:
        :class:`TrainReport` (every rank returns one; only rank 0 writes files).
    """
    if not isinstance(config, NeRFTrainConfig):
        raise ValueError(f"config must be a NeRFTrainConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    urls = resolve_shard_urls(shards)
    process = init_distributed(config.device)
    if config.threads is not None:
        torch.set_num_threads(int(config.threads))
    if config.model.image_size != config.data.image_size:
        logger.info("model.image_size %d differs from data.image_size %d; training at %d px",
                    config.model.image_size, config.data.image_size, config.data.image_size)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed * 1000 + process.rank)
    generator = torch.Generator(device=process.device).manual_seed(config.seed * 1000 + process.rank)
    config, lpips_model, notes = _resolve_lpips(config, process.device)
    notes.append(f"shards: {', '.join(urls[:4])}{' ...' if len(urls) > 4 else ''} ({len(urls)} shard(s)); "
                 f"processes: {process.world_size}")
    resampled = len(urls) < process.world_size
    if resampled:
        notes.append(f"fewer shards ({len(urls)}) than processes ({process.world_size}): shards resampled per rank")
        logger.warning(notes[-1])

    checkpoint = out_dir / CHECKPOINT_DIRNAME
    step = 0
    if resume and (checkpoint / TRAINING_STATE).is_file():
        model = GeneralizableHumanNeRF.from_pretrained(str(checkpoint / "model"), low_cpu_mem_usage=False)
        state = torch.load(checkpoint / TRAINING_STATE, map_location="cpu", weights_only=False)
        step = int(state["step"])
        logger.info("resuming from %s at step %d", checkpoint, step)
    else:
        state = None
        model = GeneralizableHumanNeRF.from_settings(config.model)
        if config.backbone_weights:
            model.load_backbone_weights(config.backbone_weights)
    model.to(process.device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=_learning_rate(config.optim, step), betas=config.optim.betas)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    if process.distributed:
        _broadcast_state(model)

    body_model = BodyModel(config.data.body_model_path).to(torch.float32)
    writer = None
    validation_batch = None
    if process.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"), purge_step=step if step else None)
        validation_batch = _validation_batch(val_shards if val_shards is not None else urls, config, body_model)

    start_wall = time.perf_counter()
    start_step = step
    last_losses: dict[str, float] = {}
    last_validation: dict[str, float] = {}
    steps_per_epoch = max(1, (config.data.subjects_per_epoch // config.data.batch_size) * config.data.pairs_per_subject)
    epoch = step // steps_per_epoch
    saved_step = step if (checkpoint / TRAINING_STATE).is_file() else -1
    stop = step >= config.optim.max_steps
    while not stop:
        subjects = _subject_stream(urls, config, process, epoch, resampled=resampled)
        batches = iterate_pair_batches(subjects, body_model, batch_size=config.data.batch_size,
                                       pairs_per_subject=config.data.pairs_per_subject, rng=rng)
        produced = 0
        for batch in batches:
            produced += 1
            batch = batch.to(process.device)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config.optim, step)
            corners, height, width = target_windows(batch.target_camera, batch.target_body, config.optim.patch_size, rng)
            pixels = _window_pixels(corners, height, width).to(process.device)
            result = model(batch.reference, batch.target_camera, batch.target_body, pixels, jitter=True,
                           generator=generator)
            rgb = result.rgb.view(-1, height, width, 3).permute(0, 3, 1, 2)
            opacity = result.opacity.view(-1, 1, height, width)
            terms = reconstruction_losses(rgb, _crop(batch.target_rgb, corners, height, width), opacity,
                                          _crop(batch.target_mask, corners, height, width), config.loss, lpips_model)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            if process.distributed:
                _average_gradients(model, process.world_size)
            if config.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            if process.distributed:
                _broadcast_state(model, parameters=False)
            step += 1
            last_losses = {name: float(value.detach()) for name, value in terms.items()}
            last_losses["patch_psnr"] = float(-10 * math.log10(max(last_losses["rgb_mse"], 1e-10)))
            if writer is not None and step % config.log.log_every == 0:
                for name, value in last_losses.items():
                    writer.add_scalar(f"train/{name}", value, step)
                writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                writer.add_scalar("train/mlp_queries", result.mlp_queries, step)
                logger.info("step %d loss %.4f psnr %.2f", step, last_losses["total"], last_losses["patch_psnr"])
            if writer is not None and validation_batch is not None and step % config.log.val_every == 0:
                last_validation = _validate(model, validation_batch, writer, step, process.device)
            out_of_time = config.optim.max_wall_s is not None and time.perf_counter() - start_wall >= config.optim.max_wall_s
            stop = step >= config.optim.max_steps or _agree(out_of_time, process)
            if process.is_main and (step % config.log.checkpoint_every == 0 or stop):
                _write_checkpoint(out_dir, model, optimizer, step, config, notes)
                saved_step = step
            if stop:
                break
        if produced == 0:
            raise ValueError(f"shards {urls[:3]} yielded no training batch (fewer than data.batch_size="
                             f"{config.data.batch_size} subjects per epoch and process?)")
        epoch += 1
    if process.is_main:
        if validation_batch is not None and not last_validation:
            last_validation = _validate(model, validation_batch, writer, step, process.device)
        if saved_step != step:
            _write_checkpoint(out_dir, model, optimizer, step, config, notes)
        writer.close()
    if process.distributed:
        dist.barrier()
    return TrainReport(steps=step, steps_this_run=step - start_step, wall_s=time.perf_counter() - start_wall,
                       losses=last_losses, validation=last_validation, checkpoint=str(checkpoint),
                       lpips_used=lpips_model is not None, notes=tuple(notes))


def _agree(flag: bool, process: DistributedContext) -> bool:
    """Rank 0's decision, shared with every rank (wall-clock limits differ slightly between processes)."""
    if not process.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=process.device if process.device.type == "cuda" else "cpu")
    dist.broadcast(value, src=0)
    return bool(value.item() > 0)


def _validate(model: GeneralizableHumanNeRF, batch: PairBatch, writer, step: int, device: torch.device) -> dict[str, float]:
    batch = batch.to(device)
    result = _render_batch(model, batch)
    metrics = box_metrics(result.rgb, result.opacity, batch.target_rgb, batch.target_mask)
    summary = {name: float(values.mean()) for name, values in metrics.items()}
    for name, value in summary.items():
        writer.add_scalar(f"val/{name}", value, step)
    rows = torch.cat([batch.reference.image * batch.reference.mask, batch.target_rgb, result.rgb.clamp(0, 1),
                      result.opacity.expand(-1, 3, -1, -1)], dim=3)  # per pair: reference | target | render | opacity
    writer.add_images("val/reference_target_render_opacity", rows.cpu(), step)
    logger.info("validation step %d: psnr %.2f ssim %.3f iou %.3f", step, summary["psnr"], summary["ssim"],
                summary["mask_iou"])
    return summary


# --------------------------------------------------------------------------------------- command line
def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``gas train-nerf`` (also used by ``python -m pipelines.train_nerf`` under torchrun)."""
    parser = parser or argparse.ArgumentParser(prog="gas train-nerf", description="train the generalizable human NeRF")
    parser.add_argument("shards", help="subject shards: folder, manifest.json, glob or brace pattern")
    parser.add_argument("out_dir", help="run folder (checkpoint/, tensorboard/)")
    parser.add_argument("--preset", choices=("tiny", "paper"), default="paper")
    parser.add_argument("--config", default=None, help="YAML file of config fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. optim.max_steps=100 (repeatable)")
    parser.add_argument("--val-shards", default=None, help="validation subject shards (default: training shards)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    return parser


def main_from_args(argv: Sequence[str] | None = None) -> int:
    """``gas train-nerf SHARDS OUT_DIR [--preset tiny|paper] [--config F] [--set K=V ...] [--val-shards S] [--no-resume]``.

    Runs in this process; under ``torchrun`` every process runs it (``python -m pipelines.train_nerf``).
    """
    return run_from_namespace(build_arg_parser().parse_args(argv))


def run_from_namespace(args: argparse.Namespace) -> int:
    """Run training from parsed :func:`build_arg_parser` arguments (for a CLI that adds them to a sub-command)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_train_nerf_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    report = train_nerf(config, args.shards, args.out_dir, val_shards=args.val_shards, resume=not args.no_resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {report.steps_this_run} steps ({report.steps} in total) in {report.wall_s:.0f} s; "
              f"checkpoint {report.checkpoint}; losses {report.losses}; validation {report.validation}")
    return 0


def torchrun_command(argv: Sequence[str], *, processes: int, python: str = "python") -> list[str]:
    """The command that runs :func:`main_from_args` with ``argv`` in ``processes`` data-parallel processes."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "pipelines.train_nerf", *argv]


if __name__ == "__main__":
    raise SystemExit(main_from_args())
