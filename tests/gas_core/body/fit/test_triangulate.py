"""Robust triangulation: exact on clean data, accurate with noise, insensitive to outlier views."""

from __future__ import annotations

import numpy as np
import pytest

from gas_core.body.fit.keypoints import ProjectedKeypoints
from gas_core.body.fit.triangulate import dlt_triangulate, projection_matrices, triangulate_keypoints
from gas_core.cameras import OrbitSpec, orbit_cameras


@pytest.fixture(scope="module")
def cameras():
    return orbit_cameras(OrbitSpec(num_views=12, width=512, height=512, elevation_deg=10.0))


@pytest.fixture(scope="module")
def points3d():
    rng = np.random.default_rng(7)
    return np.clip(rng.normal(0.0, 1.0, size=(17, 3)), -2.0, 2.0) * np.array([0.15, 0.3, 0.1])


def test_clean_keypoints_triangulate_exactly(cameras, points3d):
    keypoints = ProjectedKeypoints(points3d).detect(None, cameras)
    result = triangulate_keypoints(cameras, keypoints)
    np.testing.assert_allclose(result.points, points3d, atol=1e-6)
    assert np.all(result.inlier_views == 12)
    assert np.all(result.confidence == 1.0)
    assert np.nanmax(result.reprojection_error_px) < 1e-6


def test_noise_and_drops_stay_within_a_centimetre(cameras, points3d):
    keypoints = ProjectedKeypoints(points3d, noise_px=3.0, drop_prob=0.1, seed=4).detect(None, cameras)
    result = triangulate_keypoints(cameras, keypoints)
    error = np.linalg.norm(result.points - points3d, axis=-1)
    assert error.mean() < 0.01
    assert 1.0 < np.nanmean(result.reprojection_error_px) < 6.0


def test_outlier_views_are_rejected(cameras, points3d):
    clean = ProjectedKeypoints(points3d, noise_px=1.0, seed=5).detect(None, cameras)
    corrupted = clean.copy()
    rng = np.random.default_rng(6)
    # Three of twelve views report each keypoint far away, with full confidence.
    for k in range(17):
        bad_views = rng.choice(12, size=3, replace=False)
        corrupted[bad_views, k, :2] += rng.uniform(60.0, 150.0, size=(3, 2)) * rng.choice([-1, 1], size=(3, 2))
    robust = triangulate_keypoints(cameras, corrupted)
    robust_error = np.linalg.norm(robust.points - points3d, axis=-1)
    assert robust_error.max() < 0.01
    assert np.all(robust.inlier_views == 9)

    # A plain confidence-weighted DLT over all views is pulled off by the same outliers.
    plain = dlt_triangulate(projection_matrices(cameras)[None], corrupted[..., :2].transpose(1, 0, 2),
                            corrupted[..., 2].T)
    plain_error = np.linalg.norm(plain - points3d, axis=-1)
    assert plain_error.mean() > 5 * robust_error.mean()


def test_points_seen_by_too_few_views_fail_cleanly(cameras, points3d):
    keypoints = ProjectedKeypoints(points3d).detect(None, cameras)
    keypoints[1:, 3, 2] = 0.0  # keypoint 3 seen only by view 0
    result = triangulate_keypoints(cameras, keypoints)
    assert np.all(np.isnan(result.points[3]))
    assert result.confidence[3] == 0.0 and result.inlier_views[3] == 0
    assert np.all(np.isfinite(np.delete(result.points, 3, axis=0)))


def test_low_confidence_views_count_less(cameras, points3d):
    keypoints = ProjectedKeypoints(points3d).detect(None, cameras)
    shifted = keypoints.copy()
    shifted[:4, :, :2] += 6.0  # a moderate bias in four views ...
    shifted[:4, :, 2] = 0.05  # ... that the detector was unsure about
    trusted = shifted.copy()
    trusted[:4, :, 2] = 1.0
    low = np.linalg.norm(triangulate_keypoints(cameras, shifted, robust_scale_px=50.0).points - points3d, axis=-1)
    high = np.linalg.norm(triangulate_keypoints(cameras, trusted, robust_scale_px=50.0).points - points3d, axis=-1)
    assert low.mean() < 0.3 * high.mean()


def test_bad_arguments(cameras, points3d):
    keypoints = ProjectedKeypoints(points3d).detect(None, cameras)
    with pytest.raises(ValueError, match="keypoints2d"):
        triangulate_keypoints(cameras[:3], keypoints)
    with pytest.raises(ValueError, match="robust_scale_px"):
        triangulate_keypoints(cameras, keypoints, robust_scale_px=0.0)
    with pytest.raises(ValueError, match="min_views"):
        triangulate_keypoints(cameras, keypoints, min_views=1)
    with pytest.raises(ValueError, match="cameras"):
        triangulate_keypoints([], keypoints[:0])
    with pytest.raises(ValueError, match="iterations"):
        triangulate_keypoints(cameras, keypoints, iterations=-1)
