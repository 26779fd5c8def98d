"""Stress motions (jump, squat, arms overhead, spin, turning away, lying down): clinical limits, what each
motion really does, and exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gas_core.body.limits import ANATOMICAL_LIMITS_DEGREES, JOINT_LIMITS_DEGREES, body_pose_limit_violation
from gas_core.synth.humans import sample_subject_spec
from gas_core.synth.motion import GRAVITY, STRESS_MOTION_KINDS, MotionSpec, body_pose_tracks, make_motion, root_trajectory

FPS = 30.0
HEAD, LEFT_WRIST, RIGHT_WRIST, PELVIS = 15, 20, 21, 0


@pytest.mark.parametrize("kind", STRESS_MOTION_KINDS)
def test_stress_poses_stay_in_the_clinical_ranges(kind):
    body_pose = torch.as_tensor(body_pose_tracks(MotionSpec(kind, num_frames=60, fps=FPS, seed=2)))
    assert float(body_pose_limit_violation(body_pose, ANATOMICAL_LIMITS_DEGREES).max()) == 0.0
    assert np.degrees(np.ptp(body_pose.numpy(), axis=0)).max() > 20.0


def test_arms_overhead_and_deep_squat_leave_the_everyday_ranges():
    """The stress set is outside the own motions' ranges: the everyday table would reject these poses."""
    for kind in ("arms_overhead", "squat"):
        body_pose = torch.as_tensor(body_pose_tracks(MotionSpec(kind, num_frames=40, fps=FPS, seed=0)))
        assert float(body_pose_limit_violation(body_pose, JOINT_LIMITS_DEGREES).max()) > 0.0, kind


@pytest.fixture(scope="module")
def motions(open_body_model_dir):
    return {kind: make_motion(sample_subject_spec(5), MotionSpec(kind, num_frames=40, fps=FPS, seed=3), texture_size=16)
            for kind in ("jump", "squat", "arms_overhead", "lie_down")}


def test_arms_really_go_overhead(motions):
    for kind in ("arms_overhead", "jump"):
        joints = motions[kind].joints24
        above = joints[:, [LEFT_WRIST, RIGHT_WRIST], 1] - joints[:, [HEAD], 1]
        assert above.max() > 0.2, kind  # a wrist 20 cm above the head
        assert above[0].max() < 0.0, kind  # and down at the start


def test_jump_flies_ballistically_with_feet_on_the_floor_before(motions):
    motion = motions["jump"]
    lowest = motion.body_vertices[..., 1].min(axis=1)
    floor = lowest[0]
    assert lowest.max() - floor > 0.15  # off the ground
    assert np.abs(lowest[:5] - floor).max() < 1e-4  # planted before the take-off
    _, translation = root_trajectory(motion.motion)
    flying = translation[:, 1] > 0
    vertical = translation[flying, 1]
    acceleration = np.diff(vertical, 2) * FPS**2
    np.testing.assert_allclose(acceleration, -GRAVITY, rtol=1e-6)


def test_squat_is_deep_and_keeps_the_feet_planted(motions):
    motion = motions["squat"]
    pelvis = motion.joints24[:, PELVIS]
    assert pelvis[0, 1] - pelvis[:, 1].min() > 0.3  # the pelvis drops 30 cm or more
    ankles = motion.joints24[:, [7, 8]].mean(axis=1)
    assert np.abs(ankles[:, [0, 2]] - ankles[0, [0, 2]]).max() < 0.02
    lowest = motion.body_vertices[..., 1].min(axis=1)
    assert np.ptp(lowest) < 1e-4


def test_lying_down_brings_the_head_to_the_floor_and_back(motions):
    motion = motions["lie_down"]
    floor = motion.body_vertices[0, :, 1].min()
    head = motion.joints24[:, HEAD, 1]
    assert head.min() - floor < 0.3
    assert head[-1] - floor > 1.2  # standing again


def test_spin_and_turn_away_rotate():
    yaw, _ = root_trajectory(MotionSpec("spin", num_frames=40, fps=FPS))
    assert np.degrees(yaw[-1] - yaw[0]) == pytest.approx(450.0)
    yaw, _ = root_trajectory(MotionSpec("turn_away", num_frames=40, fps=FPS))
    assert np.degrees(yaw[-1] - yaw[0]) == pytest.approx(180.0)
    assert np.degrees(yaw[20] - yaw[0]) == pytest.approx(180.0)  # back to the camera from 40 % on


def test_groundtruth_parameters_follow_the_pitched_and_planted_body(motions, open_body_model_dir):
    """The SMPL ground truth of a lying, planted motion reproduces the subject's joints in the open model."""
    from gas_core.body.smpl import BodyModel, SMPLParams

    motion = motions["lie_down"]
    smpl = motion.smpl
    frames = len(smpl.transl)
    params = SMPLParams(betas=torch.as_tensor(np.repeat(smpl.betas[None], frames, 0), dtype=torch.float32),
                        body_pose=torch.as_tensor(smpl.body_pose, dtype=torch.float32),
                        global_orient=torch.as_tensor(smpl.global_orient, dtype=torch.float32),
                        transl=torch.as_tensor(smpl.transl, dtype=torch.float32))
    with torch.no_grad():
        joints = BodyModel(open_body_model_dir).forward(params).joints.numpy()
    error = np.linalg.norm(joints - motion.joints24, axis=-1)
    assert error.max() < 0.01, error.max()
