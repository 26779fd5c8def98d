"""Scene effects of stress videos: seeded, varied, and warps that move masks and points alike."""

from __future__ import annotations

import numpy as np
import pytest

from gas_core.synth.scene import cluttered_backdrop, lighting_gains, shake_zoom_warps, warp_frame, warp_points


def test_cluttered_backdrop_is_seeded_and_busy():
    image = cluttered_backdrop(64, 48, seed=3)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, cluttered_backdrop(64, 48, seed=3))
    assert not np.array_equal(image, cluttered_backdrop(64, 48, seed=4))
    edges = np.abs(np.diff(image.astype(float), axis=1)).mean()
    assert edges > 5.0  # textured, not a smooth gradient


def test_lighting_changes_and_switches():
    gains = lighting_gains(30, seed=1)
    assert gains.shape == (30, 3) and np.all(gains > 0)
    steps = np.abs(np.diff(gains[:, 0]))
    assert steps.max() > 5 * np.median(steps)  # the light switch
    assert gains[:, 0].max() / gains[:, 0].min() > 1.3


def test_shake_and_zoom_move_masks_and_points_together():
    warps = shake_zoom_warps(20, (64, 64), seed=2, shake_px=3.0, zoom=1.25)
    assert warps.shape == (20, 2, 3)
    assert warps[0, 0, 0] == pytest.approx(1.0) and warps[-1, 0, 0] == pytest.approx(1.25)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:24, 30:34] = 1
    for warp in warps[[0, 10, 19]]:
        moved = warp_frame(mask, warp, nearest=True)
        centre = warp_points(np.array([[31.5, 21.5]]), warp)[0]
        ys, xs = np.nonzero(moved)
        assert abs(xs.mean() - centre[0]) < 0.75 and abs(ys.mean() - centre[1]) < 0.75
    with pytest.raises(ValueError, match="zoom"):
        shake_zoom_warps(4, (8, 8), seed=0, zoom=0.0)
