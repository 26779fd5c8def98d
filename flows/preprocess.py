"""Prefect flow ``preprocess``: raw data -> subject shards (3D scans) or video shards (videos).

* scans (``thuman``, ``2k2k``): 20-view renders -> body-model fit -> ``subject`` samples;
* videos (``tiktok``, ``internet``, ``mvhumannet``): masks, per-frame SMPL and cameras -> ``video``
  segments (:mod:`pipelines.preprocess_video`).

Deployments ``preprocess/thuman``, ``preprocess/2k2k``, ``preprocess/tiktok`` and
``preprocess/mvhumannet`` are declared in ``prefect.yaml``. The flow only wires steps from
:mod:`pipelines.preprocess` and :mod:`pipelines.preprocess_video`; every step is a plain function
with its own tests. Granularity: one task per subject or video (never one per frame) and one task
that packs what was staged into shards.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.datasets.common import SubjectRef
from pipelines.datasets.errors import is_bad_input
from pipelines.preprocess import (
    PackReport,
    PreprocessConfig,
    SubjectReport,
    pack_staged_subjects,
    plan_subjects,
    preprocess_subject,
    table_value,
)
from pipelines.cluster import check_dask_scheduler, check_out_dir
from shards.remote import Folder
from pipelines.preprocess_video import VideoReport, is_video_dataset, plan_videos, preprocess_video


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry transient failures only: a subject whose files are bad (a ``ScanReadError``, or any
    ``ValueError``: the same input fails the same way again, see
    :func:`pipelines.datasets.errors.is_bad_input`) fails at once, on its first run."""
    try:
        state.result()
    except Exception as error:  # noqa: BLE001 - anything but bad input may be transient (I/O, memory)
        return not is_bad_input(error)
    return False


@task(name="preprocess-subject", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_unless_bad_input,
      task_run_name="{ref.dataset}/{ref.subject_id}")
def preprocess_subject_task(ref: SubjectRef, config: PreprocessConfig, staging_dir: Path | str,
                            rejected_dir: Path | str | None = None) -> SubjectReport:
    report = preprocess_subject(ref, config, staging_dir, rejected_dir)
    return dataclasses.replace(report, worker=_worker_name())


