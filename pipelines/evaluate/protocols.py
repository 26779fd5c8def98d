"""The protocol's clips: which clips of a split's subjects are scored, and which frames (:func:`plan_evaluation`)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipelines.evaluate.config import EvalConfig
from pipelines.splits import TestSplit, orthogonal_views, read_split
from shards.reader import clip_to_tensors, iter_shard_samples, resolve_shard_urls
from shards.schema import decode_clip

logger = logging.getLogger(__name__)


_MODE_OF_TASK = {"novel_view": "view", "novel_pose": "pose"}


@dataclass(frozen=True)
class ClipRef:
    """One clip to score: shard ``url`` and sample ``key``, ``subject_id``, ``reference_index``,
    ``num_frames`` (frames to generate: frame 0 up to the last scored one), ``scored_frames`` (their
    positions in the clip), ``digest`` (sha256 over the sample's shard members)."""

    key: str
    url: str
    subject_id: str
    reference_index: int
    num_frames: int
    scored_frames: tuple[int, ...]
    digest: str


@dataclass(frozen=True)
class EvalPlan:
    """The clips of one dataset's test split that the protocol scores, and the protocol used.

    ``mask_background`` / ``background``: background removal with the ground-truth masks;
    ``input_views`` (novel views) / ``frames_after_reference`` (novel poses); ``missing_subjects``:
    split ids without a matching clip; ``notes``: protocol remarks recorded with the table.
    """

    dataset: str
    task: Literal["novel_view", "novel_pose"]
    split_path: str
    split_count: int
    clips: tuple[ClipRef, ...]
    mask_background: bool
    background: float
    input_views: tuple[int, ...] = ()
    frames_after_reference: int | None = None
    missing_subjects: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    clip_sources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``<dataset>_<task>``: the stem of the table files and the cache folder."""
        return f"{self.dataset}_{self.task}"

    def protocol_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"task": self.task, "mask_background": self.mask_background,
                                    "background": self.background if self.mask_background else None}
        if self.task == "novel_view":
            settings["input_views"] = list(self.input_views)
        else:
            settings["frames_after_reference"] = self.frames_after_reference
        return settings


def _clip_digest(raw: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    for suffix in sorted(name for name in raw if not name.startswith("__")):
        digest.update(suffix.encode() + b"\0")
        digest.update(hashlib.sha256(raw[suffix]).digest())
    return digest.hexdigest()


def _scored_positions(meta: Mapping[str, Any], task: str, frames_after_reference: int | None) -> tuple[int, ...]:
    frame_indices = [int(i) for i in meta["frame_indices"]]
    if task == "novel_view":
        return tuple(range(len(frame_indices)))
    if frames_after_reference is None:
        raise ValueError("frames_after_reference is needed for novel-pose clips")
    # a pose clip's frame 0 is the reference frame and the others follow it in time (pipelines.bake_nerf)
    return tuple(range(1, min(len(frame_indices), int(frames_after_reference) + 1)))


def plan_evaluation(clips: str | Path | Sequence[str | Path], split_path: str | Path, config: EvalConfig) -> EvalPlan:
    """The clips of ``split_path``'s subjects in the clip shards ``clips`` that its protocol scores.

    Args:
        clips: clip shards (folder, manifest, glob, ``.tar`` files or a list of them).
        split_path: a split file written by :func:`pipelines.splits.write_split` (a plain ``.txt``
            id list needs the ``# dataset:`` header line).
        config: the protocol defaults and ``protocol.max_clips``.

    Raises:
        ValueError: no clip of the split found (naming the dataset, task and sources), or a bad split.
    """
    split: TestSplit = read_split(Path(split_path))
    protocol = dict(split.protocol)
    task = split.task
    mode = _MODE_OF_TASK[task]
    defaults = config.protocol
    if defaults.mask_background is not None:
        mask_background = bool(defaults.mask_background)
    elif "mask_background" in protocol:
        mask_background = bool(protocol["mask_background"])
    else:
        mask_background = split.dataset in defaults.mask_background_datasets
    background = float(protocol.get("background", defaults.background)) if defaults.mask_background is None \
        else float(defaults.background)
    notes: list[str] = []
    input_views: tuple[int, ...] = ()
    frames_after: int | None = None
    if task == "novel_view":
        if "input_views" in protocol:
            input_views = tuple(int(v) for v in protocol["input_views"])
        else:
            input_views = orthogonal_views(int(protocol.get("num_views", 20)))
            notes.append(f"split file gives no input_views; used the orthogonal views {input_views}")
    else:
        frames_after = int(protocol.get("frames_after_reference", defaults.frames_after_reference))
    wanted_subjects = set(split.ids)
    urls = resolve_shard_urls([str(c) for c in clips] if isinstance(clips, (list, tuple)) else str(clips))
    chosen: dict[str, ClipRef] = {}
    short: list[str] = []
    for url in urls:
        for raw in iter_shard_samples(url):
            if "meta.json" not in raw:
                continue
            meta = json.loads(raw["meta.json"])
            if str(meta.get("dataset")) != split.dataset or str(meta.get("subject_id")) not in wanted_subjects:
                continue
            if meta.get("mode") != mode:
                continue
            subject, reference = str(meta["subject_id"]), int(meta["reference_index"])
            if mode == "pose":  # video clips name their reference by its frame number in the video
                reference = int(meta.get("extra", {}).get("reference_frame", reference))
            if task == "novel_view" and reference not in input_views:
                continue
            if task == "novel_pose" and subject in split.reference_frames and split.reference_frames[subject] != reference:
                continue
            positions = _scored_positions(meta, task, frames_after)
            expected_views = protocol.get("num_views")
            if task == "novel_view" and expected_views is not None and len(positions) != int(expected_views):
                notes.append(f"clip {raw['__key__']} has {len(positions)} frames, the protocol scores "
                             f"{expected_views} views")
            if not positions:
                notes.append(f"clip {raw['__key__']} holds no frame the protocol scores; skipped")
                continue
            if task == "novel_pose" and len(positions) < int(frames_after):
                short.append(f"{raw['__key__']} ({len(positions)} of {frames_after})")
            key = str(raw["__key__"])
            if key in chosen:
                continue
            chosen[key] = ClipRef(key=key, url=url, subject_id=subject, reference_index=reference,
                                  num_frames=max(positions) + 1, scored_frames=positions, digest=_clip_digest(raw))
    if short:
        notes.append("pose clips with fewer scored frames than the protocol asks: " + ", ".join(short))
    if not chosen:
        raise ValueError(f"no {mode} clip of the {split.dataset} test split ({len(split.ids)} ids, task {task}) "
                         f"found in {urls[:3]}{' ...' if len(urls) > 3 else ''}")
    ordered = sorted(chosen.values(), key=lambda ref: ref.key)
    if defaults.max_clips is not None and len(ordered) > int(defaults.max_clips):
        notes.append(f"protocol.max_clips={defaults.max_clips}: scored {defaults.max_clips} of {len(ordered)} clips")
        ordered = ordered[:int(defaults.max_clips)]
    found = {ref.subject_id for ref in chosen.values()}
    missing = tuple(i for i in split.ids if i not in found)
    if missing:
        logger.warning("%s %s: %d of %d test subjects have no clip: %s", split.dataset, task, len(missing),
                       len(split.ids), ", ".join(missing[:10]))
    return EvalPlan(dataset=split.dataset, task=task, split_path=str(split_path), split_count=len(split.ids),
                    clips=tuple(ordered), mask_background=mask_background, background=background,
                    input_views=input_views, frames_after_reference=frames_after, missing_subjects=missing,
                    notes=tuple(notes), clip_sources=tuple(urls))


def _read_clips(plan: EvalPlan, refs: Sequence[ClipRef]) -> Iterator[tuple[ClipRef, dict[str, Any]]]:
    """Decode the clips ``refs`` (shard by shard, in the plan's order within each shard)."""
    by_url: dict[str, dict[str, ClipRef]] = {}
    for ref in refs:
        by_url.setdefault(ref.url, {})[ref.key] = ref
    for url, wanted in by_url.items():
        for raw in iter_shard_samples(url):
            ref = wanted.get(str(raw["__key__"]))
            if ref is None:
                continue
            sample = decode_clip({k: v for k, v in raw.items() if not k.startswith("__")},
                                 where=f"shard {url} sample {ref.key}")
            yield ref, clip_to_tensors(sample)
