"""Preprocess steps without Prefect: config loading, planning, one subject, staging and packing."""

from __future__ import annotations

import shutil

import pytest

from gas_core.cameras import OrbitSpec
from pipelines.datasets.common import ScanReadError, SubjectRef
from pipelines.preprocess import (
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
    config = load_preprocess_config(preset="tiny", overrides=["orbit.num_views=4", "orbit.width=128", "orbit.height=128"])
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
