"""Scan normalisation: bounding box centred at the origin, optional height, exact inverse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gas_core.render.normalize import Normalization, normalize_scan


def _body_like_points() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform([-0.3, 0.0, -0.2], [0.4, 1.75, 0.15], size=(500, 3)) + np.array([3.0, -1.0, 7.0])


def test_default_centres_bounding_box_and_keeps_metric_scale():
    points = _body_like_points()
    normalization = normalize_scan(points)
    moved = normalization.apply(points)
    assert normalization.scale == 1.0
    np.testing.assert_allclose(0.5 * (moved.min(0) + moved.max(0)), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.ptp(moved, axis=0), np.ptp(points, axis=0))


def test_target_height_sets_y_extent():
    points = _body_like_points()
    normalization = normalize_scan(points, target_height=1.8)
    moved = normalization.apply(points)
    assert np.ptp(moved[:, 1]) == pytest.approx(1.8)
    np.testing.assert_allclose(normalization.invert(moved), points, atol=1e-12)


def test_dict_round_trip_through_json():
    normalization = normalize_scan(_body_like_points(), target_height=1.0)
    restored = Normalization.from_dict(json.loads(json.dumps(normalization.to_dict())))
    np.testing.assert_array_equal(restored.center, normalization.center)
    assert restored.scale == normalization.scale


@pytest.mark.parametrize("vertices, message", [
    (np.zeros((0, 3)), "vertices"),
    (np.zeros((5, 2)), "vertices"),
    (np.array([[0.0, np.nan, 0.0], [1.0, 1.0, 1.0]]), "vertices"),
])
def test_bad_vertices_raise(vertices, message):
    with pytest.raises(ValueError, match=message):
        normalize_scan(vertices)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="target_height"):
        normalize_scan(_body_like_points(), target_height=-1.0)
    with pytest.raises(ValueError, match="height"):
        normalize_scan(np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]), target_height=1.7)
    with pytest.raises(ValueError, match="scale"):
        Normalization(center=np.zeros(3), scale=0.0)
    with pytest.raises(ValueError, match="missing"):
        Normalization.from_dict({"center": [0, 0, 0]})
    with pytest.raises(ValueError, match="points"):
        Normalization(center=np.zeros(3), scale=1.0).apply(np.zeros((3, 2)))
