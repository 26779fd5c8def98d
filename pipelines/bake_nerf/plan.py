"""Planning a bake: this rank's input shards, their output prefixes and the clips the output already holds."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.bake_nerf.checkpoint import CheckpointInfo, _checkpoint_manifest_extra, describe_checkpoint
from pipelines.bake_nerf.config import BakeConfig, resolve_rank
from shards.manifest import load_manifest
from shards.reader import resolve_shard_urls

logger = logging.getLogger(__name__)

_PREFIX_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def output_prefix(input_url: str, prefix: str = "clips") -> str:
    """Output shard prefix of an input shard: ``.../subjects-000003.tar`` -> ``clips-subjects-000003``."""
    name = input_url.rstrip("/").rsplit("/", 1)[-1]
    stem = name[: -len(".tar")] if name.endswith(".tar") else name
    cleaned = _PREFIX_UNSAFE.sub("-", stem).strip("-")
    if not cleaned:
        raise ValueError(f"input shard {input_url!r} has no usable name for an output prefix")
    return f"{prefix}-{cleaned}"


@dataclass(frozen=True)
class InputShard:
    """One input shard of this rank: its URL, its output prefix and (when its manifest lists them) its
    subject keys; ``done`` when the output already holds every clip of every listed subject."""

    url: str
    prefix: str
    subject_keys: tuple[str, ...] | None = None
    done: bool = False


@dataclass(frozen=True)
class BakePlan:
    """What one rank will do: its input shards, the checkpoint, the clips already in the output."""

    rank: int
    world_size: int
    out_dir: str
    total_input_shards: int
    shards: tuple[InputShard, ...]
    checkpoint: CheckpointInfo
    manifest_extra: Mapping[str, Any]
    done_keys: frozenset[str]
    view_clips_done: Mapping[str, int] = field(default_factory=dict)  # subject key -> view clips in the output

    @property
    def todo(self) -> tuple[InputShard, ...]:
        return tuple(shard for shard in self.shards if not shard.done)

    @property
    def known_subjects(self) -> int | None:
        """Subjects in this rank's unfinished input shards (None when a shard's manifest is missing)."""
        counts = [len(shard.subject_keys) if shard.subject_keys is not None else None for shard in self.todo]
        return None if any(count is None for count in counts) else sum(counts)  # type: ignore[arg-type]


def _input_subject_keys(urls: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Subject keys of each input shard, from the manifests of their folders (shards not listed are absent)."""
    keys: dict[str, tuple[str, ...]] = {}
    folders: dict[str, list[str]] = {}
    for url in urls:
        folder, _, name = url.rstrip("/").rpartition("/")
        folders.setdefault(folder or ".", []).append(url)
    for folder, members in folders.items():
        try:
            manifest = load_manifest(folder)
        except ValueError as error:
            logger.warning("ignoring unreadable manifest of %s: %s", folder, error)
            continue
        if manifest is None:
            continue
        for url in members:
            entry = manifest.entry(url.rstrip("/").rsplit("/", 1)[-1])
            if entry is not None:
                keys[url] = entry.keys
    return keys


def _view_clips_per_subject(done_keys: frozenset[str]) -> Counter[str]:
    """Number of view clips each subject key has among ``done_keys`` (clip key = ``{subject key}__{label}``)."""
    counts: Counter[str] = Counter()
    for key in done_keys:
        subject_key, _, label = key.rpartition("__")
        if subject_key and label.startswith("view"):
            counts[subject_key] += 1
    return counts


def plan_bake(subjects: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
              checkpoint: str | os.PathLike[str] | CheckpointInfo, config: BakeConfig, *, rank: int | None = None,
              world_size: int | None = None, force_mixed: bool = False) -> BakePlan:
    """This rank's share of the bake.

    ``subjects``: subject shards (folder, manifest, glob, files; see :func:`shards.reader.resolve_shard_urls`);
    input shard ``i`` (in name order) goes to rank ``i % world_size``. ``rank`` / ``world_size`` default to
    torchrun's ``RANK`` / ``WORLD_SIZE``. Raises ValueError when the output folder holds clips of another
    NeRF checkpoint (unless ``force_mixed``) or two input shards would share an output prefix.
    """
    rank, world_size = resolve_rank(rank, world_size)
    out_dir = os.fspath(out_dir)
    info = checkpoint if isinstance(checkpoint, CheckpointInfo) else describe_checkpoint(checkpoint)
    extra = _checkpoint_manifest_extra(out_dir, info, force_mixed)
    urls = sorted(resolve_shard_urls(subjects), key=lambda url: url.rstrip("/").rsplit("/", 1)[-1])
    prefixes = [output_prefix(url, config.shards.prefix) for url in urls]
    clashes = sorted({p for p in prefixes if prefixes.count(p) > 1})
    if clashes:
        raise ValueError(f"input shards in different folders share names, so their output prefixes {clashes} would "
                         "collide; bake each folder into its own output folder")
    manifest = load_manifest(out_dir)
    done_keys = frozenset(manifest.keys) if manifest is not None else frozenset()
    listed = _input_subject_keys(urls)
    clips_per_subject = _view_clips_per_subject(done_keys)
    mine = []
    for index in range(rank, len(urls), world_size):
        url = urls[index]
        subject_keys = listed.get(url)
        done = subject_keys is not None and all(
            clips_per_subject[key] >= config.clip.num_references for key in subject_keys)
        mine.append(InputShard(url=url, prefix=prefixes[index], subject_keys=subject_keys, done=done))
    return BakePlan(rank=rank, world_size=world_size, out_dir=out_dir, total_input_shards=len(urls),
                    shards=tuple(mine), checkpoint=info, manifest_extra=extra, done_keys=done_keys,
                    view_clips_done=dict(clips_per_subject))
