"""Joint limits: the table, the sampler, the prior term, and the documented axis conventions on the
open body model."""

from __future__ import annotations

import math

import pytest
import torch

from gas_core.body.joints import SMPL_JOINT_NAMES
from gas_core.body.limits import JOINT_LIMITS_DEGREES, body_pose_limit_violation, body_pose_limits, sample_body_pose
from gas_core.body.smpl import BodyModel, SMPLParams

JOINT = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


def test_table_covers_the_23_body_joints_and_mirrors_left_to_right():
    assert list(JOINT_LIMITS_DEGREES) == list(SMPL_JOINT_NAMES[1:])
    for name, ranges in JOINT_LIMITS_DEGREES.items():
        assert len(ranges) == 3
        for low, high in ranges:
            assert low <= 0.0 <= high and high - low <= 180.0, name
        if name.startswith("left_"):
            (xl, xh), (yl, yh), (zl, zh) = ranges
            assert JOINT_LIMITS_DEGREES["right_" + name.removeprefix("left_")] == ((xl, xh), (-yh, -yl), (-zh, -zl))
    low, high = body_pose_limits()
    assert low.shape == high.shape == (23, 3)
    knee = JOINT["left_knee"] - 1
    assert math.isclose(float(high[knee, 0]), math.radians(JOINT_LIMITS_DEGREES["left_knee"][0][1]), rel_tol=1e-6)


def test_samples_stay_within_the_limits_and_shrink_with_fraction():
    low, high = body_pose_limits()
    poses = sample_body_pose(200, torch.Generator().manual_seed(0))
    assert poses.shape == (200, 23, 3)
    assert bool((poses >= low).all() and (poses <= high).all())
    assert float(poses[:, JOINT["left_knee"] - 1, 0].max()) > math.radians(100)  # the range is used
    half = sample_body_pose(200, torch.Generator().manual_seed(0), fraction=0.5)
    torch.testing.assert_close(half, 0.5 * poses)
    assert torch.equal(sample_body_pose(3, fraction=0.0), torch.zeros(3, 23, 3))
    again = sample_body_pose(200, torch.Generator().manual_seed(0))
    assert torch.equal(again, poses)


@pytest.mark.parametrize("batch, fraction, name", [(0, 1.0, "batch"), (2, 1.5, "fraction"), (2, -0.1, "fraction")])
def test_sampler_rejects_bad_arguments(batch, fraction, name):
    with pytest.raises(ValueError, match=name):
        sample_body_pose(batch, fraction=fraction)


def test_limit_violation_is_zero_inside_and_grows_outside():
    poses = sample_body_pose(10, torch.Generator().manual_seed(1))
    assert torch.equal(body_pose_limit_violation(poses), torch.zeros(10))
    outside = poses.clone()
    outside[0, JOINT["left_knee"] - 1, 0] = -0.5  # a knee bent forwards
    outside.requires_grad_(True)
    violation = body_pose_limit_violation(outside)
    values = violation.detach()
    assert float(values[0]) == pytest.approx(0.25, rel=1e-5) and float(values[1:].abs().sum()) == 0.0
    violation.sum().backward()
    assert float(outside.grad[0, JOINT["left_knee"] - 1, 0]) < 0.0
    with pytest.raises(ValueError, match="body_pose"):
        body_pose_limit_violation(torch.zeros(2, 24, 3))


@pytest.fixture(scope="module")
def open_model(open_body_model_dir) -> BodyModel:
    return BodyModel(open_body_model_dir)


def _pose_one(model: BodyModel, joint: str, axis: int, degrees: float) -> torch.Tensor:
    params = SMPLParams.zeros(1)
    params.body_pose[0, JOINT[joint] - 1, axis] = math.radians(degrees)
    with torch.no_grad():
        return model(params).joints[0]


def test_documented_axis_conventions_hold_on_the_open_model(open_model):
    rest = _pose_one(open_model, "left_knee", 0, 0.0)
    # knee flexion (+x) swings the ankle backwards (-z)
    assert float(_pose_one(open_model, "left_knee", 0, 90.0)[JOINT["left_ankle"], 2] - rest[JOINT["left_ankle"], 2]) < -0.2
    # hip flexion (-x) swings the knee forwards (+z)
    assert float(_pose_one(open_model, "left_hip", 0, -90.0)[JOINT["left_knee"], 2] - rest[JOINT["left_knee"], 2]) > 0.2
    # left shoulder -z lowers the arm, the mirrored right shoulder +z does too
    assert float(_pose_one(open_model, "left_shoulder", 2, -80.0)[JOINT["left_wrist"], 1] - rest[JOINT["left_wrist"], 1]) < -0.3
    assert float(_pose_one(open_model, "right_shoulder", 2, 80.0)[JOINT["right_wrist"], 1] - rest[JOINT["right_wrist"], 1]) < -0.3
    # left elbow -y brings the forearm forwards (+z)
    assert float(_pose_one(open_model, "left_elbow", 1, -90.0)[JOINT["left_wrist"], 2] - rest[JOINT["left_wrist"], 2]) > 0.15
    # spine +x bends the upper body forwards
    assert float(_pose_one(open_model, "spine1", 0, 30.0)[JOINT["head"], 2] - rest[JOINT["head"], 2]) > 0.1
