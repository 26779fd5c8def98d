import numpy as np
import pytest

from gas_core.segment.detect import Detections
from gas_core.segment.tracking import (SubjectTracker, TrackingConfig, box_area, box_histogram, box_iou,
                                      histogram_similarity)


def _box_of(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_box_iou_known_values():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(np.array([0, 0, 10, 10]), boxes), [1.0, 50 / 150, 0.0])


def test_box_area_clamps_sides():
    boxes = np.array([[0, 0, 10, 4], [5, 5, 5.5, 9], [10, 10, 6, 12]], np.float32)
    np.testing.assert_allclose(box_area(boxes), [40.0, 2.0, 0.0])  # an inverted box has no area
    np.testing.assert_allclose(box_area(boxes, min_side=1.0), [40.0, 4.0, 2.0])  # thin sides count as 1 px
    assert box_area(boxes[0]).shape == ()
    with pytest.raises(ValueError, match="min_side"):
        box_area(boxes, min_side=-1.0)
    with pytest.raises(ValueError, match="boxes"):
        box_area(np.zeros((2, 3)))


def test_histogram_similarity_separates_colours():
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, :20] = (200, 30, 30)
    frame[:, 20:] = (30, 30, 200)
    red = box_histogram(frame, np.array([0, 0, 20, 20]))
    blue = box_histogram(frame, np.array([20, 0, 40, 20]))
    assert histogram_similarity(red, red) == pytest.approx(1.0)
    assert histogram_similarity(red, blue) < 0.1


def test_tracker_keeps_subject_when_a_stronger_distractor_appears(blob_scene):
    # Subject (red) walks right; a larger-scored blue distractor walks in from the right at frame 5.
    frames, subject = blob_scene(16, [(20, 2.0, (200, 40, 40), 0), (110, -2.5, (40, 40, 200), 5)])
    _, distractor = blob_scene(16, [(110, -2.5, (40, 40, 200), 5)])
    tracker = SubjectTracker()
    for t in range(16):
        boxes, scores = [_box_of(subject[t])], [0.7]
        if distractor[t].any():
            boxes.append(_box_of(distractor[t]))
            scores.append(0.95)
        order = np.random.default_rng(t).permutation(len(boxes))  # candidate order must not matter
        step = tracker.update(frames[t], Detections(np.array(boxes)[order], np.array(scores)[order]))
        assert step.status == "ok", t
        assert box_iou(step.box, _box_of(subject[t])[None])[0] > 0.99, t
        assert step.score == pytest.approx(0.7)


def test_no_person_on_empty_detections_and_low_scores():
    frame = np.full((32, 32, 3), 90, np.uint8)
    tracker = SubjectTracker(TrackingConfig(score_threshold=0.5))
    step = tracker.update(frame, Detections.empty())
    assert step.status == "no_person" and np.isnan(step.box).all() and step.candidate == -1
    weak = Detections(np.array([[2, 2, 20, 30]], np.float32), np.array([0.2], np.float32))
    assert tracker.update(frame, weak).status == "no_person"


def test_two_similar_people_are_several_people(blob_scene):
    frames, _ = blob_scene(1, [(35, 0.0, (200, 40, 40), 0), (95, 0.0, (200, 40, 40), 0)])
    _, left = blob_scene(1, [(35, 0.0, (200, 40, 40), 0)])
    _, right = blob_scene(1, [(95, 0.0, (200, 40, 40), 0)])
    detections = Detections(np.stack([_box_of(left[0]), _box_of(right[0])]), np.array([0.9, 0.88]))
    assert SubjectTracker().update(frames[0], detections).status == "several_people"
    clear = Detections(detections.boxes, np.array([0.9, 0.4]))
    step = SubjectTracker().update(frames[0], clear)
    assert step.status == "ok" and step.candidate == 0


def test_subject_lost_then_reacquired():
    frame = np.full((40, 40, 3), 90, np.uint8)
    frame[5:35, 5:15] = (200, 40, 40)
    frame[5:35, 25:35] = (40, 200, 40)
    tracker = SubjectTracker(TrackingConfig(max_missing=2))
    red = Detections(np.array([[5, 5, 15, 35]], np.float32), np.array([0.9], np.float32))
    green = Detections(np.array([[25, 5, 35, 35]], np.float32), np.array([0.9], np.float32))
    assert tracker.update(frame, red).status == "ok"
    # Another person, nothing like the subject: not the subject while it may come back ...
    assert [tracker.update(frame, green).status for _ in range(3)] == ["no_person"] * 3
    # ... then, after max_missing frames, the new person is acquired.
    step = tracker.update(frame, green)
    assert step.status == "ok" and step.box[0] == 25


@pytest.mark.parametrize("field, value", [("score_threshold", 1.5), ("min_match", -0.1), ("max_missing", -1),
                                          ("histogram_bins", (8, 0, 4))])
def test_tracking_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrackingConfig(**{field: value})
