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
bake, the workers of a preprocess run) are serialised by a lock (``.manifest.lock``:
:meth:`shards.remote.Folder.lock`, an advisory lock on a local disk, a conditionally created object on
object storage), so none is lost.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shards.remote import Folder, as_folder
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


Location = str | os.PathLike[str] | Folder


def _manifest_location(directory: Location) -> str:
    return as_folder(directory).join(MANIFEST_NAME)


def load_manifest(directory: Location) -> Manifest | None:
    """The manifest of ``directory`` (local path, URL or :class:`~shards.remote.Folder`), or None when there is none."""
    folder = as_folder(directory)
    location = folder.join(MANIFEST_NAME)
    try:
        raw = folder.read_bytes(MANIFEST_NAME)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{location}: manifest is not valid JSON ({exc}); delete it and rebuild") from exc
    return Manifest.from_dict(data, where=location)


def write_manifest(directory: Location, manifest: Manifest) -> str:
    """Write ``manifest.json`` atomically (temp name, then rename); returns its location."""
    return as_folder(directory).write_atomic(
        MANIFEST_NAME, json.dumps(manifest.to_dict(), indent=1, sort_keys=False).encode("utf-8"))


@contextlib.contextmanager
def manifest_lock(directory: Location):
    """Hold an exclusive lock on a folder's manifest, across processes and hosts (:meth:`Folder.lock`)."""
    with as_folder(directory).lock(".manifest.lock"):
        yield


def record_shard(
    directory: Location,
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
    folder = as_folder(directory)
    with manifest_lock(folder):
        manifest = load_manifest(folder)
        if manifest is None:
            manifest = Manifest(schema.name, schema.version)
        elif (manifest.schema_name, manifest.schema_version) != (schema.name, schema.version):
            raise ValueError(
                f"{_manifest_location(folder)} holds schema {manifest.schema_name} v{manifest.schema_version}; "
                f"cannot add shards of {schema.name} v{schema.version} (use another folder)"
            )
        manifest.shards = sorted([e for e in manifest.shards if e.file != entry.file] + [entry], key=lambda e: e.file)
        manifest.extra.update(extra or {})
        manifest.updated = utc_now()
        write_manifest(folder, manifest)
    return manifest


def existing_keys(directory: Location) -> set[str]:
    """Sample keys already written to ``directory`` (empty when there is no manifest).

    The preprocess flow uses this to skip subjects that are done.
    """
    manifest = load_manifest(directory)
    return set() if manifest is None else manifest.keys


def shard_urls(directory: Location) -> list[str]:
    """Locations of the manifest's shards (local paths or URLs), in file-name order.

    Raises ValueError when ``directory`` has no manifest.
    """
    folder = as_folder(directory)
    manifest = load_manifest(folder)
    if manifest is None:
        raise ValueError(f"{folder.location}: no {MANIFEST_NAME}; pass shard files or a glob instead")
    return [folder.join(entry.file) for entry in manifest.shards]


def clean_stale_tmp(directory: Location, prefix: str | None = None) -> list[str]:
    """Remove ``*.tmp`` files (unfinished shards or manifests of a killed run); returns what was removed.

    With ``prefix`` only ``{prefix}-*.tmp`` shards are removed. Call it only when no writer is
    running on the same folder and prefix.
    """
    folder = as_folder(directory)
    pattern = re.compile(
        (re.escape(prefix) + r"-\d+\.tar" if prefix is not None else r".+") + re.escape(TMP_SUFFIX) + "$"
    )
    removed = []
    for name in folder.list(dirs=False):
        if pattern.fullmatch(name):
            folder.remove(name)
            removed.append(name)
            logger.warning("removed stale temporary file %s", folder.join(name))
    return sorted(removed)
