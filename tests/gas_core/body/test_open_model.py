"""The open body model file: smplx loads it, it reproduces Anny's T-pose, and its shape space and
joint regressor follow Anny's bodies, edge bodies (children, very short and tall adults, extreme
proportions) included."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from gas_core.body.anny_model import anny_to_smpl_frame, load_anny
from gas_core.body.joints import SMPL_JOINT_NAMES, SMPL_PARENTS
from gas_core.body.open_model import (
    METADATA_FILENAME,
    NUM_POSE_BLEND_FEATURES,
    NUM_SHAPE_COMPONENTS,
    OPEN_BODY_MODEL_LABEL,
    OPEN_MODEL_FORMAT_VERSION,
    SMPL_MODEL_FILENAME,
    TEMPLATE_PHENOTYPE,
    anny_t_pose_parameters,
    EDGE_PHENOTYPE_REGIONS,
    build_open_body_model,
    ensure_open_body_model,
    sample_adult_phenotypes,
    sample_edge_phenotypes,
    smpl_joint_anchor_matrix,
    smpl_skinning_weights,
    t_posed_anny,
)

JOINT = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def model_file(open_body_model_dir):
    with (open_body_model_dir / SMPL_MODEL_FILENAME).open("rb") as stream:
        return pickle.load(stream, encoding="latin1")


@pytest.fixture(scope="module")
def held_out_bodies(model_file):
    """Anny bodies for phenotypes the builder never saw (another seed), in the model's frame."""
    phenotypes = sample_adult_phenotypes(6, np.random.default_rng(12345))
    return t_posed_anny(load_anny(), phenotypes, model_file["anny_to_smpl_translation"])


@pytest.fixture(scope="module")
def edge_bodies(model_file):
    """Two held-out bodies per edge region (a seed the builder never used), and their region index."""
    phenotypes, regions = sample_edge_phenotypes(2 * len(EDGE_PHENOTYPE_REGIONS), np.random.default_rng(2024))
    return t_posed_anny(load_anny(), phenotypes, model_file["anny_to_smpl_translation"]), regions


@pytest.fixture(scope="module")
def smplx_model(open_body_model_dir):
    import smplx

    return smplx.SMPL(model_path=str(open_body_model_dir)).requires_grad_(False)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_file_has_smpl_arrays_with_smpl_shapes(model_file):
    num_vertices = model_file["v_template"].shape[0]
    assert model_file["v_template"].shape == (num_vertices, 3)
    assert model_file["f"].shape[1] == 3 and model_file["f"].max() == num_vertices - 1
    assert model_file["shapedirs"].shape == (num_vertices, 3, NUM_SHAPE_COMPONENTS)
    assert model_file["posedirs"].shape == (num_vertices, 3, NUM_POSE_BLEND_FEATURES)
    assert not np.any(model_file["posedirs"])  # no pose correctives
    assert model_file["J_regressor"].shape == (24, num_vertices)
    assert model_file["weights"].shape == (num_vertices, 24)
    assert model_file["kintree_table"].shape == (2, 24)
    assert list(model_file["kintree_table"][0]) == list(SMPL_PARENTS)
    assert model_file["vt"].shape[1] == 2 and model_file["ft"].shape == model_file["f"].shape
    assert model_file["ft"].max() < model_file["vt"].shape[0]
    assert model_file["open_model_label"] == OPEN_BODY_MODEL_LABEL
    assert model_file["anny_version"] == "0.6.2"
    np.testing.assert_allclose(model_file["weights"].sum(1), 1.0, atol=1e-9)
    assert model_file["open_model_format_version"] == OPEN_MODEL_FORMAT_VERSION
    regressor = model_file["J_regressor"]
    np.testing.assert_allclose(regressor.sum(1), 1.0, atol=1e-9)  # affine: joints follow rigid motion and scale
    assert (regressor != 0).sum(1).max() <= 1024  # local: each joint reads its own neighbourhood
    assert np.abs(regressor).sum(1).max() < 40.0  # small signed weights: no large cancellations


def test_smplx_loads_the_file_unchanged_and_ignores_extra_keys(smplx_model, model_file):
    output = smplx_model(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=torch.zeros(1, 3))
    assert output.vertices.shape == (1, model_file["v_template"].shape[0], 3)
    np.testing.assert_allclose(output.vertices[0].numpy(), model_file["v_template"], atol=1e-6)


def test_zero_pose_and_shape_reproduce_anny_t_posed_neutral_body(smplx_model, model_file):
    anny = load_anny()
    phenotype = torch.tensor([TEMPLATE_PHENOTYPE], dtype=anny.dtype)
    output = anny(pose_parameters=anny_t_pose_parameters(anny, phenotype), phenotype_kwargs=phenotype)
    expected = anny_to_smpl_frame(output["vertices"][0].double().numpy()) + model_file["anny_to_smpl_translation"]

    vertices = smplx_model(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=torch.zeros(1, 3))
    errors = np.linalg.norm(vertices.vertices[0].double().numpy() - expected, axis=1)
    assert errors.mean() < 0.005
    assert errors.max() < 0.01


