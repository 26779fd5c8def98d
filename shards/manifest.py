"""``manifest.json``: what a shard folder holds, written atomically and merged on every update.

Layout (JSON)::

    {"format": "gas-shards-manifest", "format_version": 1,
     "schema": {"name": "subject", "version": 1},
     "created": "...Z", "updated": "...Z",
     "totals": {"shards": 2, "samples": 7, "size_bytes": 123456},
     "datasets": {"thuman21": 5, "2k2k": 2},
     "shards": [{"file": "subjects-000000.tar", "count": 4, "size_bytes": ..., "sha256": "...",
                 "keys": [...], "datasets": {...}, "created": "...Z"}, ...]}

A shard appears in the manifest only once it is closed and renamed to its final ``.tar`` name,
so the manifest never lists a partial shard. Folders may be local paths or fsspec URLs.

``extra`` holds what produced the folder (e.g. the NeRF checkpoint of a bake); writers merge their
entries into it. On a local folder, updates from several processes (the ranks of a distributed
bake) are serialised by an advisory lock (``.manifest.lock``), so none is lost; on object storage
each writer process should use its own folder, or ranks write disjoint prefixes into one folder
and accept that the last writer's manifest wins (``gas-shards verify`` names unlisted shards).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shards.remote import filesystem, is_remote, join_url, write_bytes_atomic
from shards.schema import SampleSchema

__all__ = [
    "MANIFEST_NAME",
    "TMP_SUFFIX",
    "Manifest",
    "ShardEntry",
    "clean_stale_tmp",
    "existing_keys",
    "load_manifest",
    "manifest_lock",
    "record_shard",
    "shard_urls",
    "utc_now",
    "write_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
#: Suffix of a shard (or manifest) while it is being written.
TMP_SUFFIX = ".tmp"
_FORMAT = "gas-shards-manifest"
_FORMAT_VERSION = 1


def utc_now() -> str:
    """Current UTC time as ISO 8601 with a ``Z`` suffix (seconds precision)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ShardEntry:
    """One closed shard: file name (relative to the folder), sample count, size in bytes, sha256, keys."""

    file: str
    count: int
    size_bytes: int
    sha256: str
    keys: tuple[str, ...]
    datasets: dict[str, int] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "count": self.count,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "keys": list(self.keys),
            "datasets": dict(self.datasets),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardEntry:
        return cls(
            file=str(data["file"]),
            count=int(data["count"]),
            size_bytes=int(data["size_bytes"]),
            sha256=str(data["sha256"]),
            keys=tuple(str(k) for k in data["keys"]),
            datasets={str(k): int(v) for k, v in data.get("datasets", {}).items()},
            created=str(data.get("created", "")),
        )


