"""Monocular per-frame fit: exact fast keypoints, recovery of a known clip, smoothing, flagged frames,
the video keypoint sources and argument checks."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gas_core.body.fit.monocular import (
    RELAXED_BODY_POSE,
    MonocularFitConfig,
    _KeypointModel,
    detect_video_keypoints,
    fit_smpl_monocular,
    monocular_camera,
    project_video_keypoints,
)
from gas_core.body.limits import sample_body_pose
from gas_core.body.smpl import SMPLParams
from gas_core.cameras import Camera, look_at
from gas_core.metrics.joints import acceleration_error, procrustes_aligned_mpjpe, root_aligned_mpjpe

IMAGE_SIZE = (540, 960)


def _clip(frames: int, seed: int) -> SMPLParams:
    """A smooth clip in the camera frame: a blend between two random poses near the relaxed pose,
    a slow turn and a small walk towards the camera."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    start, end = (torch.as_tensor(RELAXED_BODY_POSE, dtype=torch.float32) + sample_body_pose(1, generator, 0.25)[0]
                  for _ in range(2))
    blend = torch.as_tensor(0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, frames)), dtype=torch.float32)[:, None, None]
    heading = np.linspace(-0.2, 0.25, frames)
    orient = (Rotation.from_rotvec([math.pi, 0.0, 0.0]) * Rotation.from_rotvec(np.outer(heading, [0.0, 1.0, 0.0])))
    transl = np.column_stack([np.linspace(-0.1, 0.1, frames), np.full(frames, 0.1), np.linspace(3.0, 2.8, frames)])
    betas = torch.as_tensor(rng.normal(0.0, 0.5, size=(1, 10)), dtype=torch.float32).repeat(frames, 1)
    return SMPLParams(betas=betas, body_pose=(1 - blend) * start + blend * end,
                      global_orient=torch.as_tensor(orient.as_rotvec(), dtype=torch.float32),
                      transl=torch.as_tensor(transl, dtype=torch.float32))


def _truth(body, regressor, params):
    with torch.no_grad():
        output = body(params)
    return output.joints.double().numpy(), regressor.regress(output.vertices.double()).numpy()


def test_fast_keypoints_equal_the_full_mesh(body, regressor):
    params = _clip(4, seed=3)
    joints, coco = _truth(body, regressor, params)
    model = _KeypointModel(body, regressor, 10, torch.float64, torch.device("cpu"))
    full_pose = torch.cat([params.global_orient[:, None], params.body_pose], 1).double()
    fast_coco, fast_joints = model(params.betas[:1].double(), full_pose, params.transl.double())
    np.testing.assert_allclose(fast_coco.numpy(), coco, atol=1e-5)
    np.testing.assert_allclose(fast_joints.numpy(), joints, atol=1e-5)


def test_recovers_a_known_clip_from_clean_keypoints(body, regressor):
    frames = 10
    truth = _clip(frames, seed=1)
    joints, coco = _truth(body, regressor, truth)
    camera = monocular_camera(IMAGE_SIZE)
    keypoints = project_video_keypoints(coco, camera)
    result = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, MonocularFitConfig.tiny(), coco_regressor=regressor)

    assert result.params.batch_size == frames and result.joints.shape == (frames, 24, 3)
    assert result.keypoints3d.shape == (frames, 17, 3) and not result.interpolated.any()
    # One shape for the whole clip.
    assert torch.equal(result.params.betas, result.params.betas[:1].expand(frames, -1))
    assert float(np.median(result.reprojection_error_px)) < 3.0
    assert root_aligned_mpjpe(result.joints, joints) < 0.06  # metres
    assert procrustes_aligned_mpjpe(result.joints, joints) < 0.045
    # Depth is the monocular fit's weakest quantity; it must still be within 10 %.
    assert np.all(np.abs(result.joints[:, 0, 2] / joints[:, 0, 2] - 1.0) < 0.1)
    with torch.no_grad():
        reposed = body(result.params).joints.double().numpy()
    np.testing.assert_allclose(reposed, result.joints, atol=1e-4)