def test_rest_pose_is_a_t_pose_in_smpl_frame(model_file):
    joints = model_file["J_regressor"] @ model_file["v_template"]
    assert np.linalg.norm(joints[JOINT["pelvis"]]) < 0.01  # pelvis at the origin
    for side, direction in (("left", 1.0), ("right", -1.0)):
        for start, end in (("shoulder", "elbow"), ("elbow", "wrist")):
            segment = _unit(joints[JOINT[f"{side}_{end}"]] - joints[JOINT[f"{side}_{start}"]])
            assert segment[0] * direction > np.cos(np.radians(3.0)), (side, start, segment)
    vertices = model_file["v_template"]
    assert vertices[:, 1].max() > 0.5 and vertices[:, 1].min() < -0.7  # y up: head above, feet below
    head, pelvis = joints[JOINT["head"]], joints[JOINT["pelvis"]]
    assert head[1] - pelvis[1] > 0.4
    feet_forward = joints[JOINT["left_foot"]][2] - joints[JOINT["left_ankle"]][2]
    assert feet_forward > 0.05  # the body faces +z


def test_skinning_weights_map_bones_onto_their_smpl_joints(model_file):
    weights = smpl_skinning_weights(load_anny())
    np.testing.assert_allclose(weights, model_file["weights"])
    vertices = model_file["v_template"]
    dominant = weights.argmax(1)
    assert dominant[vertices[:, 0].argmax()] == JOINT["left_hand"]  # left fingertip
    assert dominant[vertices[:, 0].argmin()] == JOINT["right_hand"]
    assert dominant[vertices[:, 1].argmax()] == JOINT["head"]
    assert dominant[vertices[:, 1].argmin()] in (JOINT["left_foot"], JOINT["right_foot"], JOINT["left_ankle"], JOINT["right_ankle"])
    assert set(np.unique(dominant)) == set(range(24))  # every joint drives some vertices


def test_betas_change_shape_smoothly(smplx_model):
    smpl = smplx_model
    steps = torch.linspace(-2.0, 2.0, 9)
    for component in range(NUM_SHAPE_COMPONENTS):
        betas = torch.zeros(len(steps), 10)
        betas[:, component] = steps
        vertices = smpl(betas=betas, body_pose=torch.zeros(len(steps), 69), global_orient=torch.zeros(len(steps), 3)).vertices
        step_change = (vertices[1:] - vertices[:-1]).norm(dim=-1).amax(dim=1)
        # equal beta steps give equal, moderate changes: no jumps, no dead directions
        assert step_change.max() < 0.15
        assert step_change.min() > 0.001
        assert step_change.max() / step_change.min() < 1.01
        heights = vertices[..., 1].amax(1) - vertices[..., 1].amin(1)
        assert heights.min() > 0.75 and heights.max() < 2.5  # betas of +-2 stay human-sized (children included)
    first = torch.zeros(2, 10)
    first[:, 0] = torch.tensor([-1.0, 1.0])
    tall = smpl(betas=first, body_pose=torch.zeros(2, 69), global_orient=torch.zeros(2, 3)).vertices
    heights = tall[..., 1].amax(1) - tall[..., 1].amin(1)
    assert abs(float(heights[1] - heights[0])) > 0.1  # the main direction is mostly stature


def test_shape_space_covers_held_out_anny_bodies(model_file, held_out_bodies):
    directions = model_file["shapedirs"].reshape(-1, NUM_SHAPE_COMPONENTS)
    offsets = (held_out_bodies.vertices - model_file["v_template"]).reshape(len(held_out_bodies.vertices), -1)
    betas, *_ = np.linalg.lstsq(directions, offsets.T, rcond=None)
    residual = (offsets - (directions @ betas).T).reshape(len(offsets), -1, 3)
    assert np.linalg.norm(residual, axis=-1).mean() < 0.004
    assert np.abs(betas).max() < 5.0  # betas ~ N(0, 1): adults stay within a few units


def test_joint_regressor_tracks_anny_joints_on_held_out_phenotypes(model_file, held_out_bodies):
    regressed = np.einsum("jv,nvc->njc", model_file["J_regressor"], held_out_bodies.vertices)
    errors = np.linalg.norm(regressed - held_out_bodies.joints, axis=-1)
    assert errors.mean() < 0.003  # 3 mm over all joints
    assert errors.mean(0).max() < 0.006  # every joint, knees included
    # it follows shape: much better than keeping the template's joints
    template_joints = model_file["J_regressor"] @ model_file["v_template"]
    static_errors = np.linalg.norm(held_out_bodies.joints - template_joints, axis=-1)
    assert errors.mean() < 0.2 * static_errors.mean()
    anchors = smpl_joint_anchor_matrix(list(load_anny().bone_labels))
    assert anchors.shape == (24, len(load_anny().bone_labels))


