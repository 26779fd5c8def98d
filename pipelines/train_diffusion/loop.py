"""The training loop: model, optimizer and data set-up, then :func:`train` (DDP-aware, resumable)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gas_core.diffusion import GASModel
from gas_core.fileio import atomic_write_bytes
from pipelines.distributed import DistributedContext, init_distributed
from pipelines.train_diffusion.checkpoints import (
    _CONFIG_FILE,
    TrainState,
    _prune_checkpoints,
    _trainable,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from pipelines.train_diffusion.config import DiffusionTrainConfig, config_to_yaml
from pipelines.train_diffusion.data import ClipBatch, ClipCollator, MixedClipStream
from pipelines.train_diffusion.outputs import _export_final, _log_sample_grid, _tensorboard_writer
from pipelines.train_diffusion.step import _autocast, draw_training_noise, latent_shape_of, training_loss

logger = logging.getLogger(__name__)


def _barrier(context: DistributedContext) -> None:
    if context.distributed:
        torch.distributed.barrier()


def _mean_over_ranks(value: float, context: DistributedContext) -> float:
    if not context.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    torch.distributed.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


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
