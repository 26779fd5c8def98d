"""Bake the frozen encoders' outputs into clip shards, so that the diffusion trainer never runs the VAE.

:func:`cache_clip_latents` reads a clip shard folder and writes a new one with the same clips plus
four cached fields (schema ``clip`` v1, optional fields):

* ``target_latents``: VAE latents of the target frames, ``latent_dist.mode()`` times the VAE's
  ``scaling_factor`` (SCALED, the diffusion targets), float16 ``(N, 4, H/8, W/8)``;
* ``nerf_latents``: VAE latents of the NeRF frames, mode, UNSCALED, float16 ``(N, 4, H/8, W/8)``;
* ``reference_latent``: VAE latent of the (clean) reference image, mode, UNSCALED, float16 ``(4, H/8, W/8)``;
* ``image_embedding``: CLIP image embedding of the reference, float16 ``(1, D)``.

The latents belong to the VAE and CLIP encoder they were made with: bake with the model you train
(``model`` config, recorded in the output manifest's ``extra``). The reference latent is of the
clean image; with noise augmentation on, the trainer re-encodes the augmented reference itself.
Clips already in the output folder are skipped, so an interrupted bake resumes where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from gas_core.diffusion import GASModel
from gas_core.presets import PaperDefaults
from pipelines.config import load_config
from pipelines.train_diffusion import ModelSourceConfig
from shards.manifest import existing_keys, load_manifest
from shards.reader import make_clip_pipeline, resolve_shard_urls
from shards.schema import CLIP_SCHEMA, ClipSample
from shards.writer import ShardWriter

__all__ = ["CacheLatentsConfig", "CacheReport", "ClipLatents", "encode_clip_latents", "cache_clip_latents", "load_cache_config", "main"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheLatentsConfig(PaperDefaults):
    """The model whose VAE / CLIP encoder make the latents, and how to run and write them.

    ``chunk_frames``: images per VAE call; ``precision``: dtype the encoders run in on a GPU
    (float32 on CPU); ``prefix`` / ``max_count`` / ``max_size``: output shard naming and limits.

    Preset ``paper()`` (the defaults): SVD 1.1's VAE and CLIP encoder, float16 on a GPU.
    """

    model: ModelSourceConfig = ModelSourceConfig(preset=None, base_svd_dir="models/stable-video-diffusion-img2vid-xt-1-1")
    chunk_frames: int = 16
    precision: Literal["float32", "bfloat16", "float16"] = "float16"
    prefix: str = "clips"
    max_count: int = 64
    max_size: int = 2 << 30

    def __post_init__(self) -> None:
        if int(self.chunk_frames) < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if self.precision not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"precision must be float32, bfloat16 or float16, got {self.precision!r}")

    @classmethod
    def tiny(cls) -> "CacheLatentsConfig":
        """The ``tiny`` random model (tests and CPU demos)."""
        return cls(model=ModelSourceConfig(preset="tiny"), precision="float32", max_count=16)


@dataclass(frozen=True)
class ClipLatents:
    """Cached encoder outputs of one clip of N frames (float16 numpy arrays, shapes as the ``clip`` schema)."""

    target_latents: np.ndarray  # (N, 4, h, w) SCALED
    nerf_latents: np.ndarray  # (N, 4, h, w) UNSCALED
    reference_latent: np.ndarray  # (4, h, w) UNSCALED
    image_embedding: np.ndarray  # (1, D)


def _images(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    return (tensor.to(device=device, dtype=torch.float32) / 127.5 - 1.0).to(dtype)


@torch.no_grad()
def encode_clip_latents(model: GASModel, clip: ClipSample, *, chunk_frames: int = 16) -> ClipLatents:
    """The four cached fields of ``clip`` (uint8 frames, NeRF frames and reference) with ``model``'s frozen encoders.

    Runs on the device and in the dtype of ``model.vae`` / ``model.image_encoder``.
    """
    weight = next(model.vae.parameters())
    device, dtype = weight.device, weight.dtype

    def encode(array: np.ndarray) -> torch.Tensor:
        return model.encode_latents(_images(array, device, dtype), chunk_size=chunk_frames).float()

    reference = _images(clip.reference[None], device, torch.float32)
    return ClipLatents(
        target_latents=(encode(clip.frames) * model.scaling_factor).cpu().numpy().astype(np.float16),
        nerf_latents=encode(clip.nerf).cpu().numpy().astype(np.float16),
        reference_latent=encode(clip.reference[None])[0].cpu().numpy().astype(np.float16),
        image_embedding=model.encode_image_embedding(reference).float()[0].cpu().numpy().astype(np.float16),
    )


@dataclass(frozen=True)
class CacheReport:
    """What one bake did: clips written and skipped (already in the output), shards closed, seconds."""

    clips_written: int
    clips_skipped: int
    shards: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        rate = self.clips_written / self.seconds if self.seconds > 0 else float("nan")
        return (f"{self.clips_written} clips cached into {len(self.shards)} shards ({rate:.2f} clips/s), "
                f"{self.clips_skipped} already present")


def _model_on_device(config: CacheLatentsConfig, device: torch.device) -> GASModel:
    model = config.model.build()
    dtype = getattr(torch, config.precision) if device.type == "cuda" else torch.float32
    for frozen in (model.vae, model.image_encoder):  # a dtype argument only when casting (diffusers warns otherwise)
        if dtype == torch.float32:
            frozen.to(device)
        else:
            frozen.to(device, dtype=dtype)
    return model


def cache_clip_latents(in_dir: str | Path, out_dir: str | Path, config: CacheLatentsConfig = CacheLatentsConfig(), *,
                       model: GASModel | None = None, device: str | torch.device | None = None,
                       part_index: int = 0, part_count: int = 1) -> CacheReport:
    """Read the clip shards of ``in_dir`` and write them, with cached latents, to ``out_dir``.

    ``model``: use this (already placed) model instead of building ``config.model``; ``device``:
    where to run (default CUDA when present). ``part_index`` / ``part_count``: process only every
    ``part_count``-th input shard from ``part_index`` (parallel bakes write shard prefixes
    ``{prefix}-p{index}`` into one folder). Clips already in ``out_dir`` are skipped.
    """
    if part_count < 1 or not 0 <= part_index < part_count:
        raise ValueError(f"need 0 <= part_index < part_count, got {part_index} of {part_count}")
    if Path(in_dir).resolve() == Path(out_dir).resolve():
        raise ValueError("out_dir must differ from in_dir (the bake writes a new shard folder)")
    started = time.perf_counter()
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if model is None:
        model = _model_on_device(config, device)
    urls = resolve_shard_urls(in_dir)[part_index::part_count]
    if not urls:
        return CacheReport(0, 0, (), time.perf_counter() - started)
    done = existing_keys(out_dir) if load_manifest(out_dir) is not None else set()
    prefix = config.prefix if part_count == 1 else f"{config.prefix}-p{part_index:03d}"
    source = make_clip_pipeline(urls, resampled=False, split_by_node=False, split_by_worker=False, decode_to_tensors=False)
    extra = {"latents": {"model": asdict(config.model), "scaling_factor": model.scaling_factor,
                         "target_latents": "scaled", "nerf_latents": "unscaled", "reference_latent": "unscaled"}}
    written = skipped = 0
    with ShardWriter(out_dir, prefix, CLIP_SCHEMA, max_count=config.max_count, max_size=config.max_size,
                     manifest_extra=extra) as writer:
        for clip in source:
            if clip.key in done:
                skipped += 1
                continue
            latents = encode_clip_latents(model, clip, chunk_frames=config.chunk_frames)
            writer.write(replace(clip, **vars(latents)))
            written += 1
            if written % 100 == 0:
                logger.info("cached %d clips (%.2f clips/s)", written, written / (time.perf_counter() - started))
    return CacheReport(written, skipped, tuple(entry.file for entry in writer.closed_shards), time.perf_counter() - started)


def load_cache_config(*, preset: Literal["tiny", "paper"] = "paper", overrides: Sequence[str] = ()) -> CacheLatentsConfig:
    """``preset`` then ``KEY=VALUE`` overrides (``model.base_svd_dir=/models/svd``)."""
    return load_config(CacheLatentsConfig, None, preset=preset, overrides=tuple(overrides))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipelines.cache_latents IN_DIR OUT_DIR [--preset tiny|paper] [--set KEY=VALUE]``."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.cache_latents", description=__doc__.splitlines()[0])
    parser.add_argument("in_dir", help="clip shard folder (or manifest, glob, URL)")
    parser.add_argument("out_dir", help="new clip shard folder with cached latents")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set model.base_svd_dir=/models/svd (repeatable)")
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    parser.add_argument("--part", default="0/1", metavar="INDEX/COUNT", help="process every COUNT-th input shard from INDEX")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        index, _, count = args.part.partition("/")
        config = load_cache_config(preset=args.preset, overrides=args.set)
        report = cache_clip_latents(args.in_dir, args.out_dir, config, device=args.device,
                                    part_index=int(index), part_count=int(count or 1))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
