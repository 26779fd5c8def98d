"""The `preprocess` flow on a real Dask cluster (two single-thread workers) and on a real S3 API server."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import replace

import pytest

from flows.preprocess import preprocess
from pipelines.cluster import SchedulerUnreachable
from pipelines.preprocess import PreprocessConfig, staged_keys
from shards.cli import main as shards_cli
from shards.manifest import load_manifest
from shards.remote import Folder, StorageError
from tests.dask_cluster import DaskCluster
from tests.s3 import free_port


def _quick_config() -> PreprocessConfig:
    """Fewer, smaller views and shorter fits than ``tiny``; the gates record but do not reject."""
    config = PreprocessConfig.tiny()
    return replace(config, orbit=replace(config.orbit, num_views=4, width=96, height=96),
                   fit=replace(config.fit, keypoint_iterations=40, surface_iterations=5),
                   gates=replace(config.gates, enforce=False))


@pytest.fixture
def four_subjects(tmp_path, synthetic_thuman_root):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    first = sorted(path.name for path in (raw / "model").iterdir())[0]
    name = "0200"
    shutil.copytree(raw / "model" / first, raw / "model" / name)
    (raw / "model" / name / f"{first}.obj").rename(raw / "model" / name / f"{name}.obj")
    shutil.copy(raw / "_groundtruth" / f"{first}.json", raw / "_groundtruth" / f"{name}.json")
    return raw


@pytest.mark.slow
def test_subjects_run_on_both_dask_workers_and_shards_go_to_s3(four_subjects, s3_bucket, tmp_path):
    out = f"{s3_bucket}/subjects"
    with DaskCluster(2, log_dir=tmp_path, preload=("flows.dask_worker",)) as cluster:
        state = preprocess(dataset="thuman", raw_root=str(four_subjects), out_dir=out, config=_quick_config(),
                           dask_address=cluster.address, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    workers = {row["worker"] for row in summary["reports"]}
    assert len(summary["reports"]) == 4 and len(workers) == 2, workers  # both workers ran subjects
    assert all(worker.startswith("tcp://127.0.0.1:") for worker in workers)
    manifest = load_manifest(out)
    assert manifest.total_samples == 4 and len(manifest.keys) == 4
    assert Folder(out).list() == ["_staging", "manifest.json", *sorted(e.file for e in manifest.shards)] or \
        Folder(out).list() == ["manifest.json", *sorted(e.file for e in manifest.shards)]
    assert not Folder(out).child("_staging").list()
    assert shards_cli(["verify", out]) == 0


@pytest.mark.slow
def test_a_killed_dask_worker_loses_no_subject_and_packs_none_twice(four_subjects, tmp_path):
    out = tmp_path / "shards"
    with DaskCluster(2, log_dir=tmp_path) as cluster:
        def kill_when_busy() -> None:  # kill one worker once the first subject is staged (mid-run)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                staging = out / "_staging"
                if staging.is_dir() and any(not p.name.endswith(".tmp") for p in staging.iterdir()):
                    cluster.kill_worker(0)
                    return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        state = preprocess(dataset="thuman", raw_root=str(four_subjects), out_dir=str(out), config=_quick_config(),
                           dask_address=cluster.address, return_state=True)
        killer.join()
        assert cluster.workers[0].returncode is not None  # it was killed during the run
    assert state.is_completed(), state.message
    manifest = load_manifest(out)
    keys = [key for entry in manifest.shards for key in entry.keys]
    assert len(keys) == 4 and len(set(keys)) == 4  # every subject packed exactly once
    assert not list(out.glob("*.tmp")) and not list((out / "_staging").iterdir())
    assert shards_cli(["verify", str(out)]) == 0


def test_unreachable_scheduler_fails_fast_and_writes_nothing(four_subjects, tmp_path):
    out = tmp_path / "shards"
    start = time.monotonic()
    state = preprocess(dataset="thuman", raw_root=str(four_subjects), out_dir=str(out), config=_quick_config(),
                       dask_address=f"tcp://127.0.0.1:{free_port()}", return_state=True)
    assert state.is_failed() and time.monotonic() - start < 30
    with pytest.raises(SchedulerUnreachable, match=r"Dask scheduler tcp://127\.0\.0\.1:\d+ does not answer"):
        state.result()
    assert not out.exists()


def test_missing_bucket_fails_before_any_work(four_subjects, s3_server):
    state = preprocess(dataset="thuman", raw_root=str(four_subjects), out_dir="s3://no-such-bucket-gas/subjects",
                       config=_quick_config(), return_state=True)
    assert state.is_failed()
    with pytest.raises(StorageError, match=r"s3://no-such-bucket-gas/subjects: cannot write here \(the bucket does not exist"):
        state.result()


@pytest.mark.slow
def test_s3_server_stopped_mid_run_fails_naming_it_and_a_rerun_does_only_the_rest(four_subjects, s3_server, monkeypatch):
    from tests.s3 import S3Server, reset_s3_clients

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast once the endpoint is gone (no botocore retries)
    server = S3Server().start()  # its own server (and port), stopped and started again below
    try:
        out = f"{server.create_bucket()}/subjects"
        staging = Folder(out).child("_staging")
        stopped = threading.Event()

        def stop_after_first_subject() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not stopped.is_set():
                if staged_keys(staging):  # one subject completely staged
                    server.stop()
                    stopped.set()
                    return
                time.sleep(0.2)

        watcher = threading.Thread(target=stop_after_first_subject)
        watcher.start()
        state = preprocess(dataset="thuman", raw_root=str(four_subjects), out_dir=out, config=_quick_config(),
                           return_state=True)
        watcher.join()
        assert stopped.is_set() and state.is_failed()
        assert server.endpoint in state.message or f"127.0.0.1:{server.port}" in state.message, state.message

        server.start()  # back, with the same buckets
        reset_s3_clients()
        staged = staged_keys(staging)  # complete staged folders; a half-uploaded one is done again
        state = preprocess(dataset="thuman", raw_root=str(four_subjects), out_dir=out, config=_quick_config(),
                           return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
        assert summary["skipped"] == len(staged) >= 1 and summary["processed"] == 4 - len(staged)
        manifest = load_manifest(out)
        assert manifest.total_samples == 4 and len(manifest.keys) == 4
        assert shards_cli(["verify", out]) == 0
    finally:
        server.stop()
        server.restore_env()
        for name, value in s3_server.env.items():  # back to the session's server
            monkeypatch.setenv(name, value)
        reset_s3_clients()


@pytest.mark.slow
def test_videos_run_on_both_dask_workers_and_pack_once(tmp_path, synthetic_tiktok_root):
    """Video datasets go to the cluster too (raw videos and staging on a disk both workers share)."""
    from pipelines.preprocess import load_preprocess_config

    raw = tmp_path / "raw"
    shutil.copytree(synthetic_tiktok_root, raw)
    config = load_preprocess_config(preset="tiny", overrides=["video.segment_frames=10", "video.min_segment_frames=6",
                                                              "video.crop_size=64", "video.fit.hypothesis_iterations=0"])
    out = tmp_path / "shards"
    with DaskCluster(2, log_dir=tmp_path, preload=("flows.dask_worker",)) as cluster:
        state = preprocess(dataset="tiktok", raw_root=str(raw), out_dir=str(out), config=config,
                           dask_address=cluster.address, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    workers = {row["worker"] for row in summary["reports"]}
    assert len(summary["reports"]) == 2 and all(row["status"] == "ok" for row in summary["reports"])
    assert len(workers) == 2 and all(worker.startswith("tcp://127.0.0.1:") for worker in workers), workers
    manifest = load_manifest(out)
    assert manifest.total_samples == len(manifest.keys) == summary["samples_written"] >= 2
    assert shards_cli(["verify", str(out)]) == 0
