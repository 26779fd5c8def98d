"""Atomic shard writer: ``{prefix}-{index:06d}.tar`` through a ``.tmp`` name, plus ``manifest.json``.

Each shard is written as ``{prefix}-{index:06d}.tar.tmp`` and renamed to its final name when it is
closed; only then is it added to the manifest. A crash (or an exception inside the ``with``
block) removes the temp file of the unfinished shard; shards closed before stay, and so does their
manifest entry. A later run continues the numbering after the shards already present and refuses
keys that are already in the manifest (use :func:`shards.manifest.existing_keys` to skip them).

Samples are written with webdataset's ``TarWriter`` (members ``{key}.{suffix}``, mode 0444), so the
shards are plain tar files readable by ``tar`` and by ``webdataset.WebDataset``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import IO, Any

import webdataset

from shards.manifest import TMP_SUFFIX, ShardEntry, clean_stale_tmp, load_manifest, record_shard, utc_now
from shards.remote import Folder, as_folder
from shards.schema import SUBJECT_SCHEMA, ClipSample, SampleSchema, SchemaError, SubjectSample

__all__ = ["ShardWriter", "tar_member_bytes", "validate_key"]

logger = logging.getLogger(__name__)

_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_TAR_BLOCK = 512


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid sample key (``[A-Za-z0-9_-]+``: no dots, no slashes), else ValueError."""
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise ValueError(
            f"sample key {key!r} must match [A-Za-z0-9_-]+ (webdataset keys end at the first dot); "
            "build it with shards.schema.make_key"
        )
    return key


