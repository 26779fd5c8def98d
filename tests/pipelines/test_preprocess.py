"""Preprocess steps without Prefect: config loading, planning, one subject, staging, quality gates, packing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

import pytest

from gas_core.cameras import OrbitSpec
from gas_core.render.normalize import Normalization
from pipelines.datasets.common import ScanReadError, SubjectRef
from pipelines.preprocess import (
    REJECTED_DIRNAME,
    STAGING_DIRNAME,
    PreprocessConfig,
    load_preprocess_config,
    pack_staged_subjects,
    plan_subjects,
    preprocess_subject,
)
from shards.manifest import load_manifest
from shards.reader import iter_shard_samples
from shards.schema import decode
from tests.pipelines.datasets.damage import cut_file, keep_obj_faces, scale_obj, torso_only

_SMALL = ["orbit.num_views=4", "orbit.width=128", "orbit.height=128"]


def test_config_presets_yaml_and_overrides(tmp_path):
    assert PreprocessConfig.paper().orbit.num_views == 20 and PreprocessConfig.paper().orbit.width == 1024
    config_file = tmp_path / "pre.yaml"
    config_file.write_text("orbit:\n  width: 64\n  height: 64\nkeypoints:\n  noise_px: 2.5\n")
    config = load_preprocess_config(config_file, preset="tiny", overrides=["orbit.num_views=5", "workers=2"])
    assert config.orbit == OrbitSpec(num_views=5, width=64, height=64)
    assert config.keypoints.noise_px == 2.5 and config.workers == 2
    with pytest.raises(ValueError, match="unknown config field 'nope'"):
        load_preprocess_config(overrides=["nope=1"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        load_preprocess_config(overrides=["orbit.width"])
    with pytest.raises(ValueError, match="preset"):
        load_preprocess_config(preset="huge")


def test_one_subject_is_rendered_fitted_staged_and_packed(tmp_path, synthetic_thuman_root):
    config = load_preprocess_config(preset="tiny", overrides=_SMALL)
    out = tmp_path / "shards"
    plan = plan_subjects("thuman", synthetic_thuman_root, out, limit=1)
    assert plan.total == 1 and len(plan.todo) == 1 and not plan.done
    report = preprocess_subject(plan.todo[0], config, plan.staging_dir)
    assert report.status == "ok"
    assert report.joint_error_cm < 5.0  # synthetic ground truth exists for this subject
    staged = [path for path in plan.staging_dir.iterdir() if path.is_dir()]
    assert len(staged) == 1 and (staged[0] / "view03.png").is_file() and (staged[0] / "normal03.png").is_file()

    # a staged subject counts as done for the next plan (a killed run is not redone)
    assert len(plan_subjects("thuman", synthetic_thuman_root, out, limit=1).done) == 1

    pack = pack_staged_subjects(plan.staging_dir, out, config)
    assert pack.samples_written == 1 and len(pack.shards) == 1
    assert not any((out / STAGING_DIRNAME).iterdir())
    sample = decode(next(iter_shard_samples(out / pack.shards[0])))
    assert sample.views.shape == (4, 128, 128, 3) and sample.normals.shape == (4, 128, 128, 3)
    # the fitted body's normal maps cover (most of) the scan's silhouette
    overlap = ((sample.normals.max(axis=-1) > 0) & (sample.masks > 0)).sum() / (sample.masks > 0).sum()
    assert overlap > 0.7
    assert sample.smpl["body_model"].startswith("open body model")
    quality = sample.meta["extra"]["quality"]
    assert quality == report.quality and all(isinstance(value, float) for value in quality.values())
    assert 0.02 < quality["mask_coverage_min"] < 0.5 and quality["visible_view_fraction"] == 1.0
    assert quality["silhouette_iou_min"] > 0.6 and quality["body_to_scan_cm"] < 2.0
    assert 1.4 < quality["height_m"] < 2.1
    assert sample.meta["extra"]["gates"]["passed"] and sample.meta["extra"]["gates"]["failed"] == {}
    assert load_manifest(out).total_samples == 1
    # packing again writes nothing twice
    assert pack_staged_subjects(plan.staging_dir, out, config).samples_written == 0


def test_bad_subject_raises_scan_read_error_and_stages_nothing(tmp_path, synthetic_thuman_root):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    subject = sorted((raw / "model").iterdir())[0]
    (subject / "material0.jpeg").unlink()
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(ScanReadError, match="material0.jpeg"):
        preprocess_subject(SubjectRef("thuman", subject.name, subject), PreprocessConfig.tiny(), staging)
    assert not any(staging.iterdir())


def test_unknown_dataset_and_bad_limit(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of"):
        plan_subjects("mvhumannet", tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="limit"):
        plan_subjects("thuman", tmp_path, tmp_path / "out", limit=-1)


def test_config_gates_load_from_overrides():
    config = load_preprocess_config(preset="tiny", overrides=["gates.min_silhouette_iou=0.6", "gates.max_height_m=null",
                                                              "gates.accept_subjects=['0042']", "gates.enforce=false"])
    assert config.gates.min_silhouette_iou == 0.6 and config.gates.max_height_m is None
    assert config.gates.accept_subjects == ("0042",) and config.gates.enforce is False
    with pytest.raises(ValueError, match="min_height_m"):
        load_preprocess_config(overrides=["gates.min_height_m=-1"])
    with pytest.raises(ValueError, match="accept_subjects"):
        load_preprocess_config(overrides=["gates.accept_subjects=[42]"])


def test_torso_only_scan_is_rejected_kept_aside_and_accepted_on_request(tmp_path, synthetic_thuman_root):
    """A valid file of a torso only: read, rendered and fitted, then rejected by the gates, not packed."""
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    subject = sorted((raw / "model").iterdir())[0]
    keep_obj_faces(subject / f"{subject.name}.obj", torso_only)
    short_fit = ["fit.keypoint_iterations=60", "fit.surface_iterations=10"]  # the verdict needs no precise fit
    config = load_preprocess_config(preset="tiny", overrides=[*_SMALL, *short_fit])
    out = tmp_path / "shards"
    plan = plan_subjects("thuman", raw, out, limit=1, gates=config.gates)
    report = preprocess_subject(plan.todo[0], config, plan.staging_dir, plan.rejected_dir)
    assert report.status == "rejected"
    assert "silhouette_iou_min" in report.rejected_by.split(",") and "body_to_scan_cm" in report.rejected_by.split(",")
    assert "silhouette_iou_min=" in report.error and "(min 0.5)" in report.error
    assert report.quality["body_to_scan_cm"] > 10.0 and report.quality["silhouette_iou_min"] < 0.5
    assert not any(plan.staging_dir.iterdir())
    kept = out / REJECTED_DIRNAME / f"thuman__{subject.name}"
    meta = json.loads((kept / "meta.json").read_text())
    assert meta["extra"]["quality"] == report.quality
    assert meta["extra"]["gates"]["passed"] is False and not meta["extra"]["gates"]["accepted"]
    assert set(meta["extra"]["gates"]["failed"]) == set(report.rejected_by.split(","))
    assert pack_staged_subjects(plan.staging_dir, out, config).samples_written == 0

    # the next run reports it rejected without processing it again
    again = plan_subjects("thuman", raw, out, limit=1, gates=config.gates)
    assert not again.todo and [r.subject_id for r in again.rejected] == [subject.name]
    assert again.rejected[0].rejected_by == report.rejected_by
    # accepted by id: moved to staging as it is, then packed, with the override recorded
    accepting = load_preprocess_config(preset="tiny", overrides=[*_SMALL, *short_fit,
                                                                 f"gates.accept_subjects=['{subject.name}']"])
    accepted = plan_subjects("thuman", raw, out, limit=1, gates=accepting.gates)
    assert len(accepted.done) == 1 and not accepted.rejected and not accepted.todo and not kept.exists()
    pack = pack_staged_subjects(accepted.staging_dir, out, accepting)
    sample = decode(next(iter_shard_samples(out / pack.shards[0])))
    assert sample.meta["extra"]["gates"]["accepted_because"] == "subject accepted by id"


def test_damaged_subject_reports_the_file_and_stages_nothing(tmp_path, synthetic_thuman_root):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    subject = sorted((raw / "model").iterdir())[0]
    cut_file(subject / f"{subject.name}.obj", 0.5)
    plan = plan_subjects("thuman", raw, tmp_path / "out", limit=1)
    with pytest.raises(ScanReadError, match=rf"{subject.name}\.obj: .*cut"):
        preprocess_subject(plan.todo[0], PreprocessConfig.tiny(), plan.staging_dir, plan.rejected_dir)
    assert not any(plan.staging_dir.iterdir()) and not (tmp_path / "out" / REJECTED_DIRNAME).exists()


def _subject_of_height(raw: Path, height_m: float) -> Path:
    """The first subject of a copied synthetic THuman root, rescaled (scan and ground truth, about the
    origin) to stand ``height_m`` metres tall."""
    subject = sorted((raw / "model").iterdir())[0]
    obj = subject / f"{subject.name}.obj"
    heights = [float(line.split()[2]) for line in obj.read_text().splitlines() if line.startswith("v ")]
    factor = height_m / (max(heights) - min(heights))
    scale_obj(obj, factor)
    truth_path = raw / "_groundtruth" / f"{subject.name}.json"
    truth = json.loads(truth_path.read_text())
    for key in ("joints24", "coco17"):
        truth[key] = (np.asarray(truth[key]) * factor).tolist()
    truth_path.write_text(json.dumps(truth))
    return subject


_FRAMING_TEST = ["orbit.num_views=8", "orbit.width=128", "orbit.height=128",  # the paper's 3 m and 40 degrees
                 "fit.keypoint_iterations=80", "fit.surface_iterations=15"]


@pytest.mark.parametrize("height_m", [2.0, 1.3])
def test_tall_and_short_subjects_are_framed_whole_and_pass_the_gates(tmp_path, synthetic_thuman_root, height_m):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    subject = _subject_of_height(raw, height_m)
    config = load_preprocess_config(preset="tiny", overrides=_FRAMING_TEST)
    plan = plan_subjects("thuman", raw, tmp_path / "out", limit=1, gates=config.gates)
    report = preprocess_subject(plan.todo[0], config, plan.staging_dir, plan.rejected_dir)
    assert report.status == "ok", report.error
    assert report.quality["visible_view_fraction"] == 1.0
    meta = json.loads((plan.staging_dir / f"thuman__{subject.name}" / "meta.json").read_text())
    distance = meta["extra"]["orbit_distance_m"]
    assert (distance > 3.05) if height_m >= 2.0 else (distance == 3.0)  # tall subjects are moved back, others not
    cameras = json.loads((plan.staging_dir / f"thuman__{subject.name}" / "cameras.json").read_text())
    assert all(np.linalg.norm(-np.asarray(c["R"]).T @ np.asarray(c["t"])) == pytest.approx(distance) for c in cameras)


def test_a_subject_cut_off_by_the_views_is_still_rejected(tmp_path, synthetic_thuman_root):
    """With the cameras held at 3 m (framing.mode=fixed), a 2.2 m subject leaves the images: the gate says so."""
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    _subject_of_height(raw, 2.2)
    short_fit = ["fit.keypoint_iterations=40", "fit.surface_iterations=5"]  # the verdict needs no precise fit
    config = load_preprocess_config(preset="tiny", overrides=[*_FRAMING_TEST, *short_fit, "framing.mode=fixed"])
    plan = plan_subjects("thuman", raw, tmp_path / "out", limit=1, gates=config.gates)
    report = preprocess_subject(plan.todo[0], config, plan.staging_dir, plan.rejected_dir)
    assert report.status == "rejected" and "visible_view_fraction" in report.rejected_by.split(",")
    assert report.quality["visible_view_fraction"] < 0.9 and "(min 0.9)" in report.error


def test_scan_in_millimetres_is_scaled_by_auto_units_and_refused_as_metres(tmp_path, synthetic_thuman_root):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_thuman_root, raw)
    subject = sorted((raw / "model").iterdir())[0]
    scale_obj(subject / f"{subject.name}.obj", 1000.0)  # re-exported in millimetres
    config = load_preprocess_config(preset="tiny", overrides=[*_SMALL, "fit.keypoint_iterations=80",
                                                              "fit.surface_iterations=15"])
    assert config.units == "auto"
    plan = plan_subjects("thuman", raw, tmp_path / "out", limit=1, gates=config.gates)
    report = preprocess_subject(plan.todo[0], config, plan.staging_dir, plan.rejected_dir)
    assert report.status == "ok", report.error
    assert 1.4 < report.quality["height_m"] < 2.1
    meta = json.loads((plan.staging_dir / f"thuman__{subject.name}" / "meta.json").read_text())
    units = meta["extra"]["units"]
    assert (units["setting"], units["unit"], units["scale"]) == ("auto", "mm", 0.001)
    assert 1400 < units["height_in_file"] < 2100
    # normalization.json still maps the raw file (millimetres) into the fitting frame (metres, centred)
    normalization = Normalization.from_dict(
        json.loads((plan.staging_dir / f"thuman__{subject.name}" / "normalization.json").read_text()))
    raw_vertices = np.array([[float(x) for x in line.split()[1:4]]
                             for line in (subject / f"{subject.name}.obj").read_text().splitlines() if line.startswith("v ")])
    fitted = normalization.apply(raw_vertices)
    assert np.ptp(fitted[:, 1]) == pytest.approx(units["height_m"], rel=1e-6)
    np.testing.assert_allclose(fitted.min(axis=0) + fitted.max(axis=0), 0.0, atol=1e-6)

    as_metres = load_preprocess_config(preset="tiny", overrides=[*_SMALL, "units=m"])
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(ScanReadError, match=rf"{subject.name}\.obj: with units=m the scan is 1\d\d\d m tall .*units=mm"):
        preprocess_subject(plan.todo[0], as_metres, staging)
    assert not any(staging.iterdir())
    explicit = load_preprocess_config(preset="tiny", overrides=[*_SMALL, "units=mm", "fit.keypoint_iterations=1",
                                                                "fit.surface_iterations=1", "gates.enforce=false"])
    assert preprocess_subject(plan.todo[0], explicit, staging).quality["visible_view_fraction"] == 1.0


def test_units_and_framing_settings_load_and_are_checked():
    config = load_preprocess_config(preset="paper", overrides=["units=cm", "framing.mode=fit", "framing.margin=0.1"])
    assert config.units == "cm" and config.framing.mode == "fit" and config.framing.margin == 0.1
    assert PreprocessConfig.tiny().units == "auto" and PreprocessConfig.paper().framing.mode == "contain"
    with pytest.raises(ValueError, match="units must be one of"):
        load_preprocess_config(overrides=["units=inch"])
    with pytest.raises(ValueError, match="mode must be one of"):
        load_preprocess_config(overrides=["framing.mode=zoom"])


def test_scan_keypoints_can_come_from_mediapipe_on_the_renders(tmp_path, synthetic_thuman_root):
    pytest.importorskip("mediapipe")
    config = load_preprocess_config(preset="tiny", overrides=[*_SMALL, "keypoints.source=estimator"])
    plan = plan_subjects("thuman", synthetic_thuman_root, tmp_path / "shards", limit=1)
    report = preprocess_subject(plan.todo[0], config, plan.staging_dir)
    assert report.status == "ok" and report.joint_error_cm < 10.0, report  # the renders' detected keypoints
    with pytest.raises(ValueError, match="keypoints.source"):
        load_preprocess_config(preset="tiny", overrides=["keypoints.source=yolo"])
