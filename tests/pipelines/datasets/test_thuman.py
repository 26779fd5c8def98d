"""THuman2.1 layout: write -> discover -> read round trip, the real SMPL-X file, and bad input."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import trimesh

from gas_core.synth.texture import sample_texture
from pipelines.datasets.common import ScanReadError, SubjectRef, read_groundtruth
from pipelines.datasets.thuman import discover_thuman, read_thuman_subject, write_thuman_subject


@pytest.fixture()
def written(tmp_path, small_subject):
    folder = write_thuman_subject(tmp_path, small_subject, "0007")
    return tmp_path, folder


def test_layout_matches_the_release(written):
    root, folder = written
    assert folder == root / "model" / "0007"
    assert sorted(p.name for p in folder.iterdir()) == ["0007.obj", "material0.jpeg", "material0.mtl"]
    assert "map_Kd material0.jpeg" in (folder / "material0.mtl").read_text()
    assert (folder / "0007.obj").read_text().startswith("mtllib material0.mtl")
    assert not (root / "smplx").exists()  # no SMPL-X fit for Anny-made subjects
    assert not any(p.name.startswith(".") for p in (root / "model").iterdir())


def test_round_trip_preserves_geometry_texture_and_groundtruth(written, small_subject):
    root, _ = written
    (ref,) = discover_thuman(root)
    assert ref == SubjectRef("thuman", "0007", root / "model" / "0007")
    scan = read_thuman_subject(ref)
    mesh = scan.mesh
    assert scan.dataset == "thuman" and scan.body_model is None and scan.body_model_params is None
    assert len(mesh.faces) == len(small_subject.faces)
    np.testing.assert_allclose(
        mesh.vertices[mesh.faces], small_subject.vertices[small_subject.faces], atol=2e-6
    )
    np.testing.assert_allclose(
        mesh.visual.uv[mesh.faces], small_subject.uv[small_subject.face_uv_indices], atol=2e-6
    )
    image = np.asarray(mesh.visual.material.image.convert("RGB"))
    assert image.shape == small_subject.texture.shape
    assert np.abs(image.astype(int) - small_subject.texture.astype(int)).mean() < 6  # JPEG
    # Texture sampled at each face corner's UV gives the subject's colour of that corner's vertex.
    body = small_subject.num_body_faces
    sampled = sample_texture(image, mesh.visual.uv[mesh.faces[:body].ravel()]).astype(int)
    expected = small_subject.vertex_colors[small_subject.faces[:body].ravel()].astype(int)
    assert np.median(np.abs(sampled - expected).max(axis=1)) < 16
    truth = read_groundtruth(root, "0007")
    np.testing.assert_allclose(truth["joints24"], small_subject.joints24, atol=1e-6)
    np.testing.assert_allclose(truth["coco17"], small_subject.coco17, atol=1e-6)
    assert truth["pose_name"] == small_subject.spec.pose_name and truth["seed"] == small_subject.spec.seed


def test_real_smplx_param_file_is_read(written):
    root, _ = written
    params = {
        "betas": np.zeros((1, 10), np.float32), "global_orient": np.zeros((1, 3), np.float32),
        "body_pose": np.zeros((1, 63), np.float32), "transl": np.zeros((1, 3), np.float32),
        "scale": np.array([1.0], np.float32), "left_hand_pose": np.zeros((1, 12), np.float32),
    }
    (root / "smplx" / "0007").mkdir(parents=True)
    (root / "smplx" / "0007" / "smplx_param.pkl").write_bytes(pickle.dumps(params, protocol=2))
    scan = read_thuman_subject(discover_thuman(root)[0])
    assert scan.body_model == "smplx"
    assert set(scan.body_model_params) == set(params)
    assert scan.body_model_params["body_pose"].shape == (1, 63)
    assert root / "smplx" / "0007" / "smplx_param.pkl" in scan.source_paths


def test_thuman20_layout_without_model_folder_is_discovered(written, tmp_path_factory):
    root, folder = written
    flat = tmp_path_factory.mktemp("thuman20")
    shutil.copytree(folder, flat / "0007")
    (ref,) = discover_thuman(flat)
    assert len(read_thuman_subject(ref).mesh.faces) > 0


def test_discover_sorts_numerically_and_skips_hidden_and_groundtruth(written):
    root, folder = written
    for subject_id in ("0100", "0002", "0010"):
        target = root / "model" / subject_id
        shutil.copytree(folder, target)
        (target / "0007.obj").rename(target / f"{subject_id}.obj")
    shutil.copytree(folder, root / "model" / ".0003.abc.tmp")
    assert [ref.subject_id for ref in discover_thuman(root)] == ["0002", "0007", "0010", "0100"]


def test_writing_an_existing_subject_is_refused(written, small_subject):
    root, _ = written
    with pytest.raises(FileExistsError, match="0007"):
        write_thuman_subject(root, small_subject, "0007")
    with pytest.raises(ValueError, match="subject_id"):
        write_thuman_subject(root, small_subject, "../x")


def test_missing_texture_names_the_file(written):
    root, folder = written
    (folder / "material0.jpeg").unlink()
    with pytest.raises(ScanReadError, match="material0.jpeg"):
        read_thuman_subject(discover_thuman(root)[0])


def test_missing_material_library_names_the_file(written):
    root, folder = written
    (folder / "material0.mtl").unlink()
    with pytest.raises(ScanReadError, match="material0.mtl"):
        read_thuman_subject(discover_thuman(root)[0])


def test_corrupt_and_empty_obj_are_refused(written):
    root, folder = written
    (folder / "0007.obj").write_bytes(b"mtllib material0.mtl\n\x00\x01garbage\xff\n")
    with pytest.raises(ScanReadError, match="0007.obj"):
        read_thuman_subject(discover_thuman(root)[0])
    (folder / "0007.obj").write_text("mtllib material0.mtl\nusemtl material0\n")
    with pytest.raises(ScanReadError, match="0007.obj"):
        read_thuman_subject(discover_thuman(root)[0])


def test_empty_obj_is_named_an_empty_mesh_not_a_missing_material(written):
    root, folder = written
    for content in (b"", b"# exported by a tool that crashed\n", b"mtllib material0.mtl\nusemtl material0\n"):
        (folder / "0007.obj").write_bytes(content)
        with pytest.raises(ScanReadError, match=r"0007\.obj: empty mesh: the file has no vertices and no faces") as caught:
            read_thuman_subject(discover_thuman(root)[0])
        assert "mtllib" not in str(caught.value)


@pytest.mark.parametrize("fraction", [0.4, 0.9])
def test_truncated_texture_names_the_file_and_says_truncated(written, fraction):
    root, folder = written
    texture = folder / "material0.jpeg"
    data = texture.read_bytes()
    texture.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ScanReadError, match=r"material0\.jpeg: the texture image is truncated .*interrupted download"):
        read_thuman_subject(discover_thuman(root)[0])
    texture.write_bytes(b"not a jpeg at all")
    with pytest.raises(ScanReadError, match=r"material0\.jpeg: the texture image cannot be decoded .*not a readable image"):
        read_thuman_subject(discover_thuman(root)[0])


def test_obj_without_texture_coordinates_is_refused(written):
    root, folder = written
    plain = trimesh.creation.box()
    text = "mtllib material0.mtl\n" + plain.export(file_type="obj")
    (folder / "0007.obj").write_text(text)
    with pytest.raises(ScanReadError, match="0007.obj"):
        read_thuman_subject(discover_thuman(root)[0])


def test_unknown_layouts_are_refused(tmp_path):
    with pytest.raises(ScanReadError, match="not found"):
        discover_thuman(tmp_path / "absent")
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "0001.ply").write_text("ply")
    with pytest.raises(ScanReadError, match="unknown layout"):
        discover_thuman(tmp_path / "scans")
    with pytest.raises(ScanReadError, match="0001.obj"):
        read_thuman_subject(SubjectRef("thuman", "0001", tmp_path / "scans"))