def _worker_name() -> str:
    """The Dask worker running this task (its address), else ``host:pid`` of this process."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


@task(name="preprocess-video", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_unless_bad_input,
      task_run_name="{ref.dataset}/{ref.subject_id}")
def preprocess_video_task(ref: Any, config: PreprocessConfig, staging_dir: Path) -> VideoReport:
    report = preprocess_video(ref, config, staging_dir)
    return dataclasses.replace(report, worker=_worker_name())


@task(name="pack-shards")
def pack_task(staging_dir: Path | str, out_dir: Path | str, config: PreprocessConfig) -> PackReport:
    return pack_staged_subjects(staging_dir, out_dir, config)


@flow(name="preprocess", log_prints=False)
def preprocess(
    dataset: str,
    raw_root: str,
    out_dir: str,
    config: PreprocessConfig = PreprocessConfig(),
    limit: int | None = None,
    dask_address: str | None = None,
) -> Any:
    """Preprocess every subject of ``dataset`` found under ``raw_root`` into shards in ``out_dir``.

    Subjects already listed in ``out_dir``'s manifest are skipped, so a re-run only does what is
    missing. Bad subjects are reported failed (file and reason) and the others complete; the run ends
    Failed when any subject failed, after the good ones are written. Subjects outside the quality
    gates (``config.gates``) are reported rejected (gate and value), kept in ``out_dir/_rejected`` and
    not packed; the run still completes. The table artifact lists every subject's status, error,
    timings and quality values.

    ``out_dir`` is a local folder or a URL (``s3://bucket/subjects``). ``dask_address``
    (``tcp://host:8786``): run the subjects on that Dask cluster (``prefect-dask``) instead of
    ``config.workers`` threads here; staging lives in ``out_dir``, so the workers need the raw data
    and ``out_dir``'s storage, not this host's disk, and the table names the worker of each subject.
    Video datasets run on the cluster too, one task per video; their staging is a folder on a disk,
    so ``raw_root`` and ``out_dir`` must then be on a disk every worker mounts at the same path.
    The scheduler and the storage are checked first: an unreachable scheduler, a missing bucket or
    bad credentials end the run before anything is written.
    """
    logger = get_run_logger()
    if dask_address:
        check_dask_scheduler(dask_address)
    check_out_dir(out_dir)
    if is_video_dataset(dataset):
        if not Folder(out_dir).local:
            raise ValueError(f"out_dir {out_dir}: video datasets stage on a local or shared disk; "
                             "write their shards to a folder there and copy them to object storage")
        return _preprocess_videos(dataset, Path(raw_root), Path(out_dir), config, limit, dask_address)
    plan = plan_subjects(dataset, Path(raw_root), out_dir, limit=limit, gates=config.gates)
    logger.info("%s: %d subjects found, %d already done, %d rejected earlier, %d to process",
                dataset, plan.total, len(plan.done), len(plan.rejected), len(plan.todo))

    reports: list[SubjectReport] = _run_per_item(
        preprocess_subject_task, plan.todo, SubjectReport.failed, config.workers,
        {"config": config, "staging_dir": plan.staging_dir, "rejected_dir": plan.rejected_dir},
        f"preprocess {dataset}: subjects done (%)", dask_address)

    pack = pack_task(plan.staging_dir, out_dir, config)
    reports.extend(plan.rejected)  # rejected by an earlier run and still outside the gates
    rows = _publish_table(dataset, reports, pack)
    failed = [report for report in reports if report.status == "failed"]
    rejected = [report for report in reports if report.status == "rejected"]
    for report in rejected:
        logger.warning("%s rejected: %s", report.subject_id, report.error)
    summary = {"dataset": dataset, "found": plan.total, "skipped": len(plan.done),
               "processed": sum(report.status == "ok" for report in reports), "failed": [r.as_row() for r in failed],
               "rejected": [r.as_row() for r in rejected], "reports": rows,
               "shards": pack.shards, "samples_written": pack.samples_written}
    rejected_note = (f"; {len(rejected)} rejected by quality gates: "
                     + ", ".join(f"{r.subject_id} ({r.rejected_by})" for r in rejected)) if rejected else ""
    if failed:
        names = ", ".join(f"{r.subject_id} ({r.error})" for r in failed)
        return Failed(message=f"{len(failed)} of {len(reports)} subjects failed: {names}{rejected_note}", data=summary)
    if rejected:
        return Completed(message=f"{pack.summary()}{rejected_note}", data=summary)
    return summary


def _preprocess_videos(dataset: str, raw_root: Path, out_dir: Path, config: PreprocessConfig, limit: int | None,
                       dask_address: str | None = None) -> Any:
    """The video branch of :func:`preprocess`: one task per video (threads here, or the Dask cluster at
    ``dask_address``, whose workers then need ``raw_root`` and ``out_dir`` on a shared disk), then one
    pack task."""
    logger = get_run_logger()
    plan = plan_videos(dataset, raw_root, out_dir, limit=limit)
    logger.info("%s: %d videos found, %d already done, %d to process", dataset, plan.total, len(plan.done), len(plan.todo))
    reports: list[VideoReport] = _run_per_item(
        preprocess_video_task, plan.todo, VideoReport.failed, config.workers,
        {"config": config, "staging_dir": plan.staging_dir}, f"preprocess {dataset}: videos done (%)", dask_address)
    pack = pack_task(plan.staging_dir, out_dir, config)
    rows = _publish_table(dataset, reports, pack)
    segments = _publish_segment_table(dataset, reports)
    failed = [report for report in reports if report.status == "failed"]
    rejected = [row for row in segments if row.get("status") == "rejected"]
    for row in rejected:
        logger.warning("%s/%s %s", row["dataset"], row["video"], row["reason"])
    summary = {"dataset": dataset, "found": plan.total, "skipped": len(plan.done),
               "processed": sum(report.status == "ok" for report in reports), "failed": [r.as_row() for r in failed],
               "rejected": rejected, "reports": rows, "segments": segments, "shards": pack.shards,
               "samples_written": pack.samples_written}
    if failed:
        names = ", ".join(f"{r.subject_id} ({r.error})" for r in failed)
        return Failed(message=f"{len(failed)} of {len(reports)} videos failed: {names}", data=summary)
    return summary


def _task_runner(workers: int, dask_address: str | None):
    """Threads here (``workers`` at a time), or the Dask cluster at ``dask_address``."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ThreadPoolTaskRunner(max_workers=max(1, workers))


def _run_per_item(task: Any, refs: Sequence[Any], failed: Callable[[Any, str], Any], workers: int,
                  parameters: dict[str, Any], description: str, dask_address: str | None = None) -> list[Any]:
    """Run ``task`` once per ref (``workers`` threads at a time, or on the Dask cluster at ``dask_address``)
    and return a report per ref, in order: the task's own, or ``failed(ref, reason)`` when its run did not
    complete; a progress artifact follows along."""
    reports: list[Any] = []
    if not refs:
        return reports
    progress = create_progress_artifact(progress=0.0, description=description)
    with _task_runner(workers, dask_address) as runner:
        futures = [runner.submit(task, parameters={"ref": ref, **parameters}) for ref in refs]
        for ref, future in zip(refs, futures):
            future.wait()
            state = future.state
            reports.append(future.result() if state.is_completed() else failed(ref, _failure_reason(state)))
            update_progress_artifact(progress, progress=100.0 * len(reports) / len(refs))
    return reports


def _publish_table(dataset: str, reports: Sequence[Any], pack: PackReport) -> list[dict[str, Any]]:
    """The reports' rows (one shared set of columns), also published as the run's table artifact."""
    rows = _table([report.as_row() for report in reports])
    create_table_artifact(key=f"preprocess-{_artifact_key(dataset)}", table=rows or [{"subject": "-", "status": "nothing to do"}],
                          description=f"preprocess {dataset}: {pack.summary()}")
    return rows


def _publish_segment_table(dataset: str, reports: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per video segment (status, reason, quality values of :mod:`pipelines.video_quality`),
    also published as the run's ``preprocess-<dataset>-segments`` table artifact when there is any."""
    rows = _table([{key: table_value(value) for key, value in row.items()}
                   for report in reports for row in getattr(report, "segment_rows", ())])
    if rows:
        rejected = sum(row["status"] == "rejected" for row in rows)
        create_table_artifact(key=f"preprocess-{_artifact_key(dataset)}-segments", table=rows,
                              description=f"preprocess {dataset}: {len(rows)} segments, {rejected} rejected by the quality gates")
    return rows


def _table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with one shared set of columns (failed subjects have no quality values)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return [{column: row.get(column, "") for column in columns} for row in rows]


def _failure_reason(state) -> str:
    try:
        state.result()
    except Exception as error:  # noqa: BLE001 - we report any failure by its message
        return f"{type(error).__name__}: {error}"
    return state.message or "failed"


def _artifact_key(dataset: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in dataset.lower())
