"""Joint-error metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gas_core.metrics.joints import (
    acceleration,
    acceleration_error,
    mpjpe,
    procrustes_align,
    procrustes_aligned_mpjpe,
    root_aligned_mpjpe,
)


@pytest.fixture
def joints():
    return np.random.default_rng(0).normal(0.0, 0.3, size=(5, 6, 3))


def test_mpjpe_of_a_constant_offset(joints):
    shifted = joints + np.array([0.03, 0.04, 0.0])
    assert mpjpe(shifted, joints) == pytest.approx(0.05)
    assert root_aligned_mpjpe(shifted, joints) == pytest.approx(0.0, abs=1e-12)


def test_root_aligned_mpjpe_hand_case():
    truth = np.zeros((1, 3, 3))
    truth[0, 1] = [1.0, 0.0, 0.0]
    truth[0, 2] = [0.0, 1.0, 0.0]
    predicted = truth.copy()
    predicted[0, 2] = [0.0, 1.0, 0.3]  # only joint 2 is off, by 0.3
    predicted += 5.0  # and everything moved
    assert root_aligned_mpjpe(predicted, truth, root_index=0) == pytest.approx(0.1)
    # Root = mean of joints 0 and 1 (the COCO-hips style): the root moves with both, so joint 2's error stays 0.3.
    assert root_aligned_mpjpe(predicted, truth, root_index=(0, 1)) == pytest.approx(0.1)


def test_procrustes_removes_a_similarity_and_not_more(joints):
    rotation = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    moved = 1.7 * joints @ rotation.T + np.array([1.0, -2.0, 0.5])
    assert procrustes_aligned_mpjpe(moved, joints) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(procrustes_align(moved, joints), joints, atol=1e-9)
    # A mirror image is not a proper rotation: it must stay an error.
    mirrored = joints * np.array([-1.0, 1.0, 1.0])
    assert procrustes_aligned_mpjpe(mirrored, joints) > 0.01
    noisy = joints + np.random.default_rng(1).normal(0.0, 0.02, size=joints.shape)
    assert procrustes_aligned_mpjpe(noisy, joints) <= root_aligned_mpjpe(noisy, joints) + 1e-12


def test_acceleration_error_hand_case():
    frames, num_joints, bump = 5, 4, 0.06
    truth = np.zeros((frames, num_joints, 3))
    truth[:, :, 0] = np.arange(frames)[:, None] * 0.1  # constant velocity: zero acceleration
    predicted = truth.copy()
    predicted[2, 1, 0] += bump  # one joint jumps in the middle frame
    # Second differences at inner frames 1, 2, 3 for that joint: +bump, -2 bump, +bump; others zero.
    np.testing.assert_allclose(acceleration(predicted - truth)[:, 1, 0], [bump, -2 * bump, bump])
    expected = (bump + 2 * bump + bump) / 3 / num_joints
    assert acceleration_error(predicted, truth) == pytest.approx(expected)
    assert acceleration_error(truth + 3.0, truth) == pytest.approx(0.0, abs=1e-12)
    # Root-aligned: joint 0 is the root and has no jump, so the figure is unchanged.
    assert acceleration_error(predicted, truth, root_index=0) == pytest.approx(expected)


def test_bad_arguments_raise_value_errors(joints):
    with pytest.raises(ValueError, match="predicted"):
        mpjpe(joints[0], joints[0])
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(joints, joints[:, :3])
    with pytest.raises(ValueError, match="ground_truth must be finite"):
        bad = joints.copy()
        bad[0, 0, 0] = np.nan
        mpjpe(joints, bad)
    with pytest.raises(ValueError, match="root_index"):
        root_aligned_mpjpe(joints, joints, root_index=17)
    with pytest.raises(ValueError, match="at least 3 frames"):
        acceleration_error(joints[:2], joints[:2])
    with pytest.raises(ValueError, match="at least 3 joints"):
        procrustes_aligned_mpjpe(joints[:, :2], joints[:, :2])
    with pytest.raises(ValueError, match="joints"):
        acceleration(joints[:2])
