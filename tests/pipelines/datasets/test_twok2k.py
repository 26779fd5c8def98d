"""2K2K layout: write -> discover -> read round trip with vertex colours, and bad input."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import trimesh

from pipelines.datasets.common import ScanReadError, SubjectRef, read_groundtruth
from pipelines.datasets.twok2k import discover_twok2k, read_twok2k_subject, write_twok2k_subject


@pytest.fixture()
def written(tmp_path, small_subject):
    return tmp_path, write_twok2k_subject(tmp_path, small_subject, "00042")


def test_round_trip_is_exact(written, small_subject):
    root, folder = written
    assert sorted(p.name for p in folder.iterdir()) == ["00042.ply"]
    (ref,) = discover_twok2k(root)
    assert ref == SubjectRef("2k2k", "00042", root / "00042")
    scan = read_twok2k_subject(ref)
    np.testing.assert_array_equal(scan.mesh.vertices, small_subject.vertices.astype(np.float64))
    np.testing.assert_array_equal(scan.mesh.faces, small_subject.faces)
    np.testing.assert_array_equal(scan.mesh.visual.vertex_colors[:, :3], small_subject.vertex_colors)
    assert scan.body_model is None
    np.testing.assert_allclose(read_groundtruth(root, "00042")["joints24"], small_subject.joints24, atol=1e-6)


def test_parameter_file_next_to_the_scan_is_read(written):
    root, folder = written
    fit = {"betas": np.ones((1, 10)), "global_orient": np.zeros((1, 3)), "body_pose": np.zeros((1, 63))}
    (folder / "00042_smplx.pkl").write_bytes(pickle.dumps(fit))
    scan = read_twok2k_subject(discover_twok2k(root)[0])
    assert scan.body_model == "smplx" and scan.body_model_params["betas"].shape == (1, 10)


def test_discover_order_and_hidden_folders(written):
    root, folder = written
    for subject_id in ("00003", "00100"):
        shutil.copytree(folder, root / subject_id)
        (root / subject_id / "00042.ply").rename(root / subject_id / f"{subject_id}.ply")
    (root / ".00005.x.tmp").mkdir()
    assert [ref.subject_id for ref in discover_twok2k(root)] == ["00003", "00042", "00100"]


def test_corrupt_empty_and_colourless_ply_are_refused(written):
    root, folder = written
    ply = folder / "00042.ply"
    ply.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00")
    with pytest.raises(ScanReadError, match="00042.ply"):
        read_twok2k_subject(discover_twok2k(root)[0])
    ply.write_bytes(b"")
    with pytest.raises(ScanReadError, match="00042.ply"):
        read_twok2k_subject(discover_twok2k(root)[0])
    ply.write_bytes(trimesh.creation.box().export(file_type="ply"))
    with pytest.raises(ScanReadError, match="vertex colours"):
        read_twok2k_subject(discover_twok2k(root)[0])


def test_unknown_layout_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "scan.obj").write_text("v 0 0 0\n")
    with pytest.raises(ScanReadError, match="unknown layout"):
        discover_twok2k(tmp_path)
    with pytest.raises(ScanReadError, match="not found"):
        discover_twok2k(tmp_path / "missing")