@dataclass
class Manifest:
    """All closed shards of one folder, for one schema name and version."""

    schema_name: str
    schema_version: int
    shards: list[ShardEntry] = field(default_factory=list)
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_samples(self) -> int:
        return sum(entry.count for entry in self.shards)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.shards)

    @property
    def dataset_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for entry in self.shards:
            counts.update(entry.datasets)
        return dict(sorted(counts.items()))

    @property
    def keys(self) -> set[str]:
        return {key for entry in self.shards for key in entry.keys}

    def entry(self, file: str) -> ShardEntry | None:
        return next((entry for entry in self.shards if entry.file == file), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "schema": {"name": self.schema_name, "version": self.schema_version},
            "created": self.created,
            "updated": self.updated,
            "totals": {"shards": len(self.shards), "samples": self.total_samples, "size_bytes": self.total_bytes},
            "datasets": self.dataset_counts,
            "extra": self.extra,
            "shards": [entry.to_dict() for entry in self.shards],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "manifest") -> Manifest:
        if data.get("format") != _FORMAT:
            raise ValueError(f"{where}: not a gas-shards manifest (format={data.get('format')!r})")
        if int(data.get("format_version", 0)) != _FORMAT_VERSION:
            raise ValueError(f"{where}: manifest format_version {data.get('format_version')} is not supported")
        try:
            return cls(
                schema_name=str(data["schema"]["name"]),
                schema_version=int(data["schema"]["version"]),
                shards=[ShardEntry.from_dict(item) for item in data["shards"]],
                created=str(data.get("created", "")),
                updated=str(data.get("updated", "")),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: malformed manifest ({exc!r}); delete it and rebuild from the shards") from exc


def _manifest_location(directory: str | os.PathLike[str]) -> str:
    return join_url(directory, MANIFEST_NAME)


def load_manifest(directory: str | os.PathLike[str]) -> Manifest | None:
    """The manifest of ``directory`` (local path or URL), or None when there is none."""
    location = _manifest_location(directory)
    fs, path = filesystem(location)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as stream:
        raw = stream.read()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{location}: manifest is not valid JSON ({exc}); delete it and rebuild") from exc
    return Manifest.from_dict(data, where=location)


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> str:
    """Write ``manifest.json`` atomically (temp name, then rename); returns its location."""
    location = _manifest_location(directory)
    write_bytes_atomic(location, json.dumps(manifest.to_dict(), indent=1, sort_keys=False).encode("utf-8"))
    return location


@contextlib.contextmanager
def manifest_lock(directory: str | os.PathLike[str]):
    """Hold an exclusive advisory lock on a local folder's manifest (no-op for remote folders)."""
    if is_remote(directory):
        yield
        return
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(os.fspath(directory), ".manifest.lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def record_shard(
    directory: str | os.PathLike[str],
    entry: ShardEntry,
    schema: SampleSchema,
    *,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Add (or replace, by file name) one closed shard in the folder's manifest, re-reading it first.

    ``extra`` entries are merged into the manifest's ``extra``. Concurrent writers on one local
    folder are serialised by :func:`manifest_lock`. Raises ValueError when the folder's manifest is
    for another schema name or version.
    """
    with manifest_lock(directory):
        manifest = load_manifest(directory)
        if manifest is None:
            manifest = Manifest(schema.name, schema.version)
        elif (manifest.schema_name, manifest.schema_version) != (schema.name, schema.version):
            raise ValueError(
                f"{_manifest_location(directory)} holds schema {manifest.schema_name} v{manifest.schema_version}; "
                f"cannot add shards of {schema.name} v{schema.version} (use another folder)"
            )
        manifest.shards = sorted([e for e in manifest.shards if e.file != entry.file] + [entry], key=lambda e: e.file)
        manifest.extra.update(extra or {})
        manifest.updated = utc_now()
        write_manifest(directory, manifest)
    return manifest


def existing_keys(directory: str | os.PathLike[str]) -> set[str]:
    """Sample keys already written to ``directory`` (empty when there is no manifest).

    The preprocess flow uses this to skip subjects that are done.
    """
    manifest = load_manifest(directory)
    return set() if manifest is None else manifest.keys


def shard_urls(directory: str | os.PathLike[str]) -> list[str]:
    """Locations of the manifest's shards (local paths or URLs), in file-name order.

    Raises ValueError when ``directory`` has no manifest.
    """
    manifest = load_manifest(directory)
    if manifest is None:
        raise ValueError(f"{directory}: no {MANIFEST_NAME}; pass shard files or a glob instead")
    return [join_url(directory, entry.file) for entry in manifest.shards]


def clean_stale_tmp(directory: str | os.PathLike[str], prefix: str | None = None) -> list[str]:
    """Remove ``*.tmp`` files (unfinished shards or manifests of a killed run); returns what was removed.

    With ``prefix`` only ``{prefix}-*.tmp`` shards are removed. Call it only when no writer is
    running on the same folder and prefix.
    """
    fs, root = filesystem(directory)
    if not fs.exists(root):
        return []
    pattern = re.compile(
        (re.escape(prefix) + r"-\d+\.tar" if prefix is not None else r".+") + re.escape(TMP_SUFFIX) + "$"
    )
    removed = []
    for path in fs.ls(root, detail=False):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if pattern.fullmatch(name):
            fs.rm(path)
            removed.append(name)
            logger.warning("removed stale temporary file %s", join_url(directory, name))
    return sorted(removed)
