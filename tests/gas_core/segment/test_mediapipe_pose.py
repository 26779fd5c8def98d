"""MediaPipe Pose as the offline estimator: masks and COCO-17 keypoints of synthetic people, the subject
kept when a second person walks in, and the built-in fallback that does not collapse.

The videos are the project's synthetic dancers (``pipelines.synth_video``), 24 frames of 160 px.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gas_core.segment.background import video_background
from gas_core.segment.mediapipe_pose import MEDIAPIPE_TO_COCO17, MediaPipeKeypoints, MediaPipePose, MediaPipePoseConfig
from gas_core.segment.video import MaskingConfig, VideoMasker, VideoMasks

from .conftest import mask_iou

pytest.importorskip("mediapipe")


def _read(root: Path, video: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from pipelines.synth_video import read_video_groundtruth

    folder = root / video
    frames = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in sorted((folder / "images").glob("*.png"))])
    _, arrays = read_video_groundtruth(root, video)
    return frames, np.asarray(arrays["masks"])[0] > 0, np.asarray(arrays["keypoints2d"])[0]


@pytest.fixture(scope="module")
def dancers(tmp_path_factory, open_body_model_dir):
    """Two synthetic videos (a dance, a walk): frames (T, H, W, 3), true masks (T, H, W), true keypoints (T, 17, 3)."""
    from pipelines.synth_video import synthesize_tiktok

    root = tmp_path_factory.mktemp("dancers")
    synthesize_tiktok(root, num_videos=2, num_frames=24, size=160, seed=11)
    return _read(root, "00001"), _read(root, "00002")


def _masks(frames: np.ndarray, config: MaskingConfig, **kwargs) -> VideoMasks:
    masker = VideoMasker(config, **kwargs)
    return VideoMasks.concatenate([masker.process(frames[i:i + 8]) for i in range(0, len(frames), 8)] + [masker.finish()])


def test_coco_mapping_takes_the_named_landmarks():
    from mediapipe.python.solutions.pose import PoseLandmark

    names = [PoseLandmark(index).name.lower() for index in MEDIAPIPE_TO_COCO17]
    assert names[0] == "nose" and names[5:7] == ["left_shoulder", "right_shoulder"] and names[-2:] == ["left_ankle", "right_ankle"]
    with pytest.raises(ValueError, match="mask_threshold"):
        MediaPipePoseConfig(mask_threshold=1.0)


def test_masks_and_keypoints_of_a_dancer_match_the_truth(dancers):
    (frames, truth, keypoints), _ = dancers
    masks = _masks(frames, MaskingConfig.tiny())
    assert set(masks.statuses) == {"ok"}
    ious = [mask_iou(mask > 127, truth[i]) for i, mask in zip(masks.frame_indices, masks.masks)]
    assert min(ious) > 0.85, ious
    seen = (keypoints[..., 2] >= 2) & (masks.keypoints[..., 2] > 0.5)
    error = np.linalg.norm(masks.keypoints[..., :2] - keypoints[..., :2], axis=-1)[seen]
    assert seen.sum() > 0.7 * seen.size and np.median(error) < 6.0  # pixels of a 160 px frame


def test_still_images_give_keypoints_and_an_empty_frame_gives_none(dancers):
    (frames, _, keypoints), _ = dancers
    points = MediaPipeKeypoints().detect([frames[0], np.full_like(frames[0], 90)])
    assert points.shape == (2, 17, 3) and np.all(points[1, :, 2] == 0)
    left_right = points[0, 5, 0] - points[0, 6, 0]  # left minus right shoulder, u
    assert np.sign(left_right) == np.sign(keypoints[0, 5, 0] - keypoints[0, 6, 0])


def test_an_intruder_walking_in_never_takes_the_subject_place(dancers):
    (frames, truth, _), (other, other_truth, _) = dancers
    width = frames.shape[2]
    composed = frames.copy()
    for t in range(8, len(frames)):  # the second person enters from the right at frame 8 and walks left
        shift = int(width * 0.9) - (t - 8) * 6
        mask = np.roll(other_truth[t], shift, axis=1)
        mask[:, :min(max(shift, 0), width)] &= np.roll(np.ones(width, bool), shift)[None, :min(max(shift, 0), width)]
        composed[t][mask] = np.roll(other[t], shift, axis=1)[mask]
    masks = _masks(composed, MaskingConfig.tiny())
    ok = [i for i, status in enumerate(masks.statuses) if status == "ok"]
    assert len(ok) >= len(frames) // 2
    ious = [mask_iou(masks.masks[i] > 127, truth[masks.frame_indices[i]]) for i in ok]
    assert min(ious) > 0.5, ious  # frames kept are the subject; the others are flagged, never swapped


def test_builtin_fallback_keeps_a_dancer_in_place_from_the_first_frame(dancers):
    (frames, truth, _), _ = dancers
    config = replace(MaskingConfig.tiny(), estimator="background")
    plain = _masks(frames, config)
    prior = _masks(frames, config, background_prior=video_background(iter(frames), config.background))
    def worst_half(masks):
        ious = np.array([mask_iou(mask > 127, truth[i]) for i, mask in zip(masks.frame_indices, masks.masks)])
        return min(ious[: len(ious) // 2].mean(), ious[len(ious) // 2:].mean())
    assert worst_half(prior) >= 0.6 and worst_half(prior) > worst_half(plain)


@pytest.fixture(scope="module")
def cluttered_jump(tmp_path_factory, open_body_model_dir):
    """A heavy body jumping in front of dense clutter (stress scene), 8 frames of 192 px, on which
    MediaPipe's person detector finds nobody in any frame: frames (T, H, W, 3), true masks (T, H, W)."""
    from pipelines.synth_video import StressOptions, synthesize_tiktok

    root = tmp_path_factory.mktemp("cluttered")
    synthesize_tiktok(root, num_videos=1, num_frames=8, size=192, seed=500,
                      stress=StressOptions(motions=("jump",), bodies=("heavy",), scenes=("cluttered",), people=("none",)))
    frames, truth, _ = _read(root, "00001")
    return frames, truth.reshape(len(frames), *frames.shape[1:3])


