"""Segment quality values and gates, measured without ground truth, on small hand-made segments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.video_quality import SegmentGates, SegmentQuality, check_segment, mask_histogram, measure_segment


def _segment(count: int = 6, size: int = 48):
    frames = np.full((count, size, size, 3), 90, np.uint8)
    masks = np.zeros((count, size, size), np.uint8)
    boxes = np.zeros((count, 4))
    for t in range(count):
        masks[t, 8:40, 18:30] = 255
        frames[t, 8:40, 18:30] = (200, 30, 30)
        boxes[t] = (18, 8, 30, 40)
    return frames, masks, boxes


def test_a_steady_segment_passes_and_each_failure_is_named():
    frames, masks, boxes = _segment()
    keypoints = np.zeros((6, 17, 3))
    keypoints[:, 13:17, 2] = 0.9
    reference = mask_histogram(frames[0], masks[0] > 0)
    quality = measure_segment(frames, masks, boxes, ["ok"] * 6, silhouettes=masks > 0, keypoints=keypoints,
                              reprojection_px=np.full(6, 1.0), reference=reference)
    assert quality.silhouette_iou == pytest.approx(1.0) and quality.area_jump == 0 and quality.identity_distance < 1e-6
    assert quality.lower_body_seen == 1.0 and quality.keypoint_error == pytest.approx(1 / 32)
    assert check_segment(quality, SegmentGates(), 0.05) == []

    collapsed = masks.copy()
    collapsed[0, 12:40] = 0  # a first frame that collapsed to a blob
    swapped = frames.copy()
    swapped[3:, 8:40, 18:30] = (30, 200, 30)  # someone else from frame 3 on
    waist_up = keypoints.copy()
    waist_up[:, 13:17, 2] = 0.0
    statuses = ["ok", "no_person", "no_person", "ok", "ok", "ok"]
    cases = {
        "area_jump": measure_segment(frames, collapsed, boxes, ["ok"] * 6),
        "identity_distance": measure_segment(swapped, masks, boxes, ["ok"] * 6, reference=reference),
        "lower_body_seen": measure_segment(frames, masks, boxes, ["ok"] * 6, keypoints=waist_up),
        "missing_fraction": measure_segment(frames, masks, boxes, statuses),
        "silhouette_iou": measure_segment(frames, masks, boxes, ["ok"] * 6, silhouettes=np.roll(masks > 0, 14, axis=2)),
    }
    for name, measured in cases.items():
        failures = check_segment(measured, SegmentGates(), 0.05)
        assert [failure.split()[0] for failure in failures] == [name], (name, failures)


def test_box_jumps_nan_values_and_bad_bounds():
    frames, masks, boxes = _segment()
    boxes[4:] += (14, 0, 14, 0)  # the box leaps sideways
    quality = measure_segment(frames, masks, boxes, ["ok"] * 6)
    assert quality.box_jump == pytest.approx(14 / 32)
    assert check_segment(SegmentQuality(), SegmentGates(), 0.05) == []  # nothing measured, nothing gated
    assert math.isnan(SegmentQuality().as_dict()["silhouette_iou"])
    with pytest.raises(ValueError, match="video.gates.min_silhouette_iou"):
        SegmentGates(min_silhouette_iou=1.5)
    with pytest.raises(ValueError, match="statuses"):
        measure_segment(frames[:0], masks[:0], boxes[:0], [])


def test_light_dimmed_and_switched_on_is_not_a_change_of_person():
    frames, masks, boxes = _segment()
    frames[:, 8:40, 18:24] = (40, 90, 200)  # a two-coloured garment
    reference = mask_histogram(frames[0], masks[0] > 0)
    gains = np.array([1.0, 0.8, 0.6, 0.45, 1.3, 1.3])  # dimming, then a light switched on
    lit = np.clip(frames.astype(np.float64) * gains[:, None, None, None], 0, 255).astype(np.uint8)
    quality = measure_segment(lit, masks, boxes, ["ok"] * 6, reference=reference)
    assert quality.identity_distance < 0.1
    assert check_segment(quality, SegmentGates(), 0.05) == []
    swapped = lit.copy()
    swapped[3:, 8:40, 18:30] = (30, 160, 30)  # someone else, under the same light
    assert measure_segment(swapped, masks, boxes, ["ok"] * 6, reference=reference).identity_distance > 0.35
