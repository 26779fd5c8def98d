"""The `preprocess` flow end to end on a synthetic THuman2.1 folder (ephemeral Prefect API): good,
damaged and rejected subjects side by side."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from flows.preprocess import preprocess
from pipelines.preprocess import PreprocessConfig
from shards.cli import main as shards_cli
from shards.manifest import load_manifest
from shards.reader import iter_shard_samples
from shards.schema import decode, decode_video
from tests.pipelines.datasets.damage import cut_file, keep_obj_faces, scale_obj, set_obj_face_index, torso_only


def test_flow_writes_shards_reports_bad_subject_and_reruns_cheaply(tmp_path, synthetic_thuman_root, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    good, cut, torso = sorted(path.name for path in (raw / "model").iterdir())
    cut_file(raw / "model" / cut / f"{cut}.obj", 0.5)  # an interrupted download
    keep_obj_faces(raw / "model" / torso / f"{torso}.obj", torso_only)  # a valid file, but no whole person
    past_end, garbage_fit = _copy_subject(raw, good, "0100"), _copy_subject(raw, good, "0101")
    set_obj_face_index(raw / "model" / past_end / f"{past_end}.obj", 10**6)
    (raw / "smplx" / garbage_fit).mkdir(parents=True)
    (raw / "smplx" / garbage_fit / "smplx_param.pkl").write_bytes(np.random.default_rng(0).bytes(2000))
    out = tmp_path / "shards"
    config = PreprocessConfig.tiny()

    state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(out), config=config, return_state=True)
    assert state.is_failed()
    for name, reason in ((cut, f"{cut}.obj: the last line is cut mid-record"),
                         (past_end, f"{past_end}.obj: faces index vertices that do not exist"),
                         (garbage_fit, "smplx_param.pkl: cannot read body-model parameters")):
        assert name in state.message and reason in state.message
    assert f"1 rejected by quality gates: {torso} (" in state.message
    summary = state.result(raise_on_failure=False)
    assert [row["subject_id"] for row in summary["rejected"]] == [torso]
    manifest = load_manifest(out)
    assert manifest is not None and manifest.total_samples == 1
    assert [decode(sample).key for sample in iter_shard_samples(out / manifest.shards[0].file)] == [f"thuman__{good}"]
    assert not list(out.glob("*.tmp")) and not list((out / "_staging").iterdir())
    assert shards_cli(["verify", str(out)]) == 0
    table = {row["subject_id"]: row for row in _latest_table_artifact("preprocess-thuman")}
    assert {name: row["status"] for name, row in table.items()} == {
        good: "ok", cut: "failed", torso: "rejected", past_end: "failed", garbage_fit: "failed"}
    assert "silhouette_iou_min" in table[torso]["rejected_by"] and table[torso]["silhouette_iou_min"] < 0.5
    assert table[good]["silhouette_iou_min"] > 0.5 and table[good]["height_m"] > 1.0

    # re-run: the good subject is skipped, the rejected one is reported again without being processed,
    # only the (still bad) files are tried again
    state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(out), config=config, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert summary["skipped"] == 1 and [row["subject_id"] for row in summary["rejected"]] == [torso]
    assert load_manifest(out).total_samples == 1

    # the user looked at it and accepts it: packed as computed, without another fit
    accepting = replace(config, gates=replace(config.gates, accept_subjects=(torso,)))
    state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(out), config=accepting, return_state=True)
    assert load_manifest(out).total_samples == 2 and torso not in state.message


def _copy_subject(raw: Path, source: str, name: str) -> str:
    shutil.copytree(raw / "model" / source, raw / "model" / name)
    (raw / "model" / name / f"{source}.obj").rename(raw / "model" / name / f"{name}.obj")
    shutil.copy(raw / "_groundtruth" / f"{source}.json", raw / "_groundtruth" / f"{name}.json")
    return name


def _latest_table_artifact(key: str) -> list[dict]:
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    latest = max(artifacts, key=lambda artifact: artifact.created)
    data = latest.data
    return json.loads(data) if isinstance(data, str) else data



def test_bad_input_fails_on_its_first_run_naming_the_file(tmp_path, synthetic_thuman_root, monkeypatch):
    """A truncated texture and a scan whose unit is set wrong fail on their first run, by file and reason."""
    import flows.preprocess as flow_module

    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    truncated, wrong_units, _ = sorted(path.name for path in (raw / "model").iterdir())
    cut_file(raw / "model" / truncated / "material0.jpeg", 0.4)
    scale_obj(raw / "model" / wrong_units / f"{wrong_units}.obj", 1000.0)  # millimetres, but units=m below
    attempts: dict[str, int] = {}
    original = flow_module.preprocess_subject

    def counting(ref, *args, **kwargs):
        attempts[ref.subject_id] = attempts.get(ref.subject_id, 0) + 1
        return original(ref, *args, **kwargs)

    monkeypatch.setattr(flow_module, "preprocess_subject", counting)
    config = replace(PreprocessConfig.tiny(), units="m")
    state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(tmp_path / "out"), config=config, limit=2,
                       return_state=True)
    assert state.is_failed()
    assert attempts == {truncated: 1, wrong_units: 1}  # bad input is not retried
    assert f"{truncated}/material0.jpeg: the texture image is truncated" in state.message
    assert f"{wrong_units}.obj: with units=m the scan is" in state.message and "set units=mm" in state.message


def test_retry_condition_tells_bad_input_from_transient_errors():
    from prefect.states import Failed as FailedState

    from flows.preprocess import _retry_unless_bad_input
    from pipelines.datasets.errors import ScanReadError

    def failed_with(error: BaseException):
        return FailedState(data=error)

    assert not _retry_unless_bad_input(None, None, failed_with(ScanReadError("x.obj: empty mesh")))
    assert not _retry_unless_bad_input(None, None, failed_with(ValueError("keypoints2d: fewer than three")))
    try:
        try:
            raise ScanReadError("material0.jpeg: truncated")
        except ScanReadError as cause:
            raise RuntimeError("renderer gave up") from cause
    except RuntimeError as chained:
        assert not _retry_unless_bad_input(None, None, failed_with(chained))
    assert _retry_unless_bad_input(None, None, failed_with(OSError("NFS server not responding")))
    assert _retry_unless_bad_input(None, None, failed_with(MemoryError()))


def test_units_and_framing_are_flow_parameters():
    parameters = preprocess.validate_parameters({
        "dataset": "thuman", "raw_root": "/data/THuman2.1", "out_dir": "/data/shards",
        "config": {"units": "mm", "framing": {"mode": "fit", "margin": 0.1}}})
    assert parameters["config"].units == "mm" and parameters["config"].framing.mode == "fit"


@pytest.mark.slow
def test_video_flow_runs_mediapipe_gates_each_segment_and_inspect_shows_the_values(tmp_path, synthetic_tiktok_root, capsys):
    """The real estimator path (MediaPipe masks and keypoints) end to end: a good dance and a video whose
    subject leaves for good; the rejected segment is in the segment table with its reason, not in the shards."""
    import cv2

    from gas_core.segment.background import video_background
    from gas_core.videoio import write_mp4
    from pipelines.preprocess import load_preprocess_config

    raw = tmp_path / "raw"
    shutil.copytree(synthetic_tiktok_root / "00001", raw / "00001")
    frames = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
              for path in sorted((synthetic_tiktok_root / "00001" / "images").glob("*.png"))]
    empty = np.clip(video_background(frames), 0, 255).astype(np.uint8)
    write_mp4(frames[:10] + [empty] * 10, raw / "leaves.mp4", fps=30.0)
    config = load_preprocess_config(preset="tiny", overrides=["video.segment_frames=10", "video.min_segment_frames=6",
                                                              "video.crop_size=64"])
    assert config.video.masks.estimator == "mediapipe" and config.video.keypoints.source == "estimator"
    out = tmp_path / "shards"
    state = preprocess(dataset="tiktok", raw_root=str(raw), out_dir=str(out), config=config, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert state.is_completed(), state.message
    segments = {(row["video"], row["segment"]): row for row in _latest_table_artifact("preprocess-tiktok-segments")}
    assert segments[("leaves", 1)]["status"] == "rejected" and "no_person" in segments[("leaves", 1)]["reason"]
    assert [(row["video"], row["segment"]) for row in summary["rejected"]] == [("leaves", 1)]
    assert segments[("00001", 0)]["status"] == "ok" and segments[("00001", 0)]["silhouette_iou"] > 0.25
    keys = sorted(decode_video(raw_sample).key for entry in load_manifest(out).shards
                  for raw_sample in iter_shard_samples(out / entry.file))
    assert keys == ["tiktok__00001__seg000", "tiktok__00001__seg001", "tiktok__leaves__seg000"]
    sample = decode_video(next(iter_shard_samples(out / load_manifest(out).shards[0].file)))
    assert sample.meta["extra"]["segment_status"] == "ok" and sample.meta["extra"]["keypoint_source"] == "mediapipe pose"
    capsys.readouterr()
    assert shards_cli(["inspect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "identity_distance" in printed and "silhouette_iou" in printed and "lower_body_seen" in printed
