"""Keypoint sources: projected ground truth (noise, drops, outliers, visibility) and the ultralytics detector."""

from __future__ import annotations

import numpy as np
import pytest

from gas_core.body.fit.keypoints import (
    KeypointSource,
    ProjectedKeypoints,
    UltralyticsPoseDetector,
    validate_keypoints2d,
)
from gas_core.cameras import OrbitSpec, orbit_cameras


@pytest.fixture(scope="module")
def cameras():
    return orbit_cameras(OrbitSpec(num_views=6, width=256, height=256))


@pytest.fixture(scope="module")
def points3d():
    rng = np.random.default_rng(3)
    return rng.normal(0.0, 0.25, size=(17, 3))


def test_projected_keypoints_match_camera_projection(cameras, points3d):
    source = ProjectedKeypoints(points3d)
    assert isinstance(source, KeypointSource)
    keypoints = source.detect(None, cameras)
    assert keypoints.shape == (6, 17, 3)
    for view, camera in enumerate(cameras):
        np.testing.assert_allclose(keypoints[view, :, :2], camera.project(points3d), atol=1e-9)
    assert np.all(keypoints[..., 2] == 1.0)


def test_projected_keypoints_noise_drops_and_outliers(cameras, points3d):
    clean = ProjectedKeypoints(points3d).detect(None, cameras)
    noisy = ProjectedKeypoints(points3d, noise_px=3.0, drop_prob=0.3, outlier_prob=0.0, seed=1).detect(None, cameras)
    kept = noisy[..., 2] > 0
    dropped_fraction = 1.0 - kept.mean()
    assert 0.15 < dropped_fraction < 0.45
    offsets = (noisy[..., :2] - clean[..., :2])[kept]
    assert 2.0 < offsets.std() < 4.0
    assert np.all(noisy[~kept][:, :2] == 0.0)

    corrupted = ProjectedKeypoints(points3d, outlier_prob=0.5, seed=2).detect(None, cameras)
    far = np.linalg.norm(corrupted[..., :2] - clean[..., :2], axis=-1) > 5.0
    assert 0.3 < far.mean() < 0.7
    assert np.all((corrupted[..., 0] >= 0) & (corrupted[..., 0] < 256))


def test_points_outside_the_image_get_zero_confidence(cameras, points3d):
    shifted = points3d.copy()
    shifted[0] = [0.0, 5.0, 0.0]  # far above every camera's field of view
    keypoints = ProjectedKeypoints(shifted).detect(None, cameras)
    assert np.all(keypoints[:, 0, 2] == 0.0)
    assert np.all(keypoints[:, 1:, 2] == 1.0)


def test_projected_keypoints_bad_arguments(points3d, cameras):
    with pytest.raises(ValueError, match="points3d"):
        ProjectedKeypoints(points3d[:5])
    with pytest.raises(ValueError, match="noise_px"):
        ProjectedKeypoints(points3d, noise_px=-1.0)
    with pytest.raises(ValueError, match="drop_prob"):
        ProjectedKeypoints(points3d, drop_prob=1.5)
    with pytest.raises(ValueError, match="outlier_prob"):
        ProjectedKeypoints(points3d, outlier_prob=-0.1)
    with pytest.raises(ValueError, match="cameras"):
        ProjectedKeypoints(points3d).detect(None, [])
    with pytest.raises(ValueError, match="images"):
        ProjectedKeypoints(points3d).detect([np.zeros((4, 4, 3), np.uint8)], cameras)


def test_validate_keypoints2d():
    good = np.zeros((2, 17, 3))
    good[0, 0] = [np.nan, np.nan, 0.0]
    out = validate_keypoints2d(good, num_views=2)
    assert np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="keypoints2d"):
        validate_keypoints2d(np.zeros((2, 17)))
    with pytest.raises(ValueError, match="cameras"):
        validate_keypoints2d(good, num_views=3)
    bad = good.copy()
    bad[1, 1, 2] = 1.5
    with pytest.raises(ValueError, match="confidences"):
        validate_keypoints2d(bad)
    bad = np.zeros((1, 17, 3))
    bad[0, 0] = [np.nan, 1.0, 0.5]
    with pytest.raises(ValueError, match="non-finite"):
        validate_keypoints2d(bad)


def test_detector_missing_weights_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "yolo-pose.pt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        UltralyticsPoseDetector(missing)


@pytest.fixture(scope="module")
def tiny_pose_weights(tmp_path_factory):
    """A random-weight YOLOv8n-pose built from its config (no download) and saved locally."""
    ultralytics = pytest.importorskip("ultralytics")
    path = tmp_path_factory.mktemp("pose") / "tiny-pose.pt"
    ultralytics.YOLO("yolov8n-pose.yaml").save(str(path))
    return path


def test_detector_runs_on_locally_saved_random_weights(tiny_pose_weights, cameras):
    # min_box_confidence 0 keeps the random model's low-score boxes, so the selection path runs.
    detector = UltralyticsPoseDetector(tiny_pose_weights, image_size=64, min_box_confidence=0.0)
    assert isinstance(detector, KeypointSource)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8) for _ in range(2)]
    keypoints = detector.detect(images, cameras[:2])
    assert keypoints.shape == (2, 17, 3)
    assert np.all(np.isfinite(keypoints))
    assert np.all((keypoints[..., 2] >= 0) & (keypoints[..., 2] <= 1))
    assert np.any(keypoints[..., 2] > 0)

    strict = UltralyticsPoseDetector(tiny_pose_weights, image_size=64, min_box_confidence=1.0)
    none_found = strict.detect(images, cameras[:2])
    assert np.all(none_found == 0.0)

    with pytest.raises(ValueError, match="images"):
        detector.detect([np.zeros((8, 8), np.uint8), images[1]], cameras[:2])
    with pytest.raises(ValueError, match="image_size"):
        UltralyticsPoseDetector(tiny_pose_weights, image_size=50)


def test_detector_rejects_a_corrupt_file(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.pt"):
        UltralyticsPoseDetector(broken)
