"""Training data: the clip batch, its collator and the mixed view/pose clip stream."""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from shards.reader import make_clip_pipeline


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
