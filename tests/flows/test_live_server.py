"""`prefect deployment run preprocess/thuman|tiktok|mvhumannet` against a real Prefect server on loopback,
served by `gas serve`.

Also: a run killed with SIGKILL halfway leaves no partial shard, and the re-run finishes only what
is missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.preprocess import STAGING_DIRNAME
from shards.manifest import load_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{what}: process {process.args} exited with {process.returncode}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tiny_config_json(*overrides: str) -> str:
    from pipelines.preprocess import load_preprocess_config

    return json.dumps(dataclasses.asdict(load_preprocess_config(preset="tiny", overrides=list(overrides))))


def _walking_videos(root: Path, out: Path, copies: int = 1) -> Path:
    """A synthetic TikTok root with ``copies`` copies of the walking video (the built-in masker needs motion)."""
    import shutil

    for index in range(copies):
        name = f"{2 + index:05d}"
        shutil.copytree(root / "00002", out / name)
        shutil.copytree(root / "_groundtruth" / "00002", out / "_groundtruth" / name)
    return out


#: Video segments of the synthetic 20-frame videos: two per video.
VIDEO_OVERRIDES = ("video.segment_frames=10", "video.min_segment_frames=6", "video.crop_size=64",
                   "video.multiview_segment_frames=5", "video.multiview_cameras=2")


@pytest.mark.server
def test_prefect_deployment_runs_on_live_server(tmp_path, synthetic_thuman_root, synthetic_tiktok_root,
                                                synthetic_mvhumannet_root):
    """preprocess/thuman, preprocess/tiktok and preprocess/mvhumannet, run by name on one served server."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=api,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               GAS_REPO_DIR=str(REPO_ROOT))
    runs = {"thuman": (synthetic_thuman_root, tmp_path / "subjects", _tiny_config_json()),
            "tiktok": (_walking_videos(synthetic_tiktok_root, tmp_path / "tiktok"), tmp_path / "videos",
                       _tiny_config_json(*VIDEO_OVERRIDES)),
            "mvhumannet": (synthetic_mvhumannet_root, tmp_path / "mvhumannet", _tiny_config_json(*VIDEO_OVERRIDES))}
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, cwd=tmp_path, start_new_session=True,
                              stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT)
    serve = None
    try:
        _wait_for(lambda: _http_ok(f"{api}/health"), 120, "prefect server health", [server])
        serve = subprocess.Popen([str(BIN / "gas"), "serve"], env=env, cwd=REPO_ROOT, start_new_session=True,
                                 stdout=open(tmp_path / "serve.log", "w"), stderr=subprocess.STDOUT)
        for name, (raw_root, out, config) in runs.items():
            _wait_for(lambda: _http_ok(f"{api}/deployments/name/preprocess/{name}"), 120,
                      f"deployment preprocess/{name} to be registered", [server, serve])
            run = subprocess.run(
                [str(BIN / "prefect"), "deployment", "run", f"preprocess/{name}",
                 "--param", f"raw_root={json.dumps(str(raw_root))}",
                 "--param", f"out_dir={json.dumps(str(out))}",
                 "--param", f"config={config}",
                 "--watch", "--watch-timeout", "600"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=700)
            logs = run.stdout + run.stderr + (tmp_path / "serve.log").read_text()
            assert run.returncode == 0, logs
            assert "Completed" in run.stdout, logs
    finally:
        if serve is not None:
            _stop(serve)
        _stop(server)
    for name, (raw_root, out, _) in runs.items():
        verify = subprocess.run([str(BIN / "gas-shards"), "verify", str(out)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    assert load_manifest(tmp_path / "subjects").total_samples == len(list((synthetic_thuman_root / "model").iterdir()))
    assert load_manifest(tmp_path / "videos").total_samples == 2  # 1 video x 2 segments
    assert load_manifest(tmp_path / "mvhumannet").total_samples == 2  # 10 frames in segments of 5
    assert load_manifest(tmp_path / "videos").schema_name == "video"


@pytest.mark.server
@pytest.mark.parametrize("dataset", ["thuman", "tiktok"])
def test_kill_minus_nine_leaves_no_partial_shard_and_rerun_finishes(tmp_path, dataset, request):
    raw_root = request.getfixturevalue(f"synthetic_{dataset}_root")
    if dataset == "tiktok":
        raw_root = _walking_videos(raw_root, tmp_path / "raw", copies=3)
    out = tmp_path / "shards"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    command = [str(BIN / "gas"), "preprocess", dataset, str(raw_root), str(out), "--preset", "tiny"]
    if dataset == "tiktok":
        command += [arg for override in VIDEO_OVERRIDES for arg in ("--set", override)]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, start_new_session=True,
                               stdout=open(tmp_path / "run1.log", "w"), stderr=subprocess.STDOUT)
    staging = out / STAGING_DIRNAME

    def first_subject_staged() -> bool:
        return staging.is_dir() and any(p.is_dir() and not p.name.endswith(".tmp") for p in staging.iterdir())

    try:
        _wait_for(first_subject_staged, 300, "the first subject to be staged", [process])
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not list(out.glob("*.tar")), "a killed run must not leave a shard behind"
    staged_before = {p.name for p in staging.iterdir() if p.is_dir() and not p.name.endswith(".tmp")}
    assert staged_before

    rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    manifest = load_manifest(out)
    total = len(list((raw_root / "model").iterdir())) if dataset == "thuman" else 6  # 3 videos x 2 segments
    assert manifest.total_samples == total
    assert len(set(manifest.keys)) == len(manifest.keys) == total  # each sample exactly once
    assert not any(staging.iterdir())
    verify = subprocess.run([str(BIN / "gas-shards"), "verify", str(out)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout
