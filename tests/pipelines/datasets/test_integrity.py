"""Damaged raw files are refused with the file and the reason, never half-read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import trimesh

from pipelines.datasets.common import ScanReadError, load_body_model_parameters
from pipelines.datasets.integrity import check_obj_file, check_ply_file
from pipelines.datasets.thuman import discover_thuman, read_thuman_subject, write_thuman_subject
from pipelines.datasets.twok2k import discover_twok2k, read_twok2k_subject, write_twok2k_subject
from tests.pipelines.datasets.damage import cut_file, cut_file_at_line_end, set_obj_face_index


@pytest.fixture()
def thuman(tmp_path, small_subject):
    folder = write_thuman_subject(tmp_path, small_subject, "0007")
    return tmp_path, folder / "0007.obj"


@pytest.fixture()
def twok2k(tmp_path, small_subject):
    folder = write_twok2k_subject(tmp_path, small_subject, "00042")
    return tmp_path, folder / "00042.ply"


def _read_thuman(root):
    return read_thuman_subject(discover_thuman(root)[0])


def test_whole_files_pass_and_declare_their_counts(thuman, twok2k, small_subject):
    counts = check_obj_file(thuman[1])
    assert counts.vertices == len(small_subject.vertices) and counts.triangles == len(small_subject.faces)
    assert counts.texture_coordinates == len(small_subject.uv)
    counts = check_ply_file(twok2k[1])
    assert counts.vertices == len(small_subject.vertices) and counts.triangles == len(small_subject.faces)
    assert len(_read_thuman(thuman[0]).mesh.faces) == len(small_subject.faces)


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.5, 0.62, 0.8, 0.97, 0.9995])
def test_obj_cut_anywhere_is_refused(thuman, fraction):
    root, obj = thuman
    cut_file(obj, fraction)
    with pytest.raises(ScanReadError, match=r"0007\.obj.*(no faces|cut|belong to no face)"):
        _read_thuman(root)


@pytest.mark.parametrize("fraction", [0.5, 0.75, 0.95])
def test_obj_cut_at_a_line_end_is_refused(thuman, fraction):
    """No partial line is left, so only the structure tells: vertices that no face uses."""
    root, obj = thuman
    cut_file_at_line_end(obj, fraction)
    with pytest.raises(ScanReadError, match=r"0007\.obj: \d+ of \d+ vertices belong to no face"):
        _read_thuman(root)


def test_obj_face_past_the_end_of_the_vertex_or_uv_list_is_refused(thuman, small_subject):
    root, obj = thuman
    original = obj.read_bytes()
    set_obj_face_index(obj, len(small_subject.vertices) + 5)
    with pytest.raises(ScanReadError, match=rf"0007\.obj: faces index vertices that do not exist \(index {len(small_subject.vertices) + 5}"):
        _read_thuman(root)
    obj.write_bytes(original)
    set_obj_face_index(obj, len(small_subject.uv) + 1, texture=True)
    with pytest.raises(ScanReadError, match=r"0007\.obj: faces index texture coordinates that do not exist"):
        _read_thuman(root)
    obj.write_bytes(original)
    set_obj_face_index(obj, 0)  # OBJ indices start at 1
    with pytest.raises(ScanReadError, match="vertices that do not exist"):
        _read_thuman(root)


def test_obj_with_non_finite_coordinates_or_tiny_extent_is_refused(thuman):
    root, obj = thuman
    original = obj.read_text()
    lines = original.split("\n")
    first_vertex = next(i for i, line in enumerate(lines) if line.startswith("v "))
    lines[first_vertex] = "v nan 0.0 0.0"
    obj.write_text("\n".join(lines))
    with pytest.raises(ScanReadError, match=r"0007\.obj: mesh has non-finite"):
        _read_thuman(root)
    shrunk = [f"v {' '.join(str(0.1 * float(x)) for x in line.split()[1:])}" if line.startswith("v ") else line
              for line in original.split("\n")]
    obj.write_text("\n".join(shrunk))
    with pytest.raises(ScanReadError, match=r"0007\.obj: the mesh is 0\.\d+ units across at most, far smaller than a person"):
        _read_thuman(root)


def test_obj_with_mixed_or_short_faces_is_refused(tmp_path):
    path = tmp_path / "a.obj"
    vertices = "".join(f"v {x} {y} 0\n" for x, y in ((0, 0), (1, 0), (0, 2), (1, 2)))
    path.write_text(vertices + "vt 0 0\nf 1/1 2/1 3/1\nf 2 4 3\n")
    with pytest.raises(ScanReadError, match="mix formats"):
        check_obj_file(path)
    path.write_text(vertices + "f 1 2 3\nf 2 4\n")
    with pytest.raises(ScanReadError, match="fewer than three corners"):
        check_obj_file(path)
    path.write_text(vertices + "f 1 2 3\nf 2 4 3")  # no final end of line, but a whole record
    assert check_obj_file(path).triangles == 2
    path.write_text(vertices + "f -4 -3 -2\nf -3 -1 -2\n")  # relative indices
    assert check_obj_file(path).triangles == 2


@pytest.mark.parametrize("fraction", [0.001, 0.2, 0.45, 0.7, 0.99, 0.99999])
def test_binary_ply_cut_anywhere_is_refused(twok2k, fraction):
    root, ply = twok2k
    cut_file(ply, fraction)
    with pytest.raises(ScanReadError, match=r"00042\.ply: .*(cut|header|not a PLY)"):
        read_twok2k_subject(discover_twok2k(root)[0])


@pytest.mark.parametrize("fraction", [0.5, 0.2, 0.9])
def test_binary_ply_cut_reports_the_bytes_expected_and_found(twok2k, small_subject, fraction):
    root, ply = twok2k
    whole = len(ply.read_bytes())
    cut_file(ply, fraction)
    found = len(ply.read_bytes())
    vertices, faces = len(small_subject.vertices), len(small_subject.faces)
    message = (rf"00042\.ply: the file is truncated: expected (at least )?{whole} bytes for the {vertices} vertices and {faces} "
               rf"faces its header declares, found {found} \({whole - found} missing\)")
    with pytest.raises(ScanReadError, match=message):
        read_twok2k_subject(discover_twok2k(root)[0])


def test_empty_ply_is_named_empty(twok2k):
    root, ply = twok2k
    ply.write_bytes(b"")
    with pytest.raises(ScanReadError, match=r"00042\.ply: empty file \(0 bytes\)"):
        read_twok2k_subject(discover_twok2k(root)[0])
    ply.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
                    b"property float z\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n")
    with pytest.raises(ScanReadError, match=r"00042\.ply: empty mesh: the header declares 0 vertices and 0 faces"):
        read_twok2k_subject(discover_twok2k(root)[0])


def test_ascii_ply_cut_is_refused_and_whole_one_reads(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    sphere.vertices *= np.array([0.25, 0.85, 0.15])
    colours = np.full((len(sphere.vertices), 4), 200, np.uint8)
    mesh = trimesh.Trimesh(sphere.vertices, sphere.faces, vertex_colors=colours, process=False)
    folder = tmp_path / "00001"
    folder.mkdir()
    path = folder / "00001.ply"
    path.write_bytes(mesh.export(file_type="ply", encoding="ascii"))
    assert check_ply_file(path).triangles == len(sphere.faces)
    assert len(read_twok2k_subject(discover_twok2k(tmp_path)[0]).mesh.faces) == len(sphere.faces)
    for fraction in (0.3, 0.9, 0.9999):
        path.write_bytes(mesh.export(file_type="ply", encoding="ascii"))
        cut_file(path, fraction)
        with pytest.raises(ScanReadError, match=r"00001\.ply: .*cut short"):
            read_twok2k_subject(discover_twok2k(tmp_path)[0])


def test_binary_ply_face_past_the_declared_vertices_is_refused(twok2k, small_subject):
    root, ply = twok2k
    data = bytearray(ply.read_bytes())
    body = data.index(b"end_header\n") + len(b"end_header\n")
    first_face = body + len(small_subject.vertices) * (3 * 4 + 4)  # float xyz + uchar rgba
    assert data[first_face] == 3  # the list length of the first triangle
    data[first_face + 1:first_face + 5] = np.int32(len(small_subject.vertices) + 9).tobytes()
    ply.write_bytes(bytes(data))
    with pytest.raises(ScanReadError, match=r"00042\.ply: faces index vertices that do not exist"):
        read_twok2k_subject(discover_twok2k(root)[0])


def test_ply_header_count_above_the_data_is_refused(twok2k, small_subject):
    root, ply = twok2k
    data = ply.read_bytes()
    declared = f"element vertex {len(small_subject.vertices)}".encode()
    ply.write_bytes(data.replace(declared, f"element vertex {len(small_subject.vertices) + 500}".encode(), 1))
    with pytest.raises(ScanReadError, match=r"00042\.ply: .*cut short"):
        read_twok2k_subject(discover_twok2k(root)[0])


def _smplx_fit() -> dict[str, np.ndarray]:
    return {"betas": np.zeros((1, 10), np.float32), "global_orient": np.zeros((1, 3), np.float32),
            "body_pose": np.zeros((1, 63), np.float32), "transl": np.zeros((1, 3), np.float32),
            "scale": np.ones(1, np.float32)}


def test_garbage_truncated_or_incomplete_parameter_files_are_refused(thuman):
    root, _ = thuman
    folder = root / "smplx" / "0007"
    folder.mkdir(parents=True)
    path = folder / "smplx_param.pkl"
    path.write_bytes(pickle.dumps(_smplx_fit(), protocol=2))
    assert _read_thuman(root).body_model_params["body_pose"].shape == (1, 63)
    cases = {
        "garbage": (np.random.default_rng(0).bytes(4096), "cannot read body-model parameters"),
        "cut": (pickle.dumps(_smplx_fit(), protocol=2)[:300], "cannot read body-model parameters"),
        "no pose": (pickle.dumps({k: v for k, v in _smplx_fit().items() if k != "body_pose"}), "no body_pose"),
        "nan": (pickle.dumps({**_smplx_fit(), "betas": np.full((1, 10), np.nan)}), "NaN or infinite"),
        "smpl sized": (pickle.dumps({**_smplx_fit(), "body_pose": np.zeros((1, 69))}), "'body_pose' has 69 values"),
        "text": (pickle.dumps({**_smplx_fit(), "transl": np.array(["a", "b", "c"])}), "not a non-empty numeric"),
    }
    for name, (content, reason) in cases.items():
        path.write_bytes(content)
        with pytest.raises(ScanReadError, match=rf"smplx_param\.pkl: .*{reason}"):
            _read_thuman(root)


def test_2k2k_parameter_file_is_checked_for_its_model(twok2k):
    root, ply = twok2k
    smpl_fit = {**_smplx_fit(), "body_pose": np.zeros((1, 69))}
    (ply.parent / "00042_smpl.npz").write_bytes(b"")
    with pytest.raises(ScanReadError, match=r"00042_smpl\.npz"):
        read_twok2k_subject(discover_twok2k(root)[0])
    np.savez(ply.parent / "00042_smpl.npz", **smpl_fit)
    scan = read_twok2k_subject(discover_twok2k(root)[0])
    assert scan.body_model == "smpl" and scan.body_model_params["body_pose"].shape == (1, 69)
    with pytest.raises(ValueError, match="model must be one of"):
        load_body_model_parameters(ply.parent / "00042_smpl.npz", "mano")