def tar_member_bytes(payload_size: int) -> int:
    """Bytes one tar member of ``payload_size`` bytes takes: a 512-byte header plus the data padded to 512."""
    return _TAR_BLOCK + -(-payload_size // _TAR_BLOCK) * _TAR_BLOCK


class _HashingStream:
    """Write-through wrapper that counts bytes and computes the sha256 of everything written."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.discard = False

    def write(self, data: bytes) -> int:
        if self.discard:  # the shard is being abandoned: drop what tarfile still flushes
            return len(data)
        self.sha256.update(data)
        self.size += len(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()


class ShardWriter:
    """Write samples of one schema into size- and count-limited shards in ``out_dir``.

    Args:
        out_dir: local folder, fsspec URL or :class:`~shards.remote.Folder` (created if missing).
        prefix: shard name prefix, ``[A-Za-z0-9_-]+`` (``subjects`` -> ``subjects-000000.tar``).
        schema: the schema every sample must follow (default :data:`SUBJECT_SCHEMA`).
        max_count: most samples per shard (>= 1).
        max_size: most bytes of tar members per shard (headers and padded data); a shard is closed
            before a sample that would exceed it, so only a single sample larger than ``max_size``
            makes a bigger shard.
        clean_stale: remove ``{prefix}-*.tar.tmp`` files of a killed run on entry. Only one writer
            may use a folder and prefix at a time; writers with different prefixes may share a
            local folder (the manifest updates are locked).
        manifest_extra: entries merged into the manifest's ``extra`` with every closed shard (what
            produced the folder, e.g. ``{"nerf_checkpoint": ...}``); JSON values.

    Use as a context manager; :meth:`write` takes a :class:`SubjectSample` (or any object with
    ``schema``, ``key`` and ``fields()``) or a mapping of tar members ``{"__key__": key, suffix: bytes}``.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str] | Folder,
        prefix: str,
        schema: SampleSchema = SUBJECT_SCHEMA,
        *,
        max_count: int = 1000,
        max_size: int = 1 << 30,
        clean_stale: bool = True,
        manifest_extra: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not _KEY_PATTERN.fullmatch(prefix):
            raise ValueError(f"prefix must match [A-Za-z0-9_-]+, got {prefix!r}")
        if int(max_count) < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        if int(max_size) < 1:
            raise ValueError(f"max_size must be >= 1 byte, got {max_size}")
        self.folder = as_folder(out_dir)
        self.out_dir = self.folder.location
        self.prefix = prefix
        self.schema = schema
        self.max_count = int(max_count)
        self.max_size = int(max_size)
        self.clean_stale = clean_stale
        self.manifest_extra = dict(manifest_extra or {})
        json.dumps(self.manifest_extra)  # fails early (TypeError) on values that are not JSON
        self._next_index = 0
        self._known_keys: set[str] = set()
        self._entered = False
        self._reset_shard_state()
        #: Entries of the shards closed by this writer, in order.
        self.closed_shards: list[ShardEntry] = []

    # ------------------------------------------------------------------ context
    def __enter__(self) -> ShardWriter:
        self.folder.makedirs()
        if self.clean_stale:
            clean_stale_tmp(self.folder, self.prefix)
        manifest = load_manifest(self.folder)
        if manifest is not None and (manifest.schema_name, manifest.schema_version) != (
            self.schema.name,
            self.schema.version,
        ):
            raise ValueError(
                f"{self.out_dir} holds shards of schema {manifest.schema_name} v{manifest.schema_version}, "
                f"not {self.schema.name} v{self.schema.version}; write to another folder"
            )
        self._known_keys = set() if manifest is None else manifest.keys
        indices = [self._index_of(entry.file) for entry in (manifest.shards if manifest else [])]
        indices += [self._index_of(name) for name in self.folder.list()]
        valid = [i for i in indices if i is not None]
        self._next_index = max(valid) + 1 if valid else 0
        self._entered = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._entered = False
        if exc_type is None:
            self._close_shard()
        else:
            self._abort_shard()

    # ------------------------------------------------------------------ writing
    def write(self, sample: SubjectSample | ClipSample | Mapping[str, Any]) -> str:
        """Write one sample; returns its key. Raises :class:`SchemaError` / ValueError on bad samples."""
        if not self._entered:
            raise ValueError("ShardWriter.write must be called inside `with ShardWriter(...) as writer:`")
        key, members = self._encode(sample)
        if key in self._known_keys:
            raise ValueError(f"sample key {key!r} is already in {self.out_dir}; skip it (shards.manifest.existing_keys)")
        sample_bytes = sum(tar_member_bytes(len(data)) for data in members.values())
        if self._tar is not None and (
            self._count >= self.max_count or self._size + sample_bytes > self.max_size
        ):
            self._close_shard()
        if self._tar is None:
            self._open_shard()
        self._tar.write({"__key__": key, **members})
        self._count += 1
        self._size += sample_bytes
        self._keys.append(key)
        self._datasets[self._dataset_of(members)] += 1
        self._known_keys.add(key)
        return key

    def _encode(self, sample: SubjectSample | ClipSample | Mapping[str, Any]) -> tuple[str, dict[str, bytes]]:
        if isinstance(sample, Mapping):
            if "__key__" not in sample:
                raise ValueError("a raw sample mapping needs '__key__'")
            key = validate_key(sample["__key__"])
            members = {k: bytes(v) for k, v in sample.items() if not k.startswith("__")}
            self.schema.decode_members(members, where=f"sample {key}")  # validates; raises SchemaError
            return key, members
        sample_schema = getattr(sample, "schema", None)
        if sample_schema is not self.schema:
            name = getattr(sample_schema, "name", type(sample).__name__)
            raise SchemaError(f"sample of schema {name!r} given to a writer for {self.schema.name!r}")
        key = validate_key(sample.key)
        return key, self.schema.encode_fields(sample.fields(), where=f"sample {key}")

    @staticmethod
    def _dataset_of(members: Mapping[str, bytes]) -> str:
        try:
            return str(json.loads(members["meta.json"]).get("dataset", "unknown"))
        except (KeyError, ValueError, AttributeError):
            return "unknown"

    # ------------------------------------------------------------------ shard lifecycle
    def _shard_name(self, index: int) -> str:
        return f"{self.prefix}-{index:06d}.tar"

    def _index_of(self, name: str) -> int | None:
        match = re.fullmatch(re.escape(self.prefix) + r"-(\d+)\.tar", name)
        return int(match.group(1)) if match else None

    def _reset_shard_state(self) -> None:
        self._tar: webdataset.TarWriter | None = None
        self._stream: IO[bytes] | None = None
        self._hashing: _HashingStream | None = None
        self._temp_name: str | None = None
        self._final_name: str | None = None
        self._count = 0
        self._size = 0
        self._keys: list[str] = []
        self._datasets: Counter[str] = Counter()

    def _open_shard(self) -> None:
        name = self._shard_name(self._next_index)
        if self.folder.exists(name):
            raise ValueError(f"{self.folder.join(name)} already exists; refusing to overwrite a shard")
        self._final_name, self._temp_name = name, name + TMP_SUFFIX
        self._stream = self.folder.open(self._temp_name, "wb")
        self._hashing = _HashingStream(self._stream)
        self._tar = webdataset.TarWriter(self._hashing, encoder=False, user="gas", group="gas")
        self._next_index += 1

    def _close_shard(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self.folder.finish(self._stream)
        name = self._final_name
        self.folder.rename(self._temp_name, name)
        entry = ShardEntry(
            file=name,
            count=self._count,
            size_bytes=self._hashing.size,
            sha256=self._hashing.sha256.hexdigest(),
            keys=tuple(self._keys),
            datasets=dict(sorted(self._datasets.items())),
            created=utc_now(),
        )
        record_shard(self.folder, entry, self.schema, extra=self.manifest_extra)
        self.closed_shards.append(entry)
        logger.info("closed shard %s: %d samples, %d bytes", self.folder.join(name), entry.count, entry.size_bytes)
        self._reset_shard_state()

    def _abort_shard(self) -> None:
        if self._tar is None:
            return
        temp_name = self._temp_name
        self._hashing.discard = True
        try:
            self._tar.close()
            self.folder.abandon(self._stream)  # object storage: the upload is aborted, nothing is published
        finally:
            self.folder.remove(temp_name)
            logger.warning("removed unfinished shard %s (%d samples not kept)", self.folder.join(temp_name), self._count)
            self._known_keys.difference_update(self._keys)
            self._reset_shard_state()
