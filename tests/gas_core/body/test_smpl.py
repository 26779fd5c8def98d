"""BodyModel and SMPLParams, on the open body model and on a tiny SMPL-format file made here."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from gas_core.body.joints import SMPL_PARENTS
from gas_core.body.limits import sample_body_pose
from gas_core.body.open_model import OPEN_BODY_MODEL_LABEL
from gas_core.body.smpl import SMPL_LABEL, BodyModel, BodyOutput, SMPLParams

TINY_VERTICES_PER_JOINT = 12
TINY_BETAS = 4


def winding_numbers(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalized winding number of each point (N, 3) w.r.t. a triangle mesh: ~1 inside, ~0 outside.

    Sum over triangles of the signed solid angle (Van Oosterom and Strackee) divided by 4 pi.
    """
    corners = vertices[faces][None] - points[:, None, None, :]  # (N, F, 3, 3)
    a, b, c = corners[:, :, 0], corners[:, :, 1], corners[:, :, 2]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    determinant = np.einsum("nfi,nfi->nf", a, np.cross(b, c))
    denominator = (
        la * lb * lc
        + np.einsum("nfi,nfi->nf", a, b) * lc
        + np.einsum("nfi,nfi->nf", b, c) * la
        + np.einsum("nfi,nfi->nf", c, a) * lb
    )
    return (2.0 * np.arctan2(determinant, denominator)).sum(axis=1) / (4.0 * np.pi)


def test_winding_numbers_of_a_cube():
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    faces = np.array([
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
    ])
    numbers = winding_numbers(np.array([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [0.9, 0.1, 0.5]]), corners, faces)
    np.testing.assert_allclose(np.abs(numbers), [1.0, 0.0, 1.0], atol=1e-9)


