"""Overlapping windows for long sequences: coverage, overlap, the reference in every window, blending."""

from __future__ import annotations

import pytest
import torch

from gas_core.diffusion.windows import blend_windows, sliding_windows, triangular_weights


@pytest.mark.parametrize("num_frames, window, overlap", [(100, 20, 4), (101, 20, 4), (45, 16, 6), (20, 20, 4), (7, 20, 4), (30, 4, 1)])
def test_windows_cover_every_frame_keep_the_reference_and_overlap(num_frames, window, overlap):
    windows = sliding_windows(num_frames, window, overlap)
    assert all(w[0] == 0 for w in windows)
    assert all(len(w) == min(window, num_frames) for w in windows)
    covered = sorted({i for w in windows for i in w})
    assert covered == list(range(num_frames))
    for previous, current in zip(windows, windows[1:]):
        shared = set(previous[1:]) & set(current[1:])
        assert len(shared) >= overlap
        assert current[1] > previous[1]  # windows advance
    assert windows[-1][-1] == num_frames - 1


def test_window_arguments_are_checked():
    with pytest.raises(ValueError, match="overlap"):
        sliding_windows(50, 20, 19)
    with pytest.raises(ValueError, match="window"):
        sliding_windows(50, 1, 0)


def test_triangular_weights_and_blending_recovers_a_consistent_prediction():
    weights = triangular_weights(20)
    assert weights.shape == (20,) and weights.max().item() == pytest.approx(0.95)
    torch.testing.assert_close(weights, weights.flip(0))
    windows = sliding_windows(50, 20, 4)
    truth = torch.randn(1, 50, 4, 2, 2)
    blended = blend_windows([truth[:, w] for w in windows], windows, 50)
    torch.testing.assert_close(blended, truth)  # every window agrees -> the blend is that prediction
    # disagreeing windows: a frame in two windows gets a weighted mean of the two
    predictions = [torch.full((1, len(w), 1), float(k)) for k, w in enumerate(windows)]
    mixed = blend_windows(predictions, windows, 50)
    assert mixed[0, windows[0][5]].item() == 0.0
    shared = sorted(set(windows[0][1:]) & set(windows[1][1:]))[0]
    assert 0.0 < mixed[0, shared].item() < 1.0
