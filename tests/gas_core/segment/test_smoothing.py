import numpy as np
import pytest

from gas_core.segment.smoothing import TemporalMaskSmoother


def _square_video(num_frames: int = 9) -> np.ndarray:
    masks = np.zeros((num_frames, 20, 20), bool)
    masks[:, 5:15, 5:15] = True
    return masks


def _run(smoother: TemporalMaskSmoother, masks: np.ndarray, valid=None) -> list:
    released = []
    for t, mask in enumerate(masks):
        released += smoother.push(mask, valid=True if valid is None else valid[t], payload=t)
    released += smoother.finish()
    return released


def test_one_frame_flicker_is_removed():
    clean = _square_video()
    flickering = clean.copy()
    flickering[3, 0:4, 0:4] = True     # a blob for one frame
    flickering[5, 8:12, 8:12] = False  # a hole for one frame
    released = _run(TemporalMaskSmoother(window=3), flickering)
    assert [item.payload for item in released] == list(range(len(clean)))
    np.testing.assert_array_equal(np.stack([item.mask for item in released]), clean)
    passthrough = _run(TemporalMaskSmoother(window=1), flickering)
    np.testing.assert_array_equal(np.stack([item.mask for item in passthrough]), flickering)


def test_output_lags_by_half_a_window():
    smoother = TemporalMaskSmoother(window=5)
    counts = [len(smoother.push(mask)) for mask in _square_video(6)]
    assert counts == [0, 0, 1, 1, 1, 1]
    assert len(smoother.finish()) == 2
    with pytest.raises(RuntimeError):
        smoother.push(np.zeros((20, 20), bool))


def test_invalid_frames_neither_vote_nor_get_a_mask():
    masks = _square_video(5)
    masks[2] = True  # junk in a frame where nobody was found
    valid = [True, True, False, True, True]
    released = _run(TemporalMaskSmoother(window=3), masks, valid)
    assert not released[2].mask.any() and released[2].valid is False
    for t in (1, 3):  # neighbours of the invalid frame are not polluted by its junk
        np.testing.assert_array_equal(released[t].mask, _square_video(1)[0])


@pytest.mark.parametrize("window", [0, 2, 4])
def test_window_must_be_odd_and_positive(window):
    with pytest.raises(ValueError, match="window"):
        TemporalMaskSmoother(window)


def test_anchors_align_a_moving_subject_before_voting():
    masks = np.zeros((7, 20, 60), bool)
    for t in range(7):
        masks[t, 5:15, 3 + 6 * t:11 + 6 * t] = True  # a bar 8 px wide moving 6 px per frame
    flickering = masks.copy()
    flickering[3, 0:3, 0:3] = True
    anchors = [np.array([7.0 + 6 * t, 10.0]) for t in range(7)]
    aligned = TemporalMaskSmoother(window=3)
    released = []
    for t in range(7):
        released += aligned.push(flickering[t], anchor=anchors[t])
    released += aligned.finish()
    np.testing.assert_array_equal(np.stack([item.mask for item in released]), masks)
    unaligned = _run(TemporalMaskSmoother(window=3), masks)
    assert np.stack([item.mask for item in unaligned]).sum() < masks.sum()  # edges lost without alignment


def test_shifted_moves_and_zero_fills():
    from gas_core.segment.smoothing import shifted

    mask = np.zeros((4, 5), bool)
    mask[1, 1] = True
    assert shifted(mask, 2, 1)[2, 3] and shifted(mask, 2, 1).sum() == 1
    assert shifted(mask, -2, 0).sum() == 0
    assert shifted(mask, 9, 0).sum() == 0