def test_search_finds_the_person_the_detector_misses_on_clutter(cluttered_jump):
    frames, truth = cluttered_jump
    plain = MediaPipePose(MediaPipePoseConfig(probe_stride=0, search_scales=()))
    assert not any(plain.estimate(frame).found for frame in frames)  # the detector alone misses every frame
    searching = MediaPipePose(MediaPipePoseConfig(probe_stride=0, search_scales=(1.0, 0.8)))
    estimates = [searching.estimate(frame) for frame in frames]
    ious = [mask_iou(estimate.mask >= 0.5, true) for estimate, true in zip(estimates, truth)]
    assert min(ious) > 0.6, ious
    config = MaskingConfig.tiny()
    masks = _masks(frames, replace(config, mediapipe=replace(config.mediapipe, search_scales=(1.0, 0.8))))
    assert masks.statuses.count("ok") >= 6
    assert min(mask_iou(mask > 127, truth[i]) for i, mask in zip(masks.frame_indices, masks.masks) if mask.any()) > 0.6


def test_search_windows_start_from_the_last_box_and_cover_the_frame():
    estimator = MediaPipePose(MediaPipePoseConfig(probe_stride=0, search_scales=(1.0, 0.5), crop_margin=0.0))
    windows = estimator.search_windows(100, 200)
    assert windows[0] == (0, -50, 200)  # the whole longer side, centred
    assert {(0, 0, 100), (50, 0, 100), (100, 0, 100)} <= set(windows) and len(windows) == 4
    estimator._recent = (np.array([10, 20, 30, 60], np.float32), 0)
    assert estimator.search_windows(100, 200)[0] == (0, 20, 40)
    moving = np.zeros((100, 200), bool)
    moving[10:50, 150:170] = True
    assert estimator.search_windows(100, 200, moving)[0] == (140, 10, 40)
    with pytest.raises(ValueError, match="search_scales"):
        MediaPipePoseConfig(search_scales=(0.0,))


