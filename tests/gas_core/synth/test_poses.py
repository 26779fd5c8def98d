"""Pose library: lookup, mirroring, seeded perturbation within limits, Anny pose parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gas_core.synth.poses import (
    JOINT_LIMITS_DEGREES,
    POSE_LIBRARY,
    POSE_NAMES,
    mirror_degrees,
    perturbed_bone_angles,
    pose_by_name,
    pose_parameters,
)


def test_library_has_the_everyday_poses_and_unique_names():
    for name in ("a_pose", "t_pose", "walking", "arms_crossed", "hands_on_hips", "one_arm_raised", "slight_squat"):
        assert pose_by_name(name).name == name
    assert len(set(POSE_NAMES)) == len(POSE_LIBRARY)


def test_unknown_pose_name_is_refused():
    with pytest.raises(ValueError, match="name"):
        pose_by_name("moonwalk")


def test_mirror_keeps_x_and_negates_y_and_z():
    assert mirror_degrees((10.0, -45.0, 5.0)) == (10.0, 45.0, -5.0)
    t_pose = pose_by_name("t_pose").angles()
    assert t_pose["upperarm01.R"] == mirror_degrees(t_pose["upperarm01.L"])


def test_zero_perturbation_gives_the_library_pose():
    walking = pose_by_name("walking")
    angles = perturbed_bone_angles(walking, 0.0, seed=3)
    for bone, degrees in walking.angles().items():
        np.testing.assert_allclose(angles[bone], degrees)


def test_perturbation_is_seeded_and_stays_within_limits():
    pose = pose_by_name("slight_squat")
    first = perturbed_bone_angles(pose, 1.0, seed=11)
    assert first == perturbed_bone_angles(pose, 1.0, seed=11)
    assert first != perturbed_bone_angles(pose, 1.0, seed=12)
    for scale in (1.0, 3.0):
        for seed in range(5):
            for bone, degrees in perturbed_bone_angles(pose, scale, seed).items():
                limits = np.asarray(JOINT_LIMITS_DEGREES[bone])
                assert np.all(np.asarray(degrees) >= limits[:, 0] - 1e-9), bone
                assert np.all(np.asarray(degrees) <= limits[:, 1] + 1e-9), bone


def test_bad_perturbation_scale_is_refused():
    with pytest.raises(ValueError, match="perturbation_scale"):
        perturbed_bone_angles(pose_by_name("a_pose"), -0.1, seed=0)


def test_pose_parameters_are_rotations_at_the_named_bones():
    labels = ["root", "upperarm01.L", "upperarm01.R"]
    params = pose_parameters(labels, pose_by_name("t_pose").angles())
    assert params.shape == (1, 3, 4, 4)
    assert torch.equal(params[0, 0], torch.eye(4))
    rotation = params[0, 1, :3, :3].double()
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
    assert not torch.allclose(params[0, 1], torch.eye(4))
    assert torch.all(params[0, :, :3, 3] == 0)
    with pytest.raises(ValueError, match="angles"):
        pose_parameters(labels, {"tail": (0.0, 0.0, 10.0)})
