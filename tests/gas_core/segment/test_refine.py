from dataclasses import replace

import cv2
import numpy as np
import pytest

from gas_core.segment.refine import GrabCutConfig, grabcut_refine, mask_box
from gas_core.segment.video import MaskingConfig, VideoMasks, mask_video

from .conftest import mask_iou, textured_background


def in_place_scene(num_frames: int = 32, height: int = 96, width: int = 128, seed: int = 0):
    """A striped figure dancing in place (body sways 2 px, one arm swings) over a textured static background:
    frames (T, H, W, 3) uint8, masks (T, H, W) bool."""
    rng = np.random.default_rng(seed)
    background = textured_background(height, width, seed)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), bool)
    for t in range(num_frames):
        phase = 2 * np.pi * t / 12
        cx, cy = int(round(64 + 2 * np.sin(phase))), 58
        layer = np.zeros((height, width), np.uint8)
        cv2.ellipse(layer, (cx, cy), (10, 22), 0, 0, 360, 255, -1)
        cv2.circle(layer, (cx, cy - 29), 7, 255, -1)
        angle = 0.9 * np.sin(phase)
        hand = (int(cx + 12 + 22 * np.sin(angle)), int(cy - 12 + 22 * np.cos(angle)))
        cv2.line(layer, (cx + 8, cy - 14), hand, 255, 5)
        inside = layer > 0
        frame = background.copy()
        rows = np.arange(height)[:, None] * np.ones((1, width))
        colour = np.where(((rows + t) // 4 % 2 == 0)[..., None], (230, 40, 40), (240, 200, 30))
        frame[inside] = colour[inside]
        noisy = frame.astype(np.float32) + rng.normal(0, 2.0, frame.shape)
        frames[t] = np.clip(noisy, 0, 255).astype(np.uint8)
        masks[t] = inside
    return frames, masks


def _masks(frames: np.ndarray, config: MaskingConfig, sizes) -> VideoMasks:
    bounds = np.cumsum([0, *sizes])
    chunks = [frames[a:b] for a, b in zip(bounds[:-1], bounds[1:])] + [frames[bounds[-1]:]]
    return VideoMasks.concatenate(list(mask_video(chunks, config)))


def test_grabcut_completes_a_subject_dancing_in_place():
    frames, truth = in_place_scene()
    config = replace(replace(MaskingConfig.tiny(), estimator="background"), smoothing_window=1)
    plain = _masks(frames, replace(config, refine=GrabCutConfig(iterations=0)), [32])
    refined = _masks(frames, config, [32])
    assert refined.statuses == ("ok",) * 32
    plain_iou = np.mean([mask_iou(plain.masks[t] > 0, truth[t]) for t in range(32)])
    ious = [mask_iou(refined.masks[t] > 0, truth[t]) for t in range(32)]
    assert np.mean(ious) > 0.8 and np.mean(ious) > plain_iou + 0.2, (plain_iou, ious)


def test_in_place_masks_do_not_depend_on_chunking():
    frames, _ = in_place_scene(num_frames=20)
    whole = _masks(frames, replace(MaskingConfig.tiny(), estimator="background"), [20])
    for sizes in ([3, 9], [1] * 19):
        chunked = _masks(frames, replace(MaskingConfig.tiny(), estimator="background"), sizes)
        np.testing.assert_array_equal(chunked.masks, whole.masks)
        assert chunked.statuses == whole.statuses


def test_refine_fills_the_box_interior_and_stays_near_the_box():
    frame = np.zeros((60, 60, 3), np.uint8)
    frame[..., 1] = 150                   # green backdrop
    frame[10:50, 20:40] = (220, 30, 30)   # red subject
    outline = np.zeros((60, 60), bool)   # background subtraction saw only its outline
    outline[10:50, 20:40] = True
    outline[14:46, 24:36] = False
    refined = grabcut_refine(frame, outline, np.array([20, 10, 40, 50]))
    subject = np.zeros((60, 60), bool)
    subject[10:50, 20:40] = True
    assert mask_iou(refined, subject) > 0.95
    np.testing.assert_array_equal(mask_box(refined), [20, 10, 40, 50])
    off = grabcut_refine(frame, outline, np.array([20, 10, 40, 50]), GrabCutConfig(iterations=0))
    np.testing.assert_array_equal(off, outline)


def test_mask_box_and_argument_checks():
    mask = np.zeros((8, 10), bool)
    assert mask_box(mask) is None
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(mask_box(mask), [3, 2, 9, 5])
    frame = np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="box"):
        grabcut_refine(frame, mask, np.array([5, 5, 5, 9]))
    with pytest.raises(ValueError, match="foreground"):
        grabcut_refine(frame, mask[:4], np.array([0, 0, 4, 4]))
    with pytest.raises(ValueError, match="frame"):
        grabcut_refine(frame[..., 0], mask, np.array([0, 0, 4, 4]))


@pytest.mark.parametrize("field, value", [("iterations", -1), ("box_margin", -0.1), ("max_side", 8),
                                          ("sure_foreground_erosion", -1)])
def test_grabcut_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        GrabCutConfig(**{field: value})


def test_downscaled_refinement_keeps_the_frame_size():
    frames, truth = in_place_scene(num_frames=12)
    config = replace(replace(MaskingConfig.tiny(), estimator="background"), smoothing_window=1, refine=GrabCutConfig(max_side=48))
    result = _masks(frames, config, [12])
    assert result.masks.shape == truth.shape
    assert np.mean([mask_iou(result.masks[t] > 0, truth[t]) for t in range(12)]) > 0.75