def test_init_parameters_are_refined_not_replaced(body, regressor):
    """A given start (e.g. HMR2.0's) is used as is: a perturbed truth is pulled back towards the truth."""
    frames = 6
    truth = _clip(frames, seed=7)
    joints, coco = _truth(body, regressor, truth)
    keypoints = project_video_keypoints(coco, monocular_camera(IMAGE_SIZE))
    generator = torch.Generator().manual_seed(0)
    start = SMPLParams(betas=torch.zeros_like(truth.betas),
                       body_pose=truth.body_pose + 0.15 * torch.randn(truth.body_pose.shape, generator=generator),
                       global_orient=truth.global_orient, transl=truth.transl + torch.tensor([0.05, -0.03, 0.1]))
    with torch.no_grad():
        start_joints = body(start).joints.double().numpy()
    result = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, MonocularFitConfig.tiny(), init=start,
                                coco_regressor=regressor)
    assert len(result.losses) == MonocularFitConfig.tiny().iterations  # no orientation-only stage with a start
    assert root_aligned_mpjpe(result.joints, joints) < 0.6 * root_aligned_mpjpe(start_joints, joints)
    assert float(np.median(result.reprojection_error_px)) < 3.0


def test_smoothing_lowers_the_acceleration_error(body, regressor):
    frames = 14
    truth = _clip(frames, seed=2)
    joints, coco = _truth(body, regressor, truth)
    camera = monocular_camera(IMAGE_SIZE)
    keypoints = project_video_keypoints(coco, camera, noise_px=4.0, drop_prob=0.05, seed=5)
    config = MonocularFitConfig.tiny()
    smooth = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, config, coco_regressor=regressor)
    jittery = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, config.without_smoothing(), coco_regressor=regressor)
    smooth_error = acceleration_error(smooth.joints, joints, root_index=0)
    jittery_error = acceleration_error(jittery.joints, joints, root_index=0)
    assert smooth_error < 0.5 * jittery_error, (smooth_error, jittery_error)


def test_frames_without_keypoints_are_interpolated_and_flagged(body, regressor):
    frames = 8
    truth = _clip(frames, seed=4)
    _, coco = _truth(body, regressor, truth)
    # A rotated, displaced camera: the world is not the camera frame here.
    R, t = look_at(np.array([0.8, 0.3, -2.8]), np.array([0.0, 0.1, 3.0]), up=np.array([0.0, -1.0, 0.0]))
    base = monocular_camera(IMAGE_SIZE)
    camera = Camera(K=base.K, R=R, t=t, width=IMAGE_SIZE[0], height=IMAGE_SIZE[1])
    keypoints = project_video_keypoints(coco, camera)
    keypoints[3, :, 2] = 0.0  # nothing seen
    keypoints[5, 5:, 2] = 0.0  # only the face: too few keypoints and no torso
    result = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, MonocularFitConfig.tiny(), camera=camera,
                                coco_regressor=regressor)
    assert result.interpolated.tolist() == [False, False, False, True, False, True, False, False]
    assert np.isnan(result.reprojection_error_px[3]) and np.isfinite(result.reprojection_error_px[5])
    # Filled frames lie between their neighbours.
    expected = 0.5 * (result.params.transl[2] + result.params.transl[4])
    torch.testing.assert_close(result.params.transl[3], expected, atol=1e-5, rtol=0)
    assert float(np.nanmedian(result.reprojection_error_px)) < 6.0  # the body is ~270 px tall here
    assert result.camera is camera


def test_a_single_image_fits(body, regressor):
    truth = _clip(3, seed=8)
    joints, coco = _truth(body, regressor, truth)
    keypoints = project_video_keypoints(coco[1:2], monocular_camera(IMAGE_SIZE))
    result = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, MonocularFitConfig.tiny(), coco_regressor=regressor)
    assert result.num_frames == 1 and result.params.batch_size == 1
    assert float(result.reprojection_error_px[0]) < 4.0
    assert procrustes_aligned_mpjpe(result.joints, joints[1:2]) < 0.08  # one view, no temporal context


