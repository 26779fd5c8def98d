"""The `preprocess` flow end to end on a synthetic THuman2.1 folder (ephemeral Prefect API)."""

from __future__ import annotations

import shutil

from flows.preprocess import preprocess
from pipelines.preprocess import PreprocessConfig
from shards.cli import main as shards_cli
from shards.manifest import load_manifest


def test_flow_writes_shards_reports_bad_subject_and_reruns_cheaply(tmp_path, synthetic_thuman_root, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    subjects = sorted(path.name for path in (raw / "model").iterdir())
    bad = subjects[1]
    bad_obj = raw / "model" / bad / f"{bad}.obj"
    bad_obj.write_text("this is not a mesh\n")
    out = tmp_path / "shards"
    config = PreprocessConfig.tiny()

    state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(out), config=config, return_state=True)
    assert state.is_failed()
    assert bad in state.message and f"{bad}.obj" in state.message
    summary = state.result(raise_on_failure=False)
    manifest = load_manifest(out)
    assert manifest is not None and manifest.total_samples == len(subjects) - 1
    assert not list(out.glob("*.tmp")) and not list((out / "_staging").iterdir())
    assert shards_cli(["verify", str(out)]) == 0
    table = _latest_table_artifact("preprocess-thuman")
    assert {row["subject_id"]: row["status"] for row in table} == {
        name: ("failed" if name == bad else "ok") for name in subjects}

    # re-run: the good subjects are skipped, only the (still bad) one is tried again
    state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(out), config=config, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert summary["skipped"] == len(subjects) - 1 if isinstance(summary, dict) else True
    assert load_manifest(out).total_samples == len(subjects) - 1


def _latest_table_artifact(key: str) -> list[dict]:
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    latest = max(artifacts, key=lambda artifact: artifact.created)
    data = latest.data
    return json.loads(data) if isinstance(data, str) else data

