"""Streaming reader: shard URLs -> decoded, schema-checked samples, on webdataset's pipeline.

:func:`make_subject_pipeline` (subject samples) and :func:`make_clip_pipeline` (clip samples) build a
``webdataset.DataPipeline`` (an ``IterableDataset``, so it goes straight into a
``torch.utils.data.DataLoader`` with workers):

1. shard list: every shard once per epoch (optionally shuffled the same way on every rank and
   worker, then split by rank and by DataLoader worker), or with ``resampled=True`` an endless
   stream of shards drawn with replacement, seeded per rank and worker;
2. tar reading (:func:`iter_shards`): each shard is read through the storage seam
   (:class:`shards.remote.Folder`, local paths and fsspec URLs alike) by a background thread in
   large chunks, and the next shard starts reading while the current one is parsed (``prefetch``);
3. an optional sample shuffle buffer;
4. schema check and decoding (unknown schema versions are refused, naming shard and sample);
5. ``with_epoch(epoch_length)``: a fixed number of samples **per worker** (per DataLoader worker
   of each rank). Training uses ``resampled=True`` with ``epoch_length`` so all DDP ranks run the
   same number of steps and never wait on each other in a collective.

A truncated or corrupt shard raises :class:`ShardReadError` naming the shard, or with
``skip_corrupt=True`` is skipped with a warning (samples read before the damage are kept).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import tarfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, TypedDict, Unpack

import numpy as np
import torch
import webdataset

from shards import remote
from shards.manifest import MANIFEST_NAME, load_manifest
from shards.schema import ClipSample, SubjectSample, decode, decode_clip, split_member_name

__all__ = [
    "ClipTensorDecoder",
    "MODE_ONE_HOT",
    "SamplePipeline",
    "ShardReadError",
    "StreamOptions",
    "SubjectPipeline",
    "SubjectTensorDecoder",
    "clip_to_tensors",
    "ReadAheadShard",
    "iter_shard_samples",
    "iter_shard_stream",
    "iter_shards",
    "make_clip_pipeline",
    "make_subject_pipeline",
    "read_sample",
    "resolve_shard_urls",
    "subject_to_tensors",
]

logger = logging.getLogger(__name__)


class ShardReadError(RuntimeError):
    """A shard cannot be read (truncated, corrupt, unreadable); the message starts with the shard's URL."""


# ====================================================================== raw tar reading


def iter_shard_stream(stream: IO[bytes], url: str) -> Iterator[dict[str, Any]]:
    """Group the members of one tar stream into raw samples ``{"__key__", "__url__", suffix: bytes}``.

    Members are grouped like webdataset does (key = member name up to the first dot of its base
    name; consecutive members with the same key form one sample). Raises :class:`ShardReadError`
    naming ``url`` on truncated or corrupt data or a repeated member.
    """
    current: dict[str, Any] | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for info in archive:
                if not info.isreg():
                    continue
                parts = split_member_name(info.name)
                if parts is None:
                    raise ShardReadError(f"{url}: member {info.name!r} has no '.suffix'; not a webdataset shard")
                key, suffix = parts
                member = archive.extractfile(info)
                data = member.read() if member is not None else b""
                if len(data) != info.size:
                    raise ShardReadError(f"{url}: member {info.name!r} is truncated ({len(data)} of {info.size} bytes)")
                if current is None or key != current["__key__"]:
                    if current is not None:
                        yield current
                    current = {"__key__": key, "__url__": url}
                if suffix in current:
                    raise ShardReadError(f"{url}: member {info.name!r} appears twice in sample {key!r}")
                current[suffix] = data
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, ShardReadError):
            raise
        raise ShardReadError(
            f"{url}: truncated or corrupt shard ({type(exc).__name__}: {exc}); re-write it or drop it from the manifest"
        ) from exc
    if current is not None:
        yield current