def test_edge_bodies_are_in_the_shape_space_and_their_joints_are_tracked(model_file, edge_bodies):
    """Children, the shortest and tallest adults and extreme proportions: the knee, whose Anny bone slides
    along the leg as stature changes (4-5 cm at the edges), is followed like every other joint."""
    bodies, regions = edge_bodies
    directions = model_file["shapedirs"].reshape(-1, NUM_SHAPE_COMPONENTS)
    offsets = (bodies.vertices - model_file["v_template"]).reshape(len(bodies.vertices), -1)
    betas, *_ = np.linalg.lstsq(directions, offsets.T, rcond=None)
    projected = model_file["v_template"] + (directions @ betas).T.reshape(bodies.vertices.shape)
    assert np.linalg.norm(projected - bodies.vertices, axis=-1).mean() < 0.005
    assert np.abs(betas).max() < 5.0
    for vertices in (bodies.vertices, projected):  # as Anny makes them, and as the 10 betas can express them
        errors = np.linalg.norm(np.einsum("jv,nvc->njc", model_file["J_regressor"], vertices) - bodies.joints, axis=-1)
        for index, region in enumerate(EDGE_PHENOTYPE_REGIONS):
            per_joint = errors[regions == index].mean(0)
            assert per_joint.max() < 0.012, (region.name, SMPL_JOINT_NAMES[int(per_joint.argmax())], per_joint.max())
        knees = errors[:, [JOINT["left_knee"], JOINT["right_knee"]]]
        assert knees.max() < 0.012
    heights = bodies.vertices[..., 1].max(1) - bodies.vertices[..., 1].min(1)
    assert heights.min() < 1.35 and heights.max() > 2.1  # they really are at the edges


def test_metadata_reports_the_measured_fit(open_body_model_dir):
    metadata = json.loads((open_body_model_dir / METADATA_FILENAME).read_text())
    assert metadata["label"] == OPEN_BODY_MODEL_LABEL
    assert metadata["format_version"] == OPEN_MODEL_FORMAT_VERSION
    assert 0.99 < metadata["shape_explained_variance_total"] <= 1.0
    assert len(metadata["shape_explained_variance"]) == NUM_SHAPE_COMPONENTS
    assert metadata["joint_regressor_held_out_mean_error_mm"] < 3.0
    regions = metadata["held_out_by_region"]
    assert set(regions) == {"adult", *(region.name for region in EDGE_PHENOTYPE_REGIONS)}
    assert all(entry["worst_joint_mean_error_mm"] < 12.0 for entry in regions.values())
    assert metadata["build_seconds"] > 0.0  # reported, not a speed target (see the README)


def test_small_build_writes_both_files_and_ensure_reuses_them(tmp_path):
    folder = build_open_body_model(tmp_path / "model", num_shape_samples=24, seed=3)
    assert sorted(path.name for path in folder.iterdir()) == sorted([SMPL_MODEL_FILENAME, METADATA_FILENAME])
    metadata = json.loads((folder / METADATA_FILENAME).read_text())
    assert metadata["num_shape_samples"] == 24 and metadata["seed"] == 3 and metadata["num_held_out"] >= 2
    assert metadata["num_edge_samples"] >= len(EDGE_PHENOTYPE_REGIONS)
    stamp = (folder / SMPL_MODEL_FILENAME).stat().st_mtime_ns
    assert ensure_open_body_model(folder) == folder
    assert (folder / SMPL_MODEL_FILENAME).stat().st_mtime_ns == stamp  # current: not rebuilt


def test_ensure_rebuilds_an_outdated_model(tmp_path, monkeypatch):
    import gas_core.body.open_model as open_model

    folder = tmp_path / "stale"
    folder.mkdir()
    (folder / SMPL_MODEL_FILENAME).write_bytes(b"old")
    (folder / METADATA_FILENAME).write_text(json.dumps({"label": OPEN_BODY_MODEL_LABEL, "format_version": 0}))
    built = []
    monkeypatch.setattr(open_model, "build_open_body_model", lambda out_dir: built.append(out_dir) or out_dir)
    assert ensure_open_body_model(folder) == folder
    assert built == [folder]


def test_build_rejects_too_few_samples(tmp_path):
    with pytest.raises(ValueError, match="num_shape_samples"):
        build_open_body_model(tmp_path, num_shape_samples=5)


def test_edge_phenotypes_stay_in_their_regions():
    phenotypes, regions = sample_edge_phenotypes(23, np.random.default_rng(0))
    assert phenotypes.shape == (23, 6) and set(regions) == set(range(len(EDGE_PHENOTYPE_REGIONS)))
    for index, region in enumerate(EDGE_PHENOTYPE_REGIONS):
        low, high = region.bounds()
        rows = phenotypes[regions == index]
        assert np.all(rows >= low) and np.all(rows <= high)
    with pytest.raises(ValueError, match="count"):
        sample_edge_phenotypes(0, np.random.default_rng(0))


def test_t_pose_parameters_reject_bad_phenotypes():
    with pytest.raises(ValueError, match="phenotypes"):
        anny_t_pose_parameters(load_anny(), np.zeros((2, 4)))
