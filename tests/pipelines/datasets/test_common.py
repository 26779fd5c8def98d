"""Shared dataset helpers: safe parameter loading, ground truth, atomic writes."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from pipelines.datasets.common import (
    ScanReadError,
    load_parameter_file,
    read_groundtruth,
    write_groundtruth,
)


def test_parameter_pickle_of_numpy_arrays_loads(tmp_path):
    path = tmp_path / "smplx_param.pkl"
    params = {"betas": np.arange(10, dtype=np.float32)[None], "scale": np.array([0.9]), "transl": np.zeros((1, 3))}
    path.write_bytes(pickle.dumps(params, protocol=2))
    loaded = load_parameter_file(path)
    assert set(loaded) == set(params)
    np.testing.assert_array_equal(loaded["betas"], params["betas"])


def test_parameter_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"betas": os.getcwd}))
    with pytest.raises(ScanReadError, match="evil.pkl"):
        load_parameter_file(path)


def test_parameter_file_npz_json_and_bad_types(tmp_path):
    np.savez(tmp_path / "p.npz", betas=np.ones(10))
    assert load_parameter_file(tmp_path / "p.npz")["betas"].shape == (10,)
    (tmp_path / "p.json").write_text(json.dumps({"body_pose": [[0.0] * 63]}))
    assert load_parameter_file(tmp_path / "p.json")["body_pose"].shape == (1, 63)
    (tmp_path / "p.txt").write_text("1 2 3")
    with pytest.raises(ScanReadError, match="p.txt"):
        load_parameter_file(tmp_path / "p.txt")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ScanReadError, match="list.json"):
        load_parameter_file(tmp_path / "list.json")
    with pytest.raises(ScanReadError, match="missing.pkl"):
        load_parameter_file(tmp_path / "missing.pkl")


def test_groundtruth_round_trip_and_missing(tmp_path):
    joints = np.random.default_rng(0).normal(size=(24, 3))
    write_groundtruth(tmp_path, "0001", {"joints24": joints, "pose_name": "walking", "seed": np.int64(4)})
    record = read_groundtruth(tmp_path, "0001")
    np.testing.assert_allclose(record["joints24"], joints)
    assert record["pose_name"] == "walking" and record["seed"] == 4
    with pytest.raises(ScanReadError, match="0002.json"):
        read_groundtruth(tmp_path, "0002")