def iter_shard_samples(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Raw samples (``{"__key__", "__url__", suffix: bytes}``) of one shard, local path or fsspec URL."""
    location = os.fspath(path)
    with _open_shard(location) as stream:
        yield from iter_shard_stream(stream, location)


#: Bytes per request when shards are read ahead (:class:`ReadAheadShard`), and chunks kept ahead of the reader.
READ_AHEAD_CHUNK_BYTES = 8 << 20
READ_AHEAD_CHUNKS = 2


class ReadAheadShard(io.RawIOBase):
    """One shard (local path or URL) read by a background thread, ahead of its reader.

    The thread starts at once and reads ``chunk_bytes`` at a time (one request each on object
    storage), keeping at most ``ahead_chunks`` chunks that the reader has not taken yet, so memory
    stays bounded (about ``(ahead_chunks + 2) * chunk_bytes``) whatever the shard's size. Reading
    waits for the next chunk; an error of the thread (the shard cannot be opened or read) is raised
    by the read that reaches it. :meth:`close` stops the thread. Wrap it in ``io.BufferedReader``
    for small reads (:func:`iter_shards` does).
    """

    _END = object()

    def __init__(self, location: str | os.PathLike[str], *, chunk_bytes: int = READ_AHEAD_CHUNK_BYTES,
                 ahead_chunks: int = READ_AHEAD_CHUNKS) -> None:
        super().__init__()
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
        if ahead_chunks < 1:
            raise ValueError(f"ahead_chunks must be >= 1, got {ahead_chunks}")
        self.location = os.fspath(location)
        self._chunk_bytes = chunk_bytes
        self._chunks: queue.Queue[Any] = queue.Queue(maxsize=ahead_chunks)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._ended = False
        self._thread = threading.Thread(target=self._fetch, name=f"read-ahead {self.location}", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fetch(self) -> None:
        try:
            folder, name = remote.split_location(self.location)
            chunks = folder.iter_chunks(name, self._chunk_bytes)
        except Exception as error:  # noqa: BLE001 - handed to the reader, which raises it naming the shard
            self._put(ShardReadError(f"{self.location}: cannot open shard ({type(error).__name__}: {error})"))
            return
        started = False
        try:
            with contextlib.closing(chunks):
                for data in chunks:
                    started = True
                    if self._stop.is_set() or not self._put(data):
                        return
        except Exception as error:  # noqa: BLE001
            what = "reading failed" if started else "cannot open shard"
            self._put(ShardReadError(f"{self.location}: {what} ({type(error).__name__}: {error})"))
            return
        self._put(self._END)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError(f"{self.location}: read from a closed shard")
        target = memoryview(buffer).cast("B")
        while not self._current and not self._ended:
            item = self._chunks.get()
            if item is self._END:
                self._ended = True
            elif isinstance(item, BaseException):
                self._ended = True
                raise item
            else:
                self._current = memoryview(item)
        count = min(len(target), len(self._current))
        target[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    self._chunks.get_nowait()
            self._current = memoryview(b"")
        super().close()


#: Buffer of the reader in front of a :class:`ReadAheadShard` (tar headers are read 512 bytes at a time).
_READ_BUFFER_BYTES = 1 << 20


def _open_ahead(location: str) -> IO[bytes]:
    return io.BufferedReader(ReadAheadShard(location), buffer_size=_READ_BUFFER_BYTES)


def _open_shard(location: str) -> IO[bytes]:
    """``location`` opened for reading in this thread (fsspec's own buffering); ShardReadError if it cannot be."""
    try:
        folder, name = remote.split_location(location)
        return folder.open(name, "rb")
    except (OSError, ValueError) as exc:
        raise ShardReadError(f"{location}: cannot open shard ({exc})") from exc


def iter_shards(locations: Iterable[str | Mapping[str, Any]], *, prefetch: int = 1,
                skip_corrupt: bool = False) -> Iterator[dict[str, Any]]:
    """Raw samples (``{"__key__", "__url__", suffix: bytes}``) of several shards in turn, reading ahead.

    With ``prefetch`` >= 1, each shard is read by a :class:`ReadAheadShard` (a background thread) and
    the next ``prefetch`` shards start reading while the current one is being parsed and consumed, so
    request latency and transfer overlap the work on the samples. ``prefetch=0`` opens one shard at a
    time in this thread. ``locations`` are shard paths / URLs, or webdataset's ``{"url": ...}`` items;
    they are taken from the iterable only as the read-ahead needs them (an endless resampled stream
    is fine).

    Raises :class:`ShardReadError` naming the shard when one cannot be opened or is truncated or
    corrupt; with ``skip_corrupt=True`` that shard is skipped with a warning instead (samples read
    before the damage are kept).
    """
    if prefetch < 0:
        raise ValueError(f"prefetch must be >= 0, got {prefetch}")
    pending: list[tuple[str, IO[bytes] | None]] = []
    source = iter(locations)
    try:
        while True:
            while len(pending) <= prefetch:
                item = next(source, None)
                if item is None:
                    break
                location = os.fspath(item["url"] if isinstance(item, Mapping) else item)
                pending.append((location, _open_ahead(location) if prefetch else None))
            if not pending:
                return
            location, stream = pending.pop(0)
            try:
                if stream is None:
                    stream = _open_shard(location)
                yield from iter_shard_stream(stream, location)
            except ShardReadError as error:
                if not skip_corrupt:
                    raise
                logger.warning("skipping rest of shard: %s", error)
            finally:
                if stream is not None:
                    stream.close()
    finally:
        for _, stream in pending:
            if stream is not None:
                stream.close()


def read_sample(paths: Sequence[str], key: str) -> dict[str, Any]:
    """The raw sample ``key`` from the first of ``paths`` (shards) that holds it; KeyError if none does."""
    for path in paths:
        for sample in iter_shard_samples(path):
            if sample["__key__"] == key:
                return sample
    raise KeyError(f"sample {key!r} not found in {len(paths)} shard(s)")


# ====================================================================== URL resolution


def _has_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def resolve_shard_urls(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Shard locations from a folder (its manifest, else its ``*.tar``), a ``manifest.json``, a glob,
    a brace pattern (``shards-{000000..000009}.tar``), a single shard or a list of any of these.

    Raises ValueError when nothing is found.
    """
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text.endswith(MANIFEST_NAME):
            text = text[: -len(MANIFEST_NAME)].rstrip("/") or "."
        if "{" in text:
            urls = list(webdataset.shardlists.expand_urls(text))
        elif _has_glob(text):
            urls = remote.glob_locations(text)
        else:
            folder = remote.Folder(text)
            if folder.isdir():
                manifest = load_manifest(folder)
                if manifest is not None:
                    urls = [folder.join(entry.file) for entry in manifest.shards]
                else:
                    urls = [folder.join(name) for name in folder.list(dirs=False) if name.endswith(".tar")]
            else:
                urls = [text]
    else:
        urls = [url for item in source for url in resolve_shard_urls(item)]
    if not urls:
        raise ValueError(f"source {source!r} names no shards (expected a folder, manifest, glob or .tar files)")
    return urls


# ====================================================================== decoding


def _images_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W[, C]) -> float32 (N, C, H, W) in [0, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(-1)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0)


def _floats(value: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float32))


_SMPL_TENSOR_KEYS = ("betas", "body_pose", "global_orient", "transl", "scale")

#: The diffusion model's switcher code of each clip mode (as the official GAS release defines it).
MODE_ONE_HOT = {"view": (0.0, 1.0), "pose": (1.0, 0.0)}


def subject_to_tensors(sample: SubjectSample) -> dict[str, Any]:
    """Torch tensors of one subject.

    Returns a dict with ``views`` float32 (N, 3, H, W) in [0, 1]; ``masks`` float32 (N, 1, H, W) in
    [0, 1]; ``K`` (N, 3, 3) pixels, ``R`` (N, 3, 3), ``t`` (N, 3) metres, float32, OpenCV
    world-to-camera; ``smpl`` dict of float32 tensors ``betas`` (10,), ``body_pose`` (23, 3),
    ``global_orient`` (3,), ``transl`` (3,), ``scale`` (); ``body_model`` str;
    ``normalization_center`` (3,), ``normalization_scale`` (); ``dataset``, ``subject_id`` str;
    ``meta`` (the meta dict); and when present ``normals`` float32 (N, 3, H, W) in [0, 1] and
    ``keypoints`` float32 (N, J, 3). torch's ``default_collate`` batches these dicts when the
    samples of a batch share N, H, W, the optional fields and the keys of ``meta``.
    """

    images, floats = _images_to_tensor, _floats
    output: dict[str, Any] = {
        "views": images(sample.views),
        "masks": images(sample.masks),
        "K": torch.stack([floats(camera["K"]) for camera in sample.cameras]),
        "R": torch.stack([floats(camera["R"]) for camera in sample.cameras]),
        "t": torch.stack([floats(camera["t"]) for camera in sample.cameras]),
        "smpl": {name: floats(sample.smpl[name]) for name in ("betas", "body_pose", "global_orient", "transl", "scale")},
        "body_model": str(sample.smpl["body_model"]),
        "normalization_center": floats(sample.normalization["center"]),
        "normalization_scale": floats(sample.normalization["scale"]),
        "dataset": str(sample.meta["dataset"]),
        "subject_id": str(sample.meta["subject_id"]),
        "meta": sample.meta,
    }
    if sample.normals is not None:
        output["normals"] = images(sample.normals)
    if sample.keypoints is not None:
        output["keypoints"] = floats(sample.keypoints)
    return output


def clip_to_tensors(sample: ClipSample) -> dict[str, Any]:
    """Torch tensors of one clip (N frames of H x W).

    Returns a dict with ``frames``, ``nerf``, ``normals`` float32 (N, 3, H, W) in [0, 1]; ``masks``
    float32 (N, 1, H, W) in [0, 1]; ``reference`` float32 (3, H, W) and ``reference_mask``
    (1, H, W) in [0, 1]; ``K`` (N, 3, 3) pixels, ``R`` (N, 3, 3), ``t`` (N, 3) metres (OpenCV,
    world-to-camera) and ``reference_K`` / ``reference_R`` / ``reference_t``; ``smpl`` dict of
    per-frame float32 tensors ``betas`` (N, 10), ``body_pose`` (N, 23, 3), ``global_orient`` (N, 3),
    ``transl`` (N, 3), ``scale`` (N,), and ``reference_smpl`` the same without N; ``mode`` str,
    ``mode_one_hot`` float32 (2,) (view = [0, 1], pose = [1, 0]); ``reference_index`` int,
    ``frame_indices`` long (N,); ``dataset``, ``subject_id`` str; ``meta``; when present
    ``nerf_masks`` (N, 1, H, W) in [0, 1] and the cached latents as float32 tensors
    ``target_latents`` (N, 4, h, w) scaled, ``nerf_latents`` (N, 4, h, w) and ``reference_latent``
    (4, h, w) unscaled, ``image_embedding`` (1, D).
    """
    images, floats = _images_to_tensor, _floats
    output: dict[str, Any] = {
        "frames": images(sample.frames),
        "nerf": images(sample.nerf),
        "normals": images(sample.normals),
        "masks": images(sample.masks),
        "reference": images(sample.reference[None])[0],
        "reference_mask": images(sample.reference_mask[None])[0],
        "K": torch.stack([floats(camera["K"]) for camera in sample.cameras]),
        "R": torch.stack([floats(camera["R"]) for camera in sample.cameras]),
        "t": torch.stack([floats(camera["t"]) for camera in sample.cameras]),
        "reference_K": floats(sample.reference_camera["K"]),
        "reference_R": floats(sample.reference_camera["R"]),
        "reference_t": floats(sample.reference_camera["t"]),
        "smpl": {name: torch.stack([floats(item[name]) for item in sample.smpl]) for name in _SMPL_TENSOR_KEYS},
        "reference_smpl": {name: floats(sample.reference_smpl[name]) for name in _SMPL_TENSOR_KEYS},
        "body_model": str(sample.reference_smpl["body_model"]),
        "mode": sample.mode,
        "mode_one_hot": torch.tensor(MODE_ONE_HOT[sample.mode], dtype=torch.float32),
        "reference_index": int(sample.meta["reference_index"]),
        "frame_indices": torch.as_tensor(np.asarray(sample.meta["frame_indices"], dtype=np.int64)),
        "dataset": str(sample.meta["dataset"]),
        "subject_id": str(sample.meta["subject_id"]),
        "meta": sample.meta,
    }
    if sample.nerf_masks is not None:
        output["nerf_masks"] = images(sample.nerf_masks)
    for name in ("target_latents", "nerf_latents", "reference_latent", "image_embedding"):
        value = getattr(sample, name)
        if value is not None:
            output[name] = torch.from_numpy(np.ascontiguousarray(value)).float()
    return output


def _where(raw: Mapping[str, Any]) -> str:
    """``shard URL sample KEY`` of a raw sample, for error messages."""
    return f"shard {raw.get('__url__', '?')} sample {raw.get('__key__', '?')}"


def _with_origin(output: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """``output`` with the raw sample's ``__key__`` and ``__url__`` added."""
    output["__key__"] = raw["__key__"]
    output["__url__"] = raw.get("__url__", "")
    return output


class SubjectTensorDecoder:
    """Pipeline stage callable: raw sample -> :class:`SubjectSample` or tensor dict (picklable for workers)."""

    def __init__(self, to_tensors: bool = True) -> None:
        self.to_tensors = to_tensors

    def __call__(self, raw: Mapping[str, Any]) -> SubjectSample | dict[str, Any]:
        subject = decode(raw, where=_where(raw))
        return _with_origin(subject_to_tensors(subject), raw) if self.to_tensors else subject


class ClipTensorDecoder:
    """Pipeline stage callable: raw sample -> :class:`ClipSample` or :func:`clip_to_tensors` dict.

    ``modes`` keeps only clips of those modes (e.g. ``("pose",)``); others are dropped (None).
    """

    def __init__(self, to_tensors: bool = True, modes: Sequence[str] | None = None) -> None:
        self.to_tensors = to_tensors
        self.modes = None if modes is None else tuple(modes)
        if self.modes is not None and not set(self.modes) <= set(MODE_ONE_HOT):
            raise ValueError(f"modes must be a subset of {tuple(MODE_ONE_HOT)}, got {modes!r}")

    def __call__(self, raw: Mapping[str, Any]) -> ClipSample | dict[str, Any] | None:
        clip = decode_clip(raw, where=_where(raw))
        if self.modes is not None and clip.mode not in self.modes:
            return None
        return _with_origin(clip_to_tensors(clip), raw) if self.to_tensors else clip


def _drop_none(source: Iterator[Any]) -> Iterator[Any]:
    for item in source:
        if item is not None:
            yield item


class _ExpandShards:
    """Pipeline stage: ``{"url": ...}`` items -> raw samples, read ahead by :func:`iter_shards` (picklable)."""

    def __init__(self, skip_corrupt: bool, prefetch: int) -> None:
        self.skip_corrupt = skip_corrupt
        self.prefetch = prefetch

    def __call__(self, source: Iterator[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        return iter_shards(source, prefetch=self.prefetch, skip_corrupt=self.skip_corrupt)


class SamplePipeline(webdataset.DataPipeline):
    """``webdataset.DataPipeline`` with :meth:`set_epoch` for reproducible, epoch-dependent randomness."""

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the shard order / resampling / shuffle buffer of ``epoch`` (>= 0).

        DataLoader workers (unless ``persistent_workers=True``) get a fresh copy of the pipeline
        every epoch, so without this every epoch would repeat the first one's random draws. Call it
        in every rank before iterating the DataLoader, like ``DistributedSampler.set_epoch``.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        for stage in self.pipeline:
            if isinstance(stage, (webdataset.ResampledShards, webdataset.detshuffle)):
                stage.epoch = epoch - 1  # both stages add 1 when an iteration starts


#: The subject pipeline is a :class:`SamplePipeline` (name kept for readers of older code).
SubjectPipeline = SamplePipeline


class StreamOptions(TypedDict, total=False):
    """Keyword options shared by :func:`make_subject_pipeline` and :func:`make_clip_pipeline` (typed ``**options``)."""

    shuffle: int
    resampled: bool
    epoch_length: int | None
    split_by_node: bool
    split_by_worker: bool
    seed: int
    skip_corrupt: bool
    prefetch: int


def make_subject_pipeline(
    urls_or_manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    decode_to_tensors: bool = True,
    **options: Unpack[StreamOptions],
) -> SamplePipeline:
    """Streaming pipeline of subject samples (call :meth:`SamplePipeline.set_epoch` each epoch).

    Args:
        urls_or_manifest: shard folder (uses its manifest), ``manifest.json``, glob, brace pattern,
            shard path/URL, or a list of these (see :func:`resolve_shard_urls`).
        decode_to_tensors: yield :func:`subject_to_tensors` dicts (views float32 (N, 3, H, W) in
            [0, 1], plus ``__key__``/``__url__``); False yields :class:`SubjectSample` (uint8 numpy).
        **options: the streaming options, all keyword-only (defaults in brackets):

            - ``shuffle`` (0): sample shuffle buffer size (0 = keep shard order); also shuffles the
              shard order per epoch (same order on every rank and worker, so the split stays a partition).
            - ``resampled`` (False): draw shards with replacement forever (seeded by ``seed``, rank,
              worker and epoch); rank and worker splitting are then not needed and are skipped.
            - ``epoch_length`` (None): samples per epoch **per worker** (``with_epoch``); required for
              finite epochs with ``resampled=True``. Without resampling it repeats/truncates the data.
            - ``split_by_node`` (True): give each distributed rank every ``world_size``-th shard.
            - ``split_by_worker`` (True): give each DataLoader worker every ``num_workers``-th shard.
            - ``seed`` (0): seed of the shard order / resampling and of the shuffle buffer.
            - ``skip_corrupt`` (False): warn and skip unreadable shards instead of raising
              :class:`ShardReadError`.
            - ``prefetch`` (1): shards read ahead (background threads) while one is being decoded;
              0 reads one at a time (see :func:`iter_shards`).

    Every sample's schema tag is checked; an unknown name or version raises
    :class:`shards.schema.SchemaVersionError` naming shard and sample.
    """
    return _make_pipeline(urls_or_manifest, SubjectTensorDecoder(decode_to_tensors), **options)


def make_clip_pipeline(
    urls_or_manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    modes: Sequence[str] | None = None,
    decode_to_tensors: bool = True,
    **options: Unpack[StreamOptions],
) -> SamplePipeline:
    """Streaming pipeline of clip samples; arguments (and streaming ``options``) as :func:`make_subject_pipeline`.

    ``modes`` keeps only clips of these modes (``("view",)``, ``("pose",)``; None keeps all), so a
    trainer can build one pipeline per mode and mix them at its own ratio. ``decode_to_tensors``
    yields :func:`clip_to_tensors` dicts, False yields :class:`ClipSample`.
    """
    return _make_pipeline(urls_or_manifest, ClipTensorDecoder(decode_to_tensors, modes), **options)


def _make_pipeline(
    urls_or_manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    decoder: Any,
    *,
    shuffle: int = 0,
    resampled: bool = False,
    epoch_length: int | None = None,
    split_by_node: bool = True,
    split_by_worker: bool = True,
    seed: int = 0,
    skip_corrupt: bool = False,
    prefetch: int = 1,
) -> SamplePipeline:
    """The pipeline of :func:`make_subject_pipeline` / :func:`make_clip_pipeline`: shards -> ``decoder`` -> samples.

    The keyword arguments are the streaming options documented in :func:`make_subject_pipeline`.
    """
    if shuffle < 0:
        raise ValueError(f"shuffle must be >= 0, got {shuffle}")
    if epoch_length is not None and epoch_length < 1:
        raise ValueError(f"epoch_length must be >= 1 or None, got {epoch_length}")
    if prefetch < 0:
        raise ValueError(f"prefetch must be >= 0, got {prefetch}")
    urls = resolve_shard_urls(urls_or_manifest)
    remote.register_remote_opener()
    stages: list[Any] = []
    if resampled:
        stages.append(webdataset.ResampledShards(urls, seed=seed, deterministic=True))
    else:
        stages.append(webdataset.SimpleShardList(urls))
        if shuffle > 0:
            stages.append(webdataset.detshuffle(bufsize=len(urls), initial=len(urls), seed=seed))
        if split_by_node:
            stages.append(webdataset.split_by_node)
        if split_by_worker:
            stages.append(webdataset.split_by_worker)
    stages.append(_ExpandShards(skip_corrupt, prefetch))
    if shuffle > 0:
        stages.append(webdataset.detshuffle(bufsize=shuffle, initial=min(shuffle, 64), seed=seed + 1))
    stages.append(webdataset.map(decoder))
    stages.append(_drop_none)
    pipeline = SamplePipeline(*stages)
    if epoch_length is not None:
        pipeline = pipeline.with_epoch(epoch_length)
    return pipeline