def test_project_video_keypoints_noise_and_drops():
    rng = np.random.default_rng(0)
    points = rng.normal(0.0, 0.2, size=(30, 17, 3)) + np.array([0.0, 0.0, 3.0])
    points[0, 0] = [0.0, 0.0, -1.0]  # behind the camera
    camera = monocular_camera(IMAGE_SIZE)
    clean = project_video_keypoints(points, camera)
    seen = clean[..., 2] > 0
    assert not seen[0, 0] and seen.mean() > 0.95
    np.testing.assert_allclose(clean[..., :2][seen], camera.project(points)[seen], atol=1e-9)
    noisy = project_video_keypoints(points, camera, noise_px=3.0, drop_prob=0.2, seed=7)
    np.testing.assert_array_equal(noisy, project_video_keypoints(points, camera, noise_px=3.0, drop_prob=0.2, seed=7))
    kept = noisy[..., 2] > 0
    assert 0.1 < 1.0 - kept.mean() < 0.3
    assert 2.5 < (noisy[..., :2] - clean[..., :2])[kept].std() < 3.5
    with pytest.raises(ValueError, match="points3d"):
        project_video_keypoints(points[0], camera)
    with pytest.raises(ValueError, match="camera"):
        project_video_keypoints(points, "camera")


@pytest.fixture(scope="module")
def tiny_pose_weights(tmp_path_factory):
    """A random-weight YOLOv8n-pose built from its config (no download) and saved locally."""
    import ultralytics

    path = tmp_path_factory.mktemp("pose") / "random-pose.pt"
    ultralytics.YOLO("yolov8n-pose.yaml").save(str(path))
    return path


def test_detect_video_keypoints_with_boxes(tiny_pose_weights, tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, size=(160, 128, 3), dtype=np.uint8) for _ in range(3)]
    boxes = np.array([[10.0, 20.0, 90.0, 150.0], [np.nan, 0.0, 1.0, 1.0], [30.0, 30.0, 20.0, 40.0]])
    keypoints = detect_video_keypoints(tiny_pose_weights, frames, boxes, image_size=128, min_box_confidence=0.0)
    assert keypoints.shape == (3, 17, 3)
    assert np.all((keypoints[..., 2] >= 0) & (keypoints[..., 2] <= 1))
    assert np.all(keypoints[1:] == 0.0)  # non-finite and empty boxes: nothing detected
    whole = detect_video_keypoints(tiny_pose_weights, frames, None, image_size=128, min_box_confidence=0.0)
    assert whole.shape == (3, 17, 3)
    with pytest.raises(ValueError, match="boxes"):
        detect_video_keypoints(tiny_pose_weights, frames, boxes[:2])
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        detect_video_keypoints(tiny_pose_weights, [frames[0], frames[1][:50]], None)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        detect_video_keypoints(tmp_path / "missing.pt", frames, None)


def test_bad_arguments_raise_value_errors_naming_them(body, regressor):
    keypoints = project_video_keypoints(_truth(body, regressor, _clip(3, seed=0))[1], monocular_camera(IMAGE_SIZE))
    config = replace(MonocularFitConfig.tiny(), global_iterations=1, iterations=1)
    with pytest.raises(ValueError, match="keypoints2d"):
        fit_smpl_monocular(body, keypoints[:, :12], IMAGE_SIZE, config)
    with pytest.raises(ValueError, match="keypoints2d"):
        fit_smpl_monocular(body, keypoints[0], IMAGE_SIZE, config)
    with pytest.raises(ValueError, match="image_size"):
        fit_smpl_monocular(body, keypoints, (540, -1), config)
    with pytest.raises(ValueError, match="camera"):
        fit_smpl_monocular(body, keypoints, IMAGE_SIZE, config, camera=monocular_camera((100, 100)))
    with pytest.raises(ValueError, match="init"):
        fit_smpl_monocular(body, keypoints, IMAGE_SIZE, config, init=SMPLParams.zeros(2))
    with pytest.raises(ValueError, match="config"):
        fit_smpl_monocular(body, keypoints, IMAGE_SIZE, "tiny")
    hidden = keypoints.copy()
    hidden[..., 2] = 0.1
    with pytest.raises(ValueError, match="keypoints2d: no frame"):
        fit_smpl_monocular(body, hidden, IMAGE_SIZE, config)
    for field, value in (("fov_deg", 0.0), ("min_keypoints", 2), ("smooth_pose_weight", -1.0),
                         ("focal_length_px", -5.0), ("iterations", -1), ("num_betas", 11)):
        with pytest.raises(ValueError, match=field):
            replace(MonocularFitConfig(), **{field: value})