@pytest.fixture(scope="module")
def open_model(open_body_model_dir) -> BodyModel:
    return BodyModel(open_body_model_dir)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A hand-made SMPL-format model: 12 vertices around each of 24 joints, random shape and
    pose-corrective directions (non-zero, so the pose-corrective path is exercised)."""
    rng = np.random.default_rng(7)
    joints = np.zeros((24, 3))
    for joint, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            joints[joint] = joints[parent] + rng.normal(0.0, 0.1, 3)
    offsets = rng.normal(0.0, 0.03, (24, TINY_VERTICES_PER_JOINT, 3))
    vertices = (joints[:, None] + offsets).reshape(-1, 3)
    owner = np.repeat(np.arange(24), TINY_VERTICES_PER_JOINT)
    weights = np.zeros((len(vertices), 24))
    weights[np.arange(len(vertices)), owner] = 0.7
    weights[np.arange(len(vertices)), np.maximum(np.asarray(SMPL_PARENTS)[owner], 0)] += 0.3
    regressor = np.zeros((24, len(vertices)))
    regressor[owner, np.arange(len(vertices))] = 1.0 / TINY_VERTICES_PER_JOINT
    faces = rng.integers(0, len(vertices), (200, 3))
    kintree = np.stack([np.asarray(SMPL_PARENTS), np.arange(24)])
    kintree[0, 0] = 4294967295  # as in the SMPL release
    contents = {
        "v_template": vertices,
        "f": faces.astype(np.uint32),
        "shapedirs": rng.normal(0.0, 0.01, (len(vertices), 3, TINY_BETAS)),
        "posedirs": rng.normal(0.0, 0.002, (len(vertices), 3, 207)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
    }
    folder = tmp_path_factory.mktemp("tiny_smpl")
    (folder / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(contents, protocol=2))
    return folder


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir) -> BodyModel:
    return BodyModel(tiny_model_dir)


def random_params(batch: int, num_betas: int, seed: int = 0) -> SMPLParams:
    generator = torch.Generator().manual_seed(seed)
    return SMPLParams(
        betas=torch.randn(batch, num_betas, generator=generator).clamp(-2.0, 2.0),
        body_pose=sample_body_pose(batch, generator),
        global_orient=0.5 * torch.randn(batch, 3, generator=generator),
        transl=torch.randn(batch, 3, generator=generator),
    )


# --- SMPLParams ---------------------------------------------------------------------------------


def test_zeros_and_json_round_trip():
    params = SMPLParams.zeros(3)
    assert params.betas.shape == (3, 10) and params.body_pose.shape == (3, 23, 3)
    assert params.global_orient.shape == (3, 3) and params.transl.shape == (3, 3)
    assert torch.equal(params.scale, torch.ones(3))
    varied = random_params(2, 10, seed=3)
    restored = SMPLParams.from_dict(json.loads(json.dumps(varied.to_dict())))
    for name in ("betas", "body_pose", "global_orient", "transl", "scale"):
        torch.testing.assert_close(getattr(restored, name), getattr(varied, name))
    without_scale = {key: value for key, value in varied.to_dict().items() if key != "scale"}
    assert torch.equal(SMPLParams.from_dict(without_scale).scale, torch.ones(2))


@pytest.mark.parametrize(
    "field, value",
    [
        ("body_pose", torch.zeros(2, 24, 3)),
        ("betas", torch.zeros(2, 11)),
        ("betas", torch.zeros(3, 10)),
        ("global_orient", torch.zeros(2, 4)),
        ("transl", torch.full((2, 3), float("nan"))),
        ("scale", torch.tensor([1.0, -1.0])),
        ("scale", torch.ones(2, 1)),
        ("transl", torch.zeros(2, 3, dtype=torch.float64)),
        ("betas", torch.zeros(2, 10, dtype=torch.long)),
        ("global_orient", np.zeros((2, 3))),
    ],
)
def test_params_validation_names_the_field(field, value):
    fields = SMPLParams.zeros(2).__dict__.copy()
    fields[field] = value
    with pytest.raises(ValueError, match=field):
        SMPLParams(**fields)


def test_from_dict_errors_name_the_field():
    data = SMPLParams.zeros(1).to_dict()
    del data["transl"]
    with pytest.raises(ValueError, match="transl"):
        SMPLParams.from_dict(data)
    data = SMPLParams.zeros(1).to_dict()
    data["betas"] = [["a"] * 10]
    with pytest.raises(ValueError, match="betas"):
        SMPLParams.from_dict(data)
    with pytest.raises(ValueError, match="batch"):
        SMPLParams.zeros(0)


# --- loading ------------------------------------------------------------------------------------


def test_missing_model_names_folder_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("GAS_BODY_MODEL_PATH", raising=False)
    with pytest.raises(FileNotFoundError) as error:
        BodyModel(tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message
    assert "GAS_BODY_MODEL_PATH" in message and "gas body build" in message


def test_corrupt_model_file_is_reported(tmp_path):
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="SMPL_NEUTRAL.pkl"):
        BodyModel(tmp_path)
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(ValueError, match="lacks"):
        BodyModel(tmp_path)


def test_environment_variable_selects_the_model(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("GAS_BODY_MODEL_PATH", str(tiny_model_dir))
    model = BodyModel()
    assert model.num_vertices == 24 * TINY_VERTICES_PER_JOINT
    assert BodyModel(tiny_model_dir / "SMPL_NEUTRAL.pkl").num_vertices == model.num_vertices


def test_labels_and_properties(open_model, tiny_model):
    assert open_model.label == OPEN_BODY_MODEL_LABEL and open_model.is_open_model
    assert tiny_model.label == SMPL_LABEL and not tiny_model.is_open_model
    for model in (open_model, tiny_model):
        assert model.faces.dtype == torch.long and model.faces.shape[1] == 3
        assert model.skinning_weights.shape == (model.num_vertices, 24)
        torch.testing.assert_close(model.skinning_weights.sum(1), torch.ones(model.num_vertices))
        assert model.parents.tolist() == list(SMPL_PARENTS)
    assert tiny_model.faces.shape == (200, 3) and tiny_model.num_betas == TINY_BETAS
    assert open_model.texture_coordinates.shape[1] == 2
    assert open_model.texture_faces.shape == open_model.faces.shape
    assert tiny_model.texture_coordinates is None


# --- posing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["open", "tiny"])
def test_forward_matches_smplx_and_skins_with_joint_transforms(which, open_model, tiny_model):
    model = open_model if which == "open" else tiny_model
    params = random_params(2, model.num_betas, seed=1)
    with torch.no_grad():
        output = model(params)
        reference = model.smplx_model(
            betas=params.betas, body_pose=params.body_pose.reshape(2, -1),
            global_orient=params.global_orient, transl=params.transl,
        )
    assert isinstance(output, BodyOutput)
    assert output.vertices.shape == (2, model.num_vertices, 3)
    assert output.joints.shape == (2, 24, 3) and output.joint_transforms.shape == (2, 24, 4, 4)
    torch.testing.assert_close(output.vertices, reference.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(output.joints, reference.joints[:, :24], atol=1e-5, rtol=0)
    # x_posed = sum_j w_j A_j x_rest, and each joint sits where its transform takes its rest position
    rest = torch.cat([output.rest_vertices, torch.ones(2, model.num_vertices, 1)], dim=-1)
    skinned = torch.einsum("vj,bjxy,bvy->bvx", model.skinning_weights, output.joint_transforms[..., :3, :], rest)
    torch.testing.assert_close(skinned, output.vertices, atol=1e-5, rtol=0)
    moved_joints = torch.einsum("bjxy,bjy->bjx", output.joint_transforms[..., :3, :3], output.rest_joints)
    torch.testing.assert_close(moved_joints + output.joint_transforms[..., :3, 3], output.joints, atol=1e-5, rtol=0)


def test_scale_multiplies_about_the_origin_before_translation(tiny_model):
    params = random_params(2, TINY_BETAS, seed=2)
    scale = torch.tensor([0.5, 1.7])
    unit = tiny_model(SMPLParams(params.betas, params.body_pose, params.global_orient, torch.zeros(2, 3)))
    scaled = tiny_model(SMPLParams(params.betas, params.body_pose, params.global_orient, params.transl, scale))
    expected = unit.vertices * scale[:, None, None] + params.transl[:, None]
    torch.testing.assert_close(scaled.vertices, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(scaled.joints, unit.joints * scale[:, None, None] + params.transl[:, None], atol=1e-5, rtol=0)


def test_fewer_betas_are_zero_padded_and_too_many_rejected(open_model, tiny_model):
    params = random_params(1, 3, seed=4)
    padded = SMPLParams(torch.nn.functional.pad(params.betas, (0, 7)), params.body_pose, params.global_orient, params.transl)
    torch.testing.assert_close(open_model(params).vertices, open_model(padded).vertices)
    with pytest.raises(ValueError, match="betas"):
        tiny_model(random_params(1, 10))


def test_zero_params_give_the_template(open_model):
    output = open_model(SMPLParams.zeros(1))
    torch.testing.assert_close(output.vertices[0], open_model.template_vertices)
    torch.testing.assert_close(output.joint_transforms, torch.eye(4).expand(1, 24, 4, 4), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def posed_open_bodies(open_model, open_body_model_dir):
    """Six Anny bodies (three adults, three edge bodies: a child, the shortest and the tallest adults),
    as the model's betas express them, in random poses within the joint limits (and their rest bodies).

    The betas come from real Anny bodies because the regressed joints only follow the bodies the shape
    space was built from: independent random betas of +-2 on all ten directions make bodies no
    phenotype produces, where joints near the skin (spine, head) can leave the mesh.
    """
    from gas_core.body.anny_model import load_anny
    from gas_core.body.open_model import EDGE_PHENOTYPE_REGIONS, sample_adult_phenotypes, t_posed_anny

    with (open_body_model_dir / "SMPL_NEUTRAL.pkl").open("rb") as stream:
        model_file = pickle.load(stream, encoding="latin1")
    generator = np.random.default_rng(11)
    edges = [region.bounds() for region in EDGE_PHENOTYPE_REGIONS[:3]]
    phenotypes = np.concatenate([sample_adult_phenotypes(3, generator),
                                 [low + (high - low) * generator.random(6) for low, high in edges]])
    bodies = t_posed_anny(load_anny(), phenotypes, model_file["anny_to_smpl_translation"])
    directions = model_file["shapedirs"].reshape(-1, 10)
    betas, *_ = np.linalg.lstsq(directions, (bodies.vertices - model_file["v_template"]).reshape(6, -1).T, rcond=None)
    params = random_params(6, 10, seed=11)
    params = SMPLParams(torch.as_tensor(betas.T, dtype=torch.float32), params.body_pose, params.global_orient,
                        torch.zeros(6, 3))
    with torch.no_grad():
        return open_model(params)


def test_joints_stay_inside_the_mesh_in_random_poses(open_model, posed_open_bodies):
    faces = open_model.faces.numpy()
    for vertices, joints in zip(posed_open_bodies.vertices.double().numpy(), posed_open_bodies.joints.double().numpy()):
        numbers = winding_numbers(joints, vertices, faces)
        assert numbers.min() > 0.5, np.nonzero(numbers <= 0.5)


def test_no_vertex_moves_implausibly_in_random_poses(open_model, posed_open_bodies):
    """Criterion: a rigidly skinned vertex keeps its distance to its joint; blending may change it,
    but only near joint creases and by a few cm. A wrong weight, joint or transform moves vertices by
    decimetres. So: distance to the dominant joint changes by < 10 cm for every vertex and < 2.5 cm for
    99% of them; edges: 99% keep their length within a factor 2, and the total edge length within 5%."""
    dominant = open_model.skinning_weights.argmax(1)
    posed = posed_open_bodies.vertices - posed_open_bodies.joints[:, dominant]
    rest = posed_open_bodies.rest_vertices - posed_open_bodies.rest_joints[:, dominant]
    change = (posed.norm(dim=-1) - rest.norm(dim=-1)).abs()
    assert change.max() < 0.10
    assert torch.quantile(change.flatten(), 0.99) < 0.025
    faces = open_model.faces
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])

    def lengths(vertices):
        return (vertices[:, edges[:, 0]] - vertices[:, edges[:, 1]]).norm(dim=-1)

    ratio = lengths(posed_open_bodies.vertices) / lengths(posed_open_bodies.rest_vertices)
    stretch = torch.maximum(ratio, 1.0 / ratio)
    assert torch.quantile(stretch.flatten(), 0.99) < 2.0
    total = lengths(posed_open_bodies.vertices).sum(1) / lengths(posed_open_bodies.rest_vertices).sum(1)
    assert ((total - 1.0).abs() < 0.05).all()


def test_params_from_records_stack_shard_dicts():
    records = [{"betas": np.full(10, 0.1 * i), "body_pose": np.full((23, 3), 0.01 * i), "global_orient": [0.0, i, 0.0],
                "transl": [i, 0.0, 0.0], "scale": 1.0 + i, "body_model": "any label"} for i in range(3)]
    params = SMPLParams.from_records(records)
    assert params.batch_size == 3 and params.body_pose.shape == (3, 23, 3) and params.scale.shape == (3,)
    assert torch.allclose(params.scale, torch.tensor([1.0, 2.0, 3.0])) and float(params.transl[2, 0]) == 2.0
    without_scale = SMPLParams.from_records([{key: value for key, value in records[0].items() if key != "scale"}])
    assert float(without_scale.scale[0]) == 1.0
    with pytest.raises(ValueError, match="transl"):
        SMPLParams.from_records([{key: value for key, value in records[0].items() if key != "transl"}])
    with pytest.raises(ValueError, match="non-empty"):
        SMPLParams.from_records([])
