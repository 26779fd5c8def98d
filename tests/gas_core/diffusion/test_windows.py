"""Overlapping windows for long sequences: coverage, overlap, the reference in every window, blending."""

from __future__ import annotations

import pytest
import torch

from gas_core.diffusion.windows import (
    blend_windows,
    project_overlap,
    sliding_windows,
    tiled_initial_noise,
    triangular_weights,
)


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


# ------------------------------------------------------------------ the official release's convention
def release_windows(num_frames: int, tile: int, tile_overlap: int) -> list[list[int]]:
    """The release's windows, written from its definition: tile ``tile`` frames including the reference 0,
    so ``tile - 1`` new frames per window; consecutive windows share ``tile_overlap`` frames counting the
    reference (``tile_overlap - 1`` others), so starts step by ``(tile - 1) - (tile_overlap - 1)`` from 1;
    when the last window stops short of frame ``num_frames - 1`` one more, moved back to end there, is added.
    Defined for ``num_frames >= tile``."""
    step = tile - tile_overlap
    windows = []
    start = 1
    while start + tile - 2 <= num_frames - 1:
        windows.append([0] + [start + k for k in range(tile - 1)])
        start += step
    if windows[-1][-1] != num_frames - 1:
        windows.append([0] + list(range(num_frames - tile + 1, num_frames)))
    return windows


def test_release_example():
    expected = [[0, *range(1, 8)], [0, *range(6, 13)], [0, *range(11, 18)], [0, *range(13, 20)]]
    assert release_windows(20, 8, 3) == expected
    assert sliding_windows(20, 8, 3, convention="official") == expected
    assert sliding_windows(20, 8, 2) == expected  # the project's overlap does not count the reference
    assert sliding_windows(20, 8, 3) != expected


@pytest.mark.parametrize("tile", [2, 3, 4, 8, 14, 20])
def test_official_convention_matches_the_release_for_every_length_up_to_60(tile):
    for tile_overlap in range(1, tile):
        for num_frames in range(1, 61):
            ours = sliding_windows(num_frames, tile, tile_overlap, convention="official")
            if num_frames < tile:  # the release needs num_frames >= tile; we use one window of all frames
                assert ours == [list(range(num_frames))]
            else:
                assert ours == release_windows(num_frames, tile, tile_overlap), (num_frames, tile, tile_overlap)
            assert ours == sliding_windows(num_frames, tile, tile_overlap - 1)  # official = project + 1


def test_official_convention_arguments_are_checked():
    with pytest.raises(ValueError, match="overlap"):
        sliding_windows(50, 8, 0, convention="official")  # would skip frames: the release's windows only share frame 0
    with pytest.raises(ValueError, match="overlap"):
        sliding_windows(50, 8, 8, convention="official")
    with pytest.raises(ValueError, match="convention"):
        sliding_windows(50, 8, 2, convention="mimicmotion")
    assert project_overlap(8, 7, "official") == 6 and project_overlap(8, 6) == 6


@pytest.mark.parametrize("frames, tile", [(20, 8), (24, 8), (5, 8), (7, 1)])
def test_tiled_noise_repeats_with_the_window_period(frames, tile):
    noise = tiled_initial_noise((2, frames, 4, 3, 3), tile, generator=torch.Generator().manual_seed(3))
    assert noise.shape == (2, frames, 4, 3, 3)
    for index in range(tile, frames):
        assert torch.equal(noise[:, index], noise[:, index - tile])
    first = noise[:, :min(tile, frames)].flatten(0, 1)
    assert all(not torch.equal(first[i], first[j]) for i in range(len(first)) for j in range(i))  # fresh within a tile
    drawn = torch.randn((2, tile, 4, 3, 3), generator=torch.Generator().manual_seed(3))
    assert torch.equal(noise[:, :min(tile, frames)], drawn[:, :frames])  # one draw of one window
    with pytest.raises(ValueError, match="tile"):
        tiled_initial_noise((1, 4, 1), 0)
