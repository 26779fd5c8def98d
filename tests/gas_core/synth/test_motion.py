"""Motions of synthetic subjects: limits, smoothness, root motion, determinism, ground-truth parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gas_core.synth.humans import sample_subject_spec
from gas_core.body.limits import body_pose_limit_violation
from gas_core.synth.motion import (
    MOTION_KINDS,
    MotionSpec,
    anny_bone_deltas,
    body_pose_tracks,
    make_motion,
    root_trajectory,
)

FPS = 30.0


@pytest.fixture(scope="module")
def dance(open_body_model_dir):
    return make_motion(sample_subject_spec(3), MotionSpec("dance", num_frames=6, fps=FPS, seed=1), texture_size=32)


@pytest.mark.parametrize("kind", MOTION_KINDS)
def test_body_pose_tracks_stay_in_limits_and_are_smooth(kind):
    spec = MotionSpec(kind, num_frames=240, fps=FPS, seed=4)
    body_pose = body_pose_tracks(spec)
    assert body_pose.shape == (240, 23, 3)
    assert float(body_pose_limit_violation(torch.as_tensor(body_pose)).max()) == 0.0
    acceleration = np.degrees(np.abs(np.diff(body_pose, 2, axis=0))).max() * FPS**2  # degrees / s^2
    assert acceleration < 6000.0, acceleration
    assert np.degrees(np.ptp(body_pose, axis=0)).max() > 10.0  # the motion is not still


def test_rotating_a_foot_or_hand_is_refused():
    body_pose = np.zeros((2, 23, 3))
    body_pose[:, 21, 0] = 0.1  # left_hand
    with pytest.raises(ValueError, match="left_hand"):
        anny_bone_deltas(body_pose, sample_subject_spec(0))


def test_walk_moves_along_the_heading_and_turn_rotates_a_full_circle():
    walk = MotionSpec("walk", num_frames=61, fps=FPS, walk_speed=1.0, heading_deg=90.0)
    yaw, translation = root_trajectory(walk)
    np.testing.assert_allclose(translation[-1, [0, 2]], [2.0, 0.0], atol=1e-9)  # 2 s at 1 m/s towards +x
    np.testing.assert_allclose(yaw, np.pi / 2)
    turn = MotionSpec("turn", num_frames=9, fps=FPS)
    yaw, _ = root_trajectory(turn)
    assert yaw[-1] - yaw[0] == pytest.approx(2 * np.pi)
    np.testing.assert_allclose(np.diff(yaw, 2), 0.0, atol=1e-12)


def test_motion_shapes_and_smoothness(dance):
    frames = dance.motion.num_frames
    assert dance.vertices.shape == (frames, len(dance.subject.vertices), 3) and dance.vertices.dtype == np.float32
    assert dance.faces.max() < dance.vertices.shape[1]
    assert dance.joints24.shape == (frames, 24, 3) and dance.coco17.shape == (frames, 17, 3)
    assert dance.smpl.body_pose.shape == (frames, 23, 3) and dance.smpl.betas.shape == (10,)
    assert dance.smpl.global_orient.shape == (frames, 3) and dance.smpl.transl.shape == (frames, 3)
    assert np.ptp(dance.joints24, axis=0).max() > 0.01  # something moves
    acceleration = np.linalg.norm(np.diff(dance.joints24, 2, axis=0), axis=-1).max() * FPS**2
    assert acceleration < 60.0, acceleration  # m/s^2


def test_same_specs_same_arrays(dance):
    again = make_motion(dance.subject.spec, dance.motion, texture_size=32)
    np.testing.assert_array_equal(again.vertices, dance.vertices)
    np.testing.assert_array_equal(again.smpl.body_pose, dance.smpl.body_pose)


def test_groundtruth_parameters_reproduce_the_body_in_the_open_model(dance, open_body_model_dir):
    from gas_core.body.smpl import BodyModel, SMPLParams

    smpl = dance.smpl
    frames = dance.motion.num_frames
    as_tensor = lambda value: torch.as_tensor(value, dtype=torch.float32)  # noqa: E731
    params = SMPLParams(betas=as_tensor(np.tile(smpl.betas, (frames, 1))), body_pose=as_tensor(smpl.body_pose),
                        global_orient=as_tensor(smpl.global_orient), transl=as_tensor(smpl.transl))
    with torch.no_grad():
        output = BodyModel(open_body_model_dir)(params)
    joint_error = np.linalg.norm(output.joints.numpy() - dance.joints24, axis=-1)
    vertex_error = np.linalg.norm(output.vertices.numpy() - dance.body_vertices, axis=-1)
    assert joint_error.max() < 0.01, joint_error.max()
    assert vertex_error.mean() < 0.005, vertex_error.mean()
    # the parameters are the designed body pose itself (exact up to rounding), hence inside the limits
    np.testing.assert_allclose(smpl.body_pose, body_pose_tracks(dance.motion), atol=1e-9)


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="kind"):
        MotionSpec("cartwheel")
    with pytest.raises(ValueError, match="num_frames"):
        MotionSpec("walk", num_frames=1)
    with pytest.raises(ValueError, match="fps"):
        MotionSpec("walk", fps=0)
    with pytest.raises(ValueError, match="amplitude"):
        MotionSpec("dance", amplitude=1.5)


def test_any_body_pose_within_limits_survives_the_rig_round_trip(open_body_model_dir):
    from gas_core.body.limits import sample_body_pose
    from gas_core.synth.motion import smpl_sequence

    body_pose = sample_body_pose(5, torch.Generator().manual_seed(0)).double().numpy()
    body_pose[:, [9, 10, 21, 22]] = 0.0  # feet and hands stay at rest
    spec = sample_subject_spec(6)
    motion = MotionSpec("turn", num_frames=5)
    recovered = smpl_sequence(spec, motion, anny_bone_deltas(body_pose, spec))
    np.testing.assert_allclose(recovered.body_pose, body_pose, atol=1e-9)
    yaw, _ = root_trajectory(motion)
    np.testing.assert_allclose(recovered.global_orient[:, 1], np.arctan2(np.sin(yaw), np.cos(yaw)), atol=1e-9)
