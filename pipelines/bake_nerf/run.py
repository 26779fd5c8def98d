"""Running a bake: read input shards, bake their missing clips into output shards, and the whole-rank :func:`bake`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from pipelines.bake_nerf.baker import ClipBaker
from pipelines.bake_nerf.config import BakeConfig, ClipConfig
from pipelines.bake_nerf.plan import BakePlan, InputShard, plan_bake
from pipelines.bake_nerf.reports import BakeReport, ShardBakeReport, SubjectBakeReport
from pipelines.bake_nerf.specs import (
    BakeInputError,
    ClipSource,
    ClipSpec,
    pose_clip_labels,
    pose_clip_specs,
    segment_clip_id,
    subject_clip_source,
    video_clip_source,
    view_clip_labels,
    view_clip_specs,
)
from shards.manifest import clean_stale_tmp, existing_keys
from shards.reader import ShardReadError, iter_shard_samples
from shards.remote import Folder
from shards.schema import (
    CLIP_SCHEMA,
    SUBJECT_SCHEMA,
    VIDEO_SCHEMA,
    SchemaError,
    SubjectSample,
    VideoSample,
    decode_sample,
    make_clip_key,
    read_schema_tag,
)
from shards.writer import ShardWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _SampleHeader:
    """What a raw input sample will give, read without decoding its images: its clip keys."""

    dataset: str
    subject_id: str
    clip_keys: tuple[str, ...]
    labels: tuple[str, ...]


def _sample_header(raw: Mapping[str, Any], clip: ClipConfig, where: str) -> _SampleHeader:
    """The clip labels/keys a raw subject sample (view clips) or video segment (pose clips) gives."""
    try:
        meta = json.loads(raw["meta.json"])
        dataset, subject_id = str(meta["dataset"]), str(meta["subject_id"])
        schema_name, _ = read_schema_tag(raw, where=where)
    except (KeyError, TypeError, ValueError) as error:
        raise BakeInputError(f"{where}: meta.json is missing or unreadable ({error!r})") from error
    try:
        if schema_name == VIDEO_SCHEMA.name:
            video = json.loads(raw["video.json"])
            segment = int(video["segment"])
            labels = pose_clip_labels(int(video["num_cameras"]), int(video["num_frames"]), clip)
        else:
            segment = None
            spec = SUBJECT_SCHEMA.field("views")
            matches = (SUBJECT_SCHEMA.match_member(suffix) for suffix in raw if not suffix.startswith("__"))
            labels = view_clip_labels(sum(1 for match in matches if match is not None and match[0] is spec), clip)
    except (KeyError, TypeError, ValueError) as error:
        raise BakeInputError(f"{where}: {error}") from error
    ids = tuple(segment_clip_id(segment, label) for label in labels)
    return _SampleHeader(dataset, subject_id, tuple(make_clip_key(dataset, subject_id, i) for i in ids), labels)


def _clip_source_and_specs(raw: Mapping[str, Any], clip: ClipConfig, origin: Mapping[str, Any],
                           where: str) -> tuple[ClipSource, list[ClipSpec]]:
    """Decode a raw input sample into its clip source and every clip spec it gives (view or pose clips)."""
    try:
        sample = decode_sample(raw, where=where)
    except SchemaError as error:
        raise BakeInputError(str(error)) from error
    if isinstance(sample, VideoSample):
        source = video_clip_source(sample, origin=origin)
        return source, pose_clip_specs(source, clip)
    if isinstance(sample, SubjectSample):
        source = subject_clip_source(sample, origin=origin)
        return source, view_clip_specs(source, clip)
    raise BakeInputError(f"{where}: a {sample.schema.name} sample cannot be baked; give subject or video shards")


def _read_subjects(url: str, report: ShardBakeReport) -> Iterator[dict[str, Any]]:
    """Raw samples of ``url``; a read error ends the iteration and is recorded in ``report.error``."""
    try:
        yield from iter_shard_samples(url)
    except ShardReadError as error:
        report.error = str(error)
        logger.warning("input shard unreadable past this point: %s", error)


def skip_input_shard(shard: InputShard, plan: BakePlan) -> ShardBakeReport:
    """Report of an input shard whose clips are all in the output (removes leftovers of a killed run)."""
    clean_stale_tmp(plan.out_dir, shard.prefix)  # a folder that does not exist has nothing to clean
    subjects = [SubjectBakeReport(shard.url, key, "skipped", clips_skipped=plan.view_clips_done.get(key, 0))
                for key in (shard.subject_keys or ())]
    return ShardBakeReport(input_shard=shard.url, prefix=shard.prefix, subjects=subjects, skipped=True)


def bake_input_shard(baker: ClipBaker, shard: InputShard, plan: BakePlan, *,
                     on_subject: Callable[[SubjectBakeReport], None] | None = None) -> ShardBakeReport:
    """Bake the missing clips of one input shard into ``{shard.prefix}-NNNNNN.tar`` shards in ``plan.out_dir``.

    Clips already in the output manifest (``plan.done_keys``) are skipped. An output shard is closed
    every ``shards.subjects_per_shard`` subjects; an exception that is not bad input (a bug, out of
    memory) propagates and removes only the open output shard. ``on_subject`` is called after each subject.
    """
    if shard.done:
        return skip_input_shard(shard, plan)
    config = baker.config
    report = ShardBakeReport(input_shard=shard.url, prefix=shard.prefix)
    Folder(plan.out_dir).makedirs()
    clean_stale_tmp(plan.out_dir, shard.prefix)  # this rank owns the prefix: leftovers of a killed run
    done_keys = plan.done_keys | existing_keys(plan.out_dir)  # fresh: a retried task sees what it closed

    with contextlib.ExitStack() as open_writer:
        writer: ShardWriter | None = None
        subjects_in_writer = 0

        def close_writer() -> None:
            nonlocal writer, subjects_in_writer
            if writer is not None:
                open_writer.close()
                report.output_shards.extend(entry.file for entry in writer.closed_shards)
            writer, subjects_in_writer = None, 0

        for raw in _read_subjects(shard.url, report):
            started = time.perf_counter()
            key = str(raw.get("__key__", "?"))
            where = f"{shard.url} sample {key}"
            try:
                header = _sample_header(raw, config.clip, where)
                labels = header.clip_keys
                todo = [clip_key for clip_key in header.clip_keys if clip_key not in done_keys]
                if not todo:
                    subject = SubjectBakeReport(shard.url, key, "skipped", clips_skipped=len(labels))
                else:
                    source, all_specs = _clip_source_and_specs(
                        raw, config.clip, {"subject_shard": shard.url, "subject_key": key}, where)
                    baker.check_source(source)
                    specs = [spec for spec in all_specs if spec.key(source) in todo]
                    if writer is None:
                        writer = open_writer.enter_context(ShardWriter(
                            plan.out_dir, shard.prefix, CLIP_SCHEMA, max_count=1 << 30,
                            max_size=config.shards.max_size, clean_stale=False, manifest_extra=plan.manifest_extra))
                    for spec in specs:
                        writer.write(baker.bake(source, spec))
                    subjects_in_writer += 1
                    subject = SubjectBakeReport(shard.url, key, "baked", clips_written=len(specs),
                                                clips_skipped=len(labels) - len(specs),
                                                seconds=time.perf_counter() - started)
            except BakeInputError as error:
                logger.warning("subject not baked: %s", error)
                subject = SubjectBakeReport(shard.url, key, "failed", error=str(error),
                                            seconds=time.perf_counter() - started)
            report.subjects.append(subject)
            if subjects_in_writer >= config.shards.subjects_per_shard:
                close_writer()
            if on_subject is not None:
                on_subject(subject)
        close_writer()
    return report


def bake(subjects: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
         checkpoint: str | os.PathLike[str], config: BakeConfig = BakeConfig(), *, rank: int | None = None,
         world_size: int | None = None, force_mixed: bool = False, progress: bool | None = None) -> BakeReport:
    """Bake this rank's share of ``subjects`` into clip shards in ``out_dir`` (see :mod:`pipelines.bake_nerf`).

    ``progress``: tqdm bar over subjects (None: only on a terminal). Returns the report; problems (bad
    input) are in ``report.problems``, the rest completed. Other errors propagate.
    """
    started = time.perf_counter()
    plan = plan_bake(subjects, out_dir, checkpoint, config, rank=rank, world_size=world_size, force_mixed=force_mixed)
    report = BakeReport(rank=plan.rank, world_size=plan.world_size)
    bar = tqdm(total=plan.known_subjects, desc=f"bake rank {plan.rank}", unit="subject",
               disable=None if progress is None else not progress)
    for shard in plan.shards:
        if shard.done:
            report.shards.append(skip_input_shard(shard, plan))
    with bar, (ClipBaker.open(plan.checkpoint, config) if plan.todo else contextlib.nullcontext()) as baker:
        for shard in plan.todo:
            report.shards.append(bake_input_shard(baker, shard, plan, on_subject=lambda _: bar.update(1)))
        report.frames = baker.timings.frames if baker is not None else 0
    report.seconds = time.perf_counter() - started
    logger.info("%s", report.summary())
    return report
