"""The training loop (:func:`train_nerf`): setup, resume, steps, logging, validation, checkpoints."""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import distributed as dist

from gas_core.body.smpl import BodyModel
from gas_core.nerf import GeneralizableHumanNeRF
from gas_core.nerf.losses import load_lpips, reconstruction_losses
from pipelines.distributed import init_distributed
from pipelines.train_nerf.checkpoints import CHECKPOINT_DIRNAME, TRAINING_STATE, _write_checkpoint
from pipelines.train_nerf.config import NeRFTrainConfig
from pipelines.train_nerf.data import PairBatch, _subject_stream, _validation_batch, iterate_pair_batches
from pipelines.train_nerf.ddp import _agree, _average_gradients, _broadcast_state
from pipelines.train_nerf.step import _crop, _learning_rate, _window_pixels, box_metrics, target_windows
from shards.reader import resolve_shard_urls

logger = logging.getLogger(__name__)


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


def _render_batch(model: GeneralizableHumanNeRF, batch: PairBatch, chunk_rays: int | None = None):
    model.eval()
    result = model.render(batch.reference, batch.target_camera, batch.target_body, chunk_rays=chunk_rays)
    model.train()
    return result


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
    stalled = 0  # steps in a row with an exactly zero gradient
    while not stop:
        subjects = _subject_stream(urls, config, process, epoch, resampled=resampled)
        batches = iterate_pair_batches(subjects, body_model, batch_size=config.data.batch_size,
                                       pairs_per_subject=config.data.pairs_per_subject, rng=rng,
                                       augment=config.augment)
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
            # the total gradient norm (clipped to grad_clip when that is on); checked before the weights move
            grad_norm = float(torch.nn.utils.clip_grad_norm_(
                model.parameters(), config.optim.grad_clip if config.optim.grad_clip > 0 else math.inf))
            stalled = stalled + 1 if grad_norm == 0.0 else 0
            _check_step_health(float(terms["total"].detach()), grad_norm, stalled, step + 1, config, process,
                               checkpoint if saved_step >= 0 else None)
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


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient of a training step is not finite, or the gradient has been exactly zero for
    ``optim.stalled_steps`` steps in a row; raised before the optimiser applies that step."""


def _check_step_health(loss: float, grad_norm: float, stalled: int, step: int, config: NeRFTrainConfig,
                       process: Any, checkpoint: Path | None) -> None:
    """Raise :class:`TrainingDiverged` (on every rank, as rank 0 decides) when step ``step`` must not be applied."""
    kept = (f"the last checkpoint ({checkpoint}) is kept" if checkpoint is not None
            else "no checkpoint was written yet")
    if _agree(not (math.isfinite(loss) and math.isfinite(grad_norm)), process):
        raise TrainingDiverged(
            f"NeRF training, step {step}: the loss ({loss}) or the gradient norm ({grad_norm}) is not finite; "
            f"the step was not applied and {kept}. Lower optim.learning_rate, keep optim.grad_clip > 0, "
            "or check this batch's subjects (gas-shards verify)")
    limit = config.optim.stalled_steps
    if _agree(limit > 0 and stalled >= limit, process):
        raise TrainingDiverged(
            f"NeRF training, step {step}: the gradient has been exactly zero for {stalled} steps in a row, so the "
            f"rendering no longer depends on the weights (saturated or dead units) and cannot learn again; {kept}. "
            "Start again with a lower optim.learning_rate, or from an earlier checkpoint")


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
