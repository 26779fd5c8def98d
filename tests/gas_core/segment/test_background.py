import numpy as np
import pytest

from gas_core.segment.background import BackgroundConfig, BackgroundSubtractor, ForegroundComponents, foreground_map

from .conftest import mask_iou


def _run(subtractor: BackgroundSubtractor, frames: np.ndarray) -> list:
    released = []
    for frame in frames:
        released += subtractor.push(frame)
    return released + subtractor.finish()


def test_moving_figure_over_static_background(blob_scene):
    frames, truth = blob_scene(30, [(15, 3.0, (200, 40, 40), 0)])
    config = BackgroundConfig(window_frames=21, sample_stride=2, refresh_interval=4)
    released = _run(BackgroundSubtractor(config), frames)
    assert [item.index for item in released] == list(range(30))
    ious = [mask_iou(item.foreground, truth[item.index]) for item in released]
    assert min(ious) > 0.8, ious


def test_buffers_stay_bounded_on_long_videos(blob_scene):
    frames, _ = blob_scene(20, [(15, 4.0, (200, 40, 40), 0)])
    config = BackgroundConfig(window_frames=9, sample_stride=3, refresh_interval=2)
    subtractor = BackgroundSubtractor(config)
    largest_pending, largest_samples = 0, 0
    for repeat in range(10):  # 200 frames
        for frame in frames:
            subtractor.push(frame)
            largest_pending = max(largest_pending, len(subtractor._pending))
            largest_samples = max(largest_samples, len(subtractor._samples))
    assert largest_pending <= config.refresh_interval + config.window_frames
    assert largest_samples <= config.window_frames // config.sample_stride + 2


def test_components_group_pieces_and_pick_the_one_in_the_box():
    foreground = np.zeros((60, 80), bool)
    foreground[10:40, 10:20] = True   # a body ...
    foreground[10:40, 22:25] = True   # ... and an arm 2 px away: one candidate
    foreground[20:50, 55:70] = True   # another person
    foreground[2, 78] = True          # a speck, below min_area
    components = ForegroundComponents(foreground, BackgroundConfig(group_radius=3, min_area_fraction=0.01))
    detections = components.detections()
    assert len(detections) == 2
    np.testing.assert_allclose(sorted(map(tuple, detections.boxes)), [(10, 10, 25, 40), (55, 20, 70, 50)])
    assert detections.scores.max() == pytest.approx(1.0)
    left = components.mask(np.array([8, 8, 26, 42]))
    expected = foreground.copy()
    expected[:, 30:] = False
    np.testing.assert_array_equal(left, expected)
    assert not components.mask(np.array([0, 55, 5, 60])).any()


def test_small_holes_are_filled_but_open_background_is_not():
    frame = np.full((40, 40, 3), 100, np.uint8)
    background = frame.astype(np.float32)
    frame[5:35, 5:35] = (220, 30, 30)
    frame[18:20, 18:20] = 100          # tiny hole inside: filled
    frame[5:35, 30:35] = 100           # not a hole: stays background

    mask = foreground_map(frame, background, BackgroundConfig(blur_sigma=0, open_radius=0, close_radius=0,
                                                              max_hole_fraction=0.01))
    assert mask[18:20, 18:20].all()
    assert not mask[5:35, 31:35].any()


@pytest.mark.parametrize("field, value", [("window_frames", 0), ("color_threshold", 0.0), ("open_radius", -1),
                                          ("min_area_fraction", 1.0)])
def test_background_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        BackgroundConfig(**{field: value})


def test_frames_must_keep_their_size():
    subtractor = BackgroundSubtractor()
    subtractor.push(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="frame"):
        subtractor.push(np.zeros((10, 12, 3), np.uint8))
