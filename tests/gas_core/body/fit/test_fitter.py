"""Multi-view fitting: COCO regressor, initialisation, recovery of known bodies, a synthetic Anny subject."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gas_core.body.fit.fitter import CocoRegressor, FitConfig, FitResult, fit_smpl_multiview, similarity_transform
from gas_core.body.fit.keypoints import ProjectedKeypoints
from gas_core.body.limits import sample_body_pose
from gas_core.body.smpl import SMPLParams
from gas_core.cameras import OrbitSpec, orbit_cameras


@pytest.fixture(scope="module")
def cameras():
    return orbit_cameras(OrbitSpec(num_views=8, distance=3.0, width=512, height=512))


def _known_params(seed: int) -> SMPLParams:
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    return SMPLParams(
        betas=torch.as_tensor(rng.normal(0.0, 0.7, size=(1, 10)), dtype=torch.float32),
        body_pose=sample_body_pose(1, generator, fraction=0.35),
        global_orient=torch.as_tensor([[0.0, rng.uniform(-np.pi, np.pi), 0.0]], dtype=torch.float32),
        transl=torch.as_tensor(rng.uniform(-0.1, 0.1, size=(1, 3)), dtype=torch.float32),
        scale=torch.tensor([float(rng.uniform(0.95, 1.05))]),
    )


def test_open_model_regressor_reproduces_ground_truth_keypoints(body, regressor):
    from gas_core.synth.humans import make_subject, sample_subject_spec

    assert regressor.weights.shape == (17, body.num_vertices)
    np.testing.assert_allclose(regressor.weights.sum(1), 1.0, atol=1e-6)
    subject = make_subject(sample_subject_spec(5), texture_size=16)
    regressed = regressor.regress(torch.as_tensor(subject.body_vertices[None], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(regressed, subject.coco17, atol=1e-4)


def test_regressor_save_load_and_smpl_variant(tmp_path, regressor):
    path = regressor.save(tmp_path / "coco.npz")
    loaded = CocoRegressor.load(path)
    np.testing.assert_array_equal(loaded.weights, regressor.weights)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        CocoRegressor.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.npz"):
        CocoRegressor.load(tmp_path / "bad.npz")

    joint_regressor = np.zeros((24, 7000))
    joint_regressor[np.arange(24), np.arange(24) * 10] = 1.0
    smpl_like = CocoRegressor.from_smpl_joint_regressor(joint_regressor)
    vertices = torch.randn(1, 7000, 3, dtype=torch.float64)
    keypoints = smpl_like.regress(vertices)[0]
    torch.testing.assert_close(keypoints[0], vertices[0, 332])  # nose vertex
    torch.testing.assert_close(keypoints[5], vertices[0, 160])  # left shoulder = SMPL joint 16
    assert smpl_like.keypoint_weights[11] < 1.0 and smpl_like.keypoint_weights[0] == 1.0
    with pytest.raises(ValueError, match="joint_regressor"):
        CocoRegressor.from_smpl_joint_regressor(np.zeros((10, 50)))
    with pytest.raises(ValueError, match="weights"):
        CocoRegressor(weights=np.ones((17, 5)), keypoint_weights=np.ones(17), source="bad")


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(6, 3))
    rotation = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    target = 1.3 * source @ rotation.T + np.array([0.1, -0.2, 0.3])
    scale, found_rotation, translation = similarity_transform(source, target)
    assert scale == pytest.approx(1.3)
    np.testing.assert_allclose(found_rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(translation, [0.1, -0.2, 0.3], atol=1e-9)
    with pytest.raises(ValueError, match="source and target"):
        similarity_transform(source, target[:3])


@pytest.mark.parametrize("seed", [1, 2])
def test_fit_recovers_a_known_body_of_the_model_itself(body, regressor, cameras, seed):
    truth = _known_params(seed)
    with torch.no_grad():
        output = body(truth)
        coco = regressor.regress(output.vertices)[0].numpy()
    keypoints = ProjectedKeypoints(coco, noise_px=0.5, seed=seed).detect(None, cameras)
    config = FitConfig(keypoint_iterations=150, surface_iterations=0)
    result = fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor, config=config)
    assert isinstance(result, FitResult)
    joint_error = np.linalg.norm(result.joints - output.joints[0].numpy(), axis=-1)
    assert joint_error.mean() < 0.03, joint_error
    assert result.keypoint_error_px < 2.0
    assert result.stage_losses["keypoints"][-1] < 0.2 * result.stage_losses["keypoints"][0]
    assert result.vertices.shape == (body.num_vertices, 3)
    assert set(result.timings) >= {"initialise", "keypoints", "total"}
    # Global placement: the pelvis lands where it should.
    assert np.linalg.norm(result.joints[0] - output.joints[0, 0].numpy()) < 0.03


def test_fit_with_noise_drops_and_outliers_stays_close(body, regressor, cameras):
    truth = _known_params(3)
    with torch.no_grad():
        output = body(truth)
        coco = regressor.regress(output.vertices)[0].numpy()
    keypoints = ProjectedKeypoints(coco, noise_px=3.0, drop_prob=0.1, outlier_prob=0.05, seed=3).detect(None, cameras)
    result = fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor,
                                config=FitConfig(keypoint_iterations=150, surface_iterations=0))
    joint_error = np.linalg.norm(result.joints - output.joints[0].numpy(), axis=-1)
    assert joint_error.mean() < 0.04, joint_error


def test_fit_synthetic_anny_subject_with_scan(body, regressor):
    from gas_core.synth.humans import make_subject, sample_subject_spec

    subject = make_subject(sample_subject_spec(11), texture_size=16)
    cameras = orbit_cameras(OrbitSpec(num_views=12, distance=3.0, width=768, height=768))
    keypoints = ProjectedKeypoints(subject.coco17, noise_px=1.0, seed=0).detect(None, cameras)
    config = FitConfig(keypoint_iterations=150, surface_iterations=30)
    no_scan = fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor, config=config)
    with_scan = fit_smpl_multiview(body, cameras, keypoints, scan_vertices=subject.vertices,
                                   coco_regressor=regressor, config=config)
    for result in (no_scan, with_scan):
        joint_error = np.linalg.norm(result.joints - subject.joints24, axis=-1)
        assert joint_error.mean() < 0.03, joint_error
    assert "surface" in with_scan.stage_losses and "surface" not in no_scan.stage_losses
    # The surface stage brings the body's skin closer to the scan's tight regions.
    from scipy.spatial import cKDTree

    def body_to_truth(result):
        return cKDTree(result.vertices).query(subject.body_vertices)[0].mean()

    assert body_to_truth(with_scan) < body_to_truth(no_scan) + 0.002


def test_fit_takes_a_tall_edge_body_size_from_the_shape_space(body, regressor):
    """A 2.4 m body with extreme proportions: its size comes from the betas, not from the global scale."""
    from gas_core.body.open_model import EDGE_PHENOTYPE_REGIONS
    from gas_core.synth.humans import make_subject, sample_edge_subject_spec

    region = next(region for region in EDGE_PHENOTYPE_REGIONS if region.name == "proportions near 0")
    subject = make_subject(sample_edge_subject_spec(5102, region), texture_size=16)
    assert np.ptp(subject.body_vertices[:, 1]) > 2.2  # really an edge body
    cameras = orbit_cameras(OrbitSpec(num_views=12, distance=3.0, width=768, height=768))
    keypoints = ProjectedKeypoints(subject.coco17, noise_px=1.0, seed=0).detect(None, cameras)
    result = fit_smpl_multiview(body, cameras, keypoints, scan_vertices=subject.vertices, coco_regressor=regressor,
                                config=FitConfig(surface_iterations=30))
    # Without the size prior this body was fitted as an average one scaled by 1.22 (ankle 4-14 cm off).
    assert abs(float(result.params.scale) - 1.0) < 0.05, float(result.params.scale)
    joint_error = np.linalg.norm(result.joints - subject.joints24, axis=-1)
    assert joint_error.mean() < 0.02, joint_error


def test_bad_arguments(body, regressor, cameras):
    keypoints = np.zeros((8, 17, 3))
    with pytest.raises(ValueError, match="keypoints2d"):
        fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor)  # nothing to triangulate
    with pytest.raises(ValueError, match="keypoints2d"):
        fit_smpl_multiview(body, cameras, np.zeros((8, 12, 3)), coco_regressor=regressor)
    with pytest.raises(ValueError, match="cameras"):
        fit_smpl_multiview(body, cameras[:3], keypoints, coco_regressor=regressor)
    with pytest.raises(ValueError, match="scan_vertices"):
        fit_smpl_multiview(body, cameras, keypoints, scan_vertices=np.zeros((10, 2)), coco_regressor=regressor)
    with pytest.raises(ValueError, match="scan_normals"):
        fit_smpl_multiview(body, cameras, keypoints, scan_normals=np.zeros((10, 3)), coco_regressor=regressor)
    with pytest.raises(ValueError, match="config"):
        fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor, config={"keypoint_iterations": 3})
    with pytest.raises(ValueError, match="scale_weight"):
        FitConfig(scale_weight=-1.0)
    small = CocoRegressor(weights=np.full((17, 4), 0.25), keypoint_weights=np.ones(17), source="tiny")
    with pytest.raises(ValueError, match="coco_regressor"):
        fit_smpl_multiview(body, cameras, keypoints, coco_regressor=small)
    with pytest.raises(ValueError, match="keypoint_iterations"):
        FitConfig(keypoint_iterations=-1)
    with pytest.raises(ValueError, match="surface_robust_scale_m"):
        FitConfig(surface_robust_scale_m=0.0)
    with pytest.raises(ValueError, match="robust_anneal_start"):
        FitConfig(robust_anneal_start=0.5)


def test_initialisation_works_with_three_torso_keypoints(body, regressor, cameras):
    truth = _known_params(4)
    with torch.no_grad():
        output = body(truth)
        coco = regressor.regress(output.vertices)[0].numpy()
    keypoints = ProjectedKeypoints(coco, seed=4).detect(None, cameras)
    keypoints[:, 11, 2] = 0.0  # the left hip is never seen
    result = fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor,
                                config=FitConfig(keypoint_iterations=0, surface_iterations=0))
    assert result.triangulation.confidence[11] == 0.0
    # Initialisation alone places the pelvis within a few centimetres and faces the right way.
    assert np.linalg.norm(result.joints[0] - output.joints[0, 0].numpy()) < 0.08
    found = Rotation.from_rotvec(result.params.global_orient[0].numpy())
    expected = Rotation.from_rotvec(truth.global_orient[0].numpy())
    assert (found.inv() * expected).magnitude() < np.radians(25)