def test_camera_from_field_of_view_or_focal_length():
    camera = monocular_camera((1080, 1920))
    assert camera.K[0, 0] == pytest.approx(960.0 / math.tan(math.radians(27.5)))
    assert camera.K[0, 2] == 540.0 and camera.K[1, 2] == 960.0
    np.testing.assert_array_equal(camera.R, np.eye(3))
    given = monocular_camera((1080, 1920), replace(MonocularFitConfig(), focal_length_px=1500.0))
    assert given.K[0, 0] == 1500.0 and given.K[1, 1] == 1500.0


def test_config_loads_with_the_stage_config_loader():
    from pipelines.config import load_config

    config = load_config(MonocularFitConfig, preset="tiny", overrides=["iterations=7", "focal_length_px=1200"])
    assert config.iterations == 7 and config.focal_length_px == 1200
    assert MonocularFitConfig.paper().iterations > MonocularFitConfig.tiny().iterations
    assert MonocularFitConfig.tiny().without_smoothing().smooth_joints_weight == 0.0


def _jump_clip(frames: int = 36):
    """The stress set's jump (crouch, flight with both arms overhead, landing) on the open body model,
    3 m in front of the default camera: (params, pelvis height above the start (T,) metres)."""
    from gas_core.synth.motion import MotionSpec, body_pose_tracks, root_rotations, root_trajectory

    spec = MotionSpec("jump", num_frames=frames, fps=30.0, seed=11)
    upright = Rotation.from_rotvec([math.pi, 0.0, 0.0])  # y up -> camera y down
    orient = upright * Rotation.from_matrix(root_rotations(spec))
    _, translation = root_trajectory(spec)
    transl = np.column_stack([np.zeros(frames), -translation[:, 1] + 0.1, np.full(frames, 3.0)])
    as_tensor = lambda value: torch.as_tensor(value, dtype=torch.float32)  # noqa: E731
    return SMPLParams(betas=torch.zeros(frames, 10), body_pose=as_tensor(body_pose_tracks(spec)),
                      global_orient=as_tensor(orient.as_rotvec()), transl=as_tensor(transl))


def test_arms_overhead_in_a_jump_are_reached_and_its_acceleration_kept(body, regressor):
    """Clinical joint limits and the wide robust start let the fit reach arms overhead (the former
    settings, everyday limits and a 6x robust start, leave the wrists ~290 px off here); smoothing keeps
    the jump's acceleration rather than flattening it."""
    from gas_core.metrics.joints import acceleration

    truth = _jump_clip()
    joints, coco = _truth(body, regressor, truth)
    camera = monocular_camera(IMAGE_SIZE)
    overhead = coco[:, 9:11, 1].min(1) < coco[:, 0, 1]  # image y down: a wrist above the nose
    assert overhead.sum() >= 6
    keypoints = project_video_keypoints(coco, camera, noise_px=1.0, seed=2)
    config = replace(MonocularFitConfig.tiny(), iterations=200)
    result = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, config, coco_regressor=regressor)
    wrists = np.linalg.norm(camera.project(result.keypoints3d[:, 9:11]) - camera.project(coco[:, 9:11]), axis=-1)
    assert wrists[overhead].max() < 20.0, wrists[overhead].max()
    assert procrustes_aligned_mpjpe(result.joints, joints) < 0.075
    fitted = np.linalg.norm(acceleration(result.joints[:, :1]), axis=-1).mean()
    true = np.linalg.norm(acceleration(joints[:, :1]), axis=-1).mean()
    assert fitted > 0.6 * true, (fitted, true)
