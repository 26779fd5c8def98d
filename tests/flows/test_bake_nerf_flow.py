"""The `bake-nerf` flow (ephemeral Prefect API) and its plain-script entry, run as a torchrun rank would be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.bake_nerf import bake_nerf
from pipelines.bake_nerf import bake
from shards.cli import main as shards_cli
from shards.manifest import load_manifest
from tests.pipelines.test_bake_nerf import FAST_OVERRIDES, all_clip_keys, build_bake_inputs, fast_config, weights_sha256

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bake_inputs(tmp_path_factory, synthetic_thuman_root):
    return build_bake_inputs(tmp_path_factory, synthetic_thuman_root)


def _inputs_with_truncated_shard(tmp_path: Path, subjects: Path) -> str:
    """A glob over copies of the 2 subject shards plus a truncated third shard (rank 0's of 2)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for shard in sorted(subjects.glob("*.tar")):
        shutil.copy(shard, inputs / shard.name)
    data = (inputs / "subjects-000001.tar").read_bytes()
    (inputs / "subjects-000002.tar").write_bytes(data[: len(data) // 3])
    return str(inputs / "*.tar")


def test_flow_bakes_its_rank_reports_the_truncated_shard_and_writes_artifacts(tmp_path, bake_inputs):
    subjects, checkpoint = bake_inputs
    source = _inputs_with_truncated_shard(tmp_path, subjects)
    out = tmp_path / "clips"
    state = bake_nerf(subjects=source, out_dir=str(out), checkpoint=str(checkpoint), config=fast_config(), rank=0,
                      world_size=2, return_state=True)
    assert state.is_failed() and "subjects-000002.tar" in state.message and "truncated" in state.message
    summary = state.result(raise_on_failure=False)
    assert summary["clips_written"] == 4 and summary["checkpoint_sha256"] == weights_sha256(checkpoint)
    assert {path.name.rsplit("-", 1)[0] for path in out.glob("*.tar")} == {"clips-subjects-000000"}
    assert load_manifest(out).extra["nerf_checkpoint_sha256"] == weights_sha256(checkpoint)
    assert not list(out.glob("*.tmp")) and shards_cli(["verify", str(out)]) == 0
    rows = _latest_artifact_data("bake-nerf-rank-0")
    assert {row["status"] for row in rows} == {"baked", "unreadable"}


@pytest.mark.slow
def test_script_entry_bakes_the_rank_torchrun_names_and_refuses_bad_arguments(tmp_path, bake_inputs):
    subjects, checkpoint = bake_inputs
    source = _inputs_with_truncated_shard(tmp_path, subjects)
    out = tmp_path / "clips"
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "PYTHONPATH": str(REPO_ROOT)}
    overrides = [item for override in FAST_OVERRIDES for item in ("--set", override)]
    command = [sys.executable, str(REPO_ROOT / "flows" / "bake_nerf.py"), "--subjects", source, "--out", str(out),
               "--checkpoint", str(checkpoint), "--preset", "tiny", *overrides, "--device", "cpu", "--no-progress"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rank 1/2: 4 clips baked" in result.stdout
    assert {path.name.rsplit("-", 1)[0] for path in out.glob("*.tar")} == {"clips-subjects-000001"}

    # the other rank (in process here) completes the folder; the truncated shard is its only problem
    config = fast_config()
    report = bake(source, out, checkpoint, config, rank=0, world_size=2, progress=False)
    assert report.clips_written == 4 and len(report.problems) == 1 and "subjects-000002.tar" in report.problems[0]
    assert load_manifest(out).keys == all_clip_keys(subjects, config)
    assert shards_cli(["verify", str(out)]) == 0

    result = subprocess.run([*command, "--set", "clip.num_frames=0"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "clip.num_frames" in result.stderr


def _latest_artifact_data(key: str) -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    latest = max(artifacts, key=lambda artifact: artifact.created)
    return json.loads(latest.data) if isinstance(latest.data, str) else latest.data