def _moved_person(frames: np.ndarray, truth: np.ndarray, t: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """The background plate of ``frames`` alone, and with the person of frame ``t`` moved ``shift`` px sideways."""
    plate = np.clip(video_background(iter(frames)), 0, 255).astype(np.uint8)
    moved = plate.copy()
    mask = np.roll(truth[t], shift, axis=1)
    moved[mask] = np.roll(frames[t], shift, axis=1)[mask]
    return plate, moved


def test_a_person_found_away_from_the_subject_just_followed_is_not_taken(dancers):
    _, (frames, truth, _) = dancers  # the walk: the background plate of the whole video is clean
    cols = np.flatnonzero(truth[10].any(axis=0))
    empty, moved = _moved_person(frames, truth, 10, 2 - int(cols[0]))  # to the left edge: box IoU < 0.3

    def run(config: MediaPipePoseConfig, followed: int) -> list[bool]:
        estimator = MediaPipePose(config)
        seen = [estimator.estimate(frame).found for frame in frames[:followed]]
        assert all(seen)
        found = [estimator.estimate(empty).found, estimator.estimate(moved).found]
        back = estimator.estimate(frames[followed])
        estimator.close()
        return found + [back.found and mask_iou(back.mask >= 0.5, truth[followed]) > 0.8]

    checked = MediaPipePoseConfig(probe_stride=0)  # the defaults: IoU 0.3, area within 2x, after 8 frames
    plain = replace(checked, continuity_iou=0.0, continuity_area_ratio=0.0)
    assert run(plain, 10) == [False, True, True]  # without the check the moved person is taken
    assert run(checked, 10) == [False, False, True]  # with it: not where the subject was; the subject is
    assert run(checked, 4) == [False, True, True]  # followed for fewer than continuity_after frames: no check


def test_continuity_settings_are_checked():
    with pytest.raises(ValueError, match="continuity_iou"):
        MediaPipePoseConfig(continuity_iou=1.5)
    with pytest.raises(ValueError, match="continuity_area_ratio"):
        MediaPipePoseConfig(continuity_area_ratio=0.5)
    with pytest.raises(ValueError, match="continuity_after"):
        MediaPipePoseConfig(continuity_after=0)


def _foregrounds(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) bool static-camera foreground of ``frames``, against the background of the whole video."""
    from gas_core.segment.background import BackgroundConfig, BackgroundSubtractor

    subtractor = BackgroundSubtractor(BackgroundConfig(), video_background(iter(frames)))
    items = [item for frame in frames for item in subtractor.push(frame)] + subtractor.finish()
    return np.stack([item.foreground for item in sorted(items, key=lambda item: item.index)])


def test_motion_search_finds_the_person_on_clutter_where_something_moves(cluttered_jump):
    frames, truth = cluttered_jump
    moving = _foregrounds(frames)
    config = MediaPipePoseConfig(probe_stride=0, motion_search_iou=0.3)
    searching = MediaPipePose(config)
    estimates = [searching.estimate(frame, foreground=fg) for frame, fg in zip(frames, moving)]
    found = [mask_iou(e.mask >= 0.5, true) for e, true in zip(estimates, truth) if e.found]
    assert sum(iou > 0.6 for iou in found) >= 5, found  # the detector alone finds nobody (test above)
    # Nothing moves: the same frames give nobody (no "person" made of the clutter).
    still = MediaPipePose(config)
    assert not any(still.estimate(frame, foreground=np.zeros_like(fg)).found for frame, fg in zip(frames, moving))
    # The find is taken only when its box agrees with the moving region's box (here the true silhouette).
    first = next(t for t, e in enumerate(estimates) if e.found and mask_iou(e.mask >= 0.5, truth[t]) > 0.6)
    agreeing = MediaPipePose(replace(config, motion_search_iou=0.5)).estimate(frames[first], foreground=truth[first])
    assert agreeing.found and mask_iou(agreeing.mask >= 0.5, truth[first]) > 0.6
    assert not MediaPipePose(replace(config, motion_search_iou=0.999)).estimate(frames[first], foreground=truth[first]).found
    # Through the masker: the background model runs beside MediaPipe and feeds it the foreground.
    masking = MaskingConfig.tiny()
    masker_config = replace(masking, mediapipe=replace(masking.mediapipe, motion_search_iou=0.3))
    without = replace(masking, mediapipe=replace(masking.mediapipe, motion_search_iou=0.0, min_moving_fraction=0.0))
    assert VideoMasker(masker_config).uses_background_model and not VideoMasker(without).uses_background_model
    masks = _masks(frames, masker_config, background_prior=video_background(iter(frames)))
    ious = [mask_iou(mask > 127, truth[i]) for i, mask in zip(masks.frame_indices, masks.masks) if mask.any()]
    assert sum(iou > 0.6 for iou in ious) >= 5, ious


def test_motion_search_setting_is_checked():
    with pytest.raises(ValueError, match="motion_search_iou"):
        MediaPipePoseConfig(motion_search_iou=1.2)
    assert MediaPipePoseConfig(motion_search_iou=0.3).uses_foreground
    assert not MediaPipePoseConfig(motion_search_iou=0.0, min_moving_fraction=0.0).uses_foreground
