from dataclasses import replace

import numpy as np
import pytest

from gas_core.segment.sam import SamMasker
from gas_core.segment.tracking import TrackingConfig
from gas_core.segment.video import MaskingConfig, VideoMasker, VideoMasks, mask_video

from .conftest import mask_iou

RED, BLUE = (240, 20, 20), (20, 20, 240)


def _run_chunks(frames: np.ndarray, sizes, config=replace(MaskingConfig.tiny(), estimator="background"), **kwargs) -> VideoMasks:
    bounds = np.cumsum([0, *sizes])
    chunks = [frames[a:b] for a, b in zip(bounds[:-1], bounds[1:])] + ([frames[bounds[-1]:]] if bounds[-1] < len(frames) else [])
    return VideoMasks.concatenate(list(mask_video(chunks, config, **kwargs)))


def test_builtin_masker_follows_the_subject(blob_scene):
    frames, truth = blob_scene(30, [(20, 2.5, RED, 0)])
    result = _run_chunks(frames, [30])
    assert result.masks.shape == (30, 96, 128) and result.masks.dtype == np.uint8
    assert set(np.unique(result.masks)) <= {0, 255}
    np.testing.assert_array_equal(result.frame_indices, np.arange(30))
    assert result.statuses == ("ok",) * 30
    ious = [mask_iou(result.masks[t] > 0, truth[t]) for t in range(30)]
    assert np.mean(ious) > 0.8 and min(ious) > 0.6, ious
    assert result.boxes.dtype == np.float32 and np.isfinite(result.boxes).all()


@pytest.mark.parametrize("aligned", [False, True])
def test_chunks_give_the_same_masks_as_one_chunk(blob_scene, aligned):
    frames, _ = blob_scene(37, [(20, 2.5, RED, 0), (115, -1.5, BLUE, 10)])
    config = replace(MaskingConfig.tiny(), estimator="background", smoothing_aligns_motion=aligned)
    whole = _run_chunks(frames, [37], config)
    for sizes in ([1, 7, 13], [5] * 7, [0, 36]):
        chunked = _run_chunks(frames, sizes, config)
        np.testing.assert_array_equal(chunked.frame_indices, whole.frame_indices)
        np.testing.assert_array_equal(chunked.masks, whole.masks)
        np.testing.assert_array_equal(chunked.boxes, whole.boxes)  # NaN compares equal here
        assert chunked.statuses == whole.statuses


def test_distractor_appearing_does_not_take_the_mask(blob_scene):
    # A blue person of the same size appears at frame 12 ahead of the subject and walks the same way (never
    # within 2 * group_radius of it, where the background model would merge them): it must stay out.
    frames, truth = blob_scene(36, [(10, 2.5, RED, 0), (70, 2.5, BLUE, 12)], width=160)
    _, distractor = blob_scene(36, [(70, 2.5, BLUE, 12)], width=160)
    result = _run_chunks(frames, [10, 10, 16])
    assert result.statuses == ("ok",) * 36
    for t in range(36):
        mask = result.masks[t] > 0
        assert mask_iou(mask, truth[t]) > 0.6, t
        assert (mask & distractor[t]).sum() < 0.05 * max(1, distractor[t].sum()), t


def test_empty_video_is_no_person(blob_scene):
    frames, _ = blob_scene(12, [])
    result = _run_chunks(frames, [4, 4, 4])
    assert result.statuses == ("no_person",) * 12
    assert not result.masks.any() and np.isnan(result.boxes).all() and np.isnan(result.scores).all()


def test_two_similar_people_are_several_people(blob_scene):
    frames, _ = blob_scene(16, [(15, 2.5, RED, 0), (145, -2.5, RED, 0)], width=160)
    result = _run_chunks(frames, [16])
    assert result.statuses == ("several_people",) * 16
    assert not result.masks.any()


def test_tiny_yolo_and_tiny_sam_run_end_to_end(blob_scene, tiny_yolo_weights, tiny_sam):
    frames, _ = blob_scene(4, [(30, 3.0, RED, 0)], height=64, width=96)
    config = MaskingConfig(detector_weights=str(tiny_yolo_weights), detector_score_threshold=0.0,
                           detector_image_size=96, smoothing_window=3,
                           tracking=TrackingConfig(score_threshold=0.0, min_match=0.0, ambiguity_margin=0.0))
    masker = VideoMasker(config, box_masker=SamMasker(tiny_sam))
    assert not masker.uses_background_model
    result = VideoMasks.concatenate([masker.process(frames[:3]), masker.process(frames[3:]), masker.finish()])
    assert len(result) == 4 and result.masks.shape == (4, 64, 96)
    # Random weights give near-equal scores: with no threshold and no ambiguity margin the top box is
    # followed, so every frame goes through YOLO, the tracker and SAM.
    assert result.statuses == ("ok",) * 4
    assert np.isfinite(result.boxes).all() and np.all(result.boxes[:, 2:] >= result.boxes[:, :2])
    assert np.isfinite(result.scores).all()


def test_tiny_sam_refines_builtin_candidates(blob_scene, tiny_sam):
    frames, _ = blob_scene(8, [(30, 3.0, RED, 0)], height=64, width=96)
    masker = VideoMasker(replace(MaskingConfig.tiny(), estimator="background"), box_masker=SamMasker(tiny_sam))
    assert masker.uses_background_model
    result = VideoMasks.concatenate([masker.process(frames), masker.finish()])
    assert result.statuses == ("ok",) * 8 and result.masks.shape == (8, 64, 96)


def test_config_presets_and_validation(tmp_path):
    assert MaskingConfig.tiny().sam_checkpoint is None and MaskingConfig.tiny().smoothing_window == 3
    assert MaskingConfig.paper().sam_model_type == "vit_h"
    with pytest.raises(ValueError, match="weights_path"):
        VideoMasker(MaskingConfig.paper())  # weight files are not there: nothing is downloaded
    with pytest.raises(ValueError, match="smoothing_window"):
        MaskingConfig(smoothing_window=4)
    with pytest.raises(ValueError, match="grounding_dino"):
        MaskingConfig(grounding_dino_config=str(tmp_path / "cfg.py"))
    with pytest.raises(ValueError, match="frames"):
        VideoMasker(replace(MaskingConfig.tiny(), estimator="background")).process(np.zeros((2, 8, 8), np.uint8))


def test_config_loads_with_overrides():
    from pipelines.config import load_config

    config = load_config(MaskingConfig, preset="tiny", overrides=["smoothing_window=5", "background.color_threshold=40"])
    assert config.smoothing_window == 5 and config.background.color_threshold == 40
