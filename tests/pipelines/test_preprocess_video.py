"""Video preprocessing without Prefect: monocular segments, multi-view segments, bad input, re-runs.

Inputs are synthetic videos in the real layouts (``pipelines.synth_video``); masks and keypoints come
from the default estimator (MediaPipe Pose, offline; no other weights here).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from gas_core.cameras import Camera
from gas_core.videoio import write_mp4
from pipelines.datasets.errors import ScanReadError
from pipelines.datasets.tiktok import VideoRef
from pipelines.preprocess import load_preprocess_config, pack_staged_subjects
from pipelines.preprocess_video import NoUsableSegmentError, SegmentCrop, plan_videos, preprocess_video, square_crop
from pipelines.synth_video import read_video_groundtruth
from shards.manifest import load_manifest
from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.schema import decode_video


def tiny_config(*overrides: str):
    return load_preprocess_config(preset="tiny", overrides=["video.segment_frames=10", "video.min_segment_frames=6",
                                                            "video.crop_size=64", *overrides])


def read_videos(out: Path):
    return [decode_video(raw) for url in resolve_shard_urls(out) for raw in iter_shard_samples(url)]


def test_square_crop_maps_pixels_and_cameras_consistently():
    crop = square_crop(np.array([[10, 20, 30, 60], [np.nan] * 4, [15, 25, 35, 70]]), (100, 80), 64, 0.1)
    assert crop.side == pytest.approx(50 * 1.2) and crop.size == 64
    camera = Camera(K=np.array([[80.0, 0, 50], [0, 80, 40], [0, 0, 1]]), R=np.eye(3), t=np.zeros(3), width=100, height=80)
    point = np.array([0.1, -0.2, 2.0])
    uv = camera.project(point[None])[0] if hasattr(camera, "project") else (camera.K @ point)[:2] / point[2]
    cropped = crop.apply_camera(camera)
    uv_crop = (cropped.K @ point)[:2] / point[2]
    mapped = crop.apply_points(np.array([[uv[0], uv[1], 1.0]]))[0]
    assert np.allclose(mapped[:2], uv_crop, atol=1e-4) and (cropped.width, cropped.height) == (64, 64)
    image = np.zeros((80, 100), np.uint8)
    image[40, 50] = 255
    out = crop.apply_image(image, nearest=True)
    row, col = np.argwhere(out == 255)[0]
    expected = crop.apply_points(np.array([[50.5, 40.5, 1]]))[0]
    assert abs(col + 0.5 - expected[0]) <= 1.0 and abs(row + 0.5 - expected[1]) <= 1.0
    whole = square_crop(np.full((2, 4), np.nan), (100, 80), 64, 0.1)
    assert whole.side == 100 and isinstance(whole, SegmentCrop)


def test_monocular_videos_become_cropped_segments_with_per_frame_smpl(tmp_path, synthetic_tiktok_root):
    config = tiny_config()
    plan = plan_videos("tiktok", synthetic_tiktok_root, tmp_path, limit=2)
    assert plan.total == 2 and len(plan.todo) == 2
    walk = next(ref for ref in plan.todo if ref.subject_id == "00002")  # 00001 dances in place, 00002 walks
    report = preprocess_video(walk, config, plan.staging_dir)
    assert report.status == "ok" and report.segments == 2 and report.frames == 20, report
    assert report.mask_iou > 0.8 and report.missing_fraction == 0.0
    assert np.isfinite(report.pa_mpjpe_mm) and np.isfinite(report.keypoint_error_px)
    assert [ref.subject_id for ref in plan_videos("tiktok", synthetic_tiktok_root, tmp_path).todo] == ["00001"]  # staged = done
    pack = pack_staged_subjects(plan.staging_dir, tmp_path, config)
    assert pack.samples_written == 2 and pack.shards[0].startswith("videos-")
    videos = read_videos(tmp_path)
    assert sorted(video.key for video in videos) == ["tiktok__00002__seg000", "tiktok__00002__seg001"]
    video = videos[0]
    assert video.frames.shape == (10, 64, 64, 3) and video.normals.shape == (10, 64, 64, 3)
    assert video.video["kind"] == "monocular" and video.num_cameras == 1
    assert len({tuple(np.round(np.asarray(item["betas"]), 6)) for item in video.smpl}) == 1  # one shape per segment
    assert len({tuple(np.round(np.asarray(item["body_pose"]).ravel(), 4)) for item in video.smpl}) > 1  # poses move
    assert all(camera["width"] == 64 for camera in video.cameras)
    # the fitted body (normal maps) overlaps the person's masks
    body = video.normals.max(axis=-1) > 0
    person = video.masks > 127
    assert (body & person).sum() / max(1, body.sum()) > 0.5
    assert [ref.subject_id for ref in plan_videos("tiktok", synthetic_tiktok_root, tmp_path).todo] == ["00001"]  # packed = done


def test_mp4_input_and_bad_videos_fail_alone_naming_the_file(tmp_path, synthetic_tiktok_root):
    root = tmp_path / "raw"
    shutil.copytree(synthetic_tiktok_root / "00002", root / "00002")
    shutil.copytree(synthetic_tiktok_root / "_groundtruth" / "00002", root / "_groundtruth" / "00002")
    frames = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
              for path in sorted((synthetic_tiktok_root / "00002" / "images").glob("*.png"))]
    write_mp4(frames, root / "walk.mp4", fps=30.0)
    shutil.copytree(synthetic_tiktok_root / "_groundtruth" / "00002", root / "_groundtruth" / "walk")
    good = (root / "walk.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(good[: len(good) * 6 // 10])
    (root / "notes.mp4").write_text("not a video")
    write_mp4(frames[:4], root / "short.mp4", fps=30.0)
    background = np.stack([frames[0] * 0 + frames[0][:4, :4].mean(axis=(0, 1)).astype(np.uint8)] * 12)
    write_mp4(background, root / "empty.mp4", fps=30.0)
    config = tiny_config()
    plan = plan_videos("tiktok", root, tmp_path / "out")
    outcomes = {}
    for ref in plan.todo:
        try:
            outcomes[ref.subject_id] = preprocess_video(ref, config, plan.staging_dir).status
        except ScanReadError as error:
            outcomes[ref.subject_id] = str(error)
    assert outcomes["00002"] == "ok"
    assert outcomes["walk"] == "ok"  # the same video as an mp4 file
    assert "cut.mp4" in outcomes["cut"] and "notes.mp4" in outcomes["notes"]
    assert "short.mp4" in outcomes["short"] and "shorter than one segment" in outcomes["short"]
    assert "empty.mp4" in outcomes["empty"] and "no usable segment" in outcomes["empty"]
    staged = sorted(path.name for path in plan.staging_dir.iterdir())
    assert staged == ["tiktok__00002", "tiktok__walk"]  # nothing of the failed videos is left


def test_two_similar_people_drop_the_segment_and_fail_the_video(tmp_path, synthetic_tiktok_root):
    root = tmp_path / "raw"
    frames = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
              for path in sorted((synthetic_tiktok_root / "00001" / "images").glob("*.png"))]
    pairs = [np.concatenate([frame, frame], axis=1) for frame in frames]  # the same dancer twice, side by side
    write_mp4(pairs, root / "pair.mp4", fps=30.0)
    ref = VideoRef(dataset="tiktok", subject_id="pair", path=root / "pair.mp4", kind="file")
    with pytest.raises(ScanReadError, match="several_people") as caught:
        preprocess_video(ref, tiny_config("video.keypoints.noise_px=0"), tmp_path / "staging")
    assert not any((tmp_path / "staging").glob("tiktok__pair*"))
    # the error carries every segment's row, so a caller can count and explain what was rejected
    assert isinstance(caught.value, NoUsableSegmentError) and caught.value.segment_rows
    assert all(row["status"] == "rejected" and row["reason"] for row in caught.value.segment_rows)


def test_multiview_capture_keeps_the_dataset_cameras_and_smpl(tmp_path, synthetic_mvhumannet_root):
    config = tiny_config("video.multiview_segment_frames=5", "video.multiview_cameras=2")
    plan = plan_videos("mvhumannet", synthetic_mvhumannet_root, tmp_path)
    report = preprocess_video(plan.todo[0], config, plan.staging_dir)
    assert report.status == "ok" and report.segments == 2
    pack_staged_subjects(plan.staging_dir, tmp_path, config)
    videos = read_videos(tmp_path)
    assert len(videos) == 2 and {video.num_cameras for video in videos} == {2}
    video = videos[0]
    assert video.frames.shape == (10, 64, 64, 3) and video.video["kind"] == "multiview"
    assert len(video.video["camera_names"]) == 2
    _, truth = read_video_groundtruth(synthetic_mvhumannet_root, plan.todo[0].video_id)
    # the dataset's fits are used as they are: SMPL-convention translation equals the ground truth
    for t in range(5):
        assert np.allclose(video.smpl[t]["transl"], truth["transl"][t], atol=1e-5)
        assert np.allclose(video.smpl[t]["body_pose"], truth["body_pose"][t], atol=1e-6)
        assert np.allclose(video.smpl[5 + t]["transl"], truth["transl"][t], atol=1e-5)  # camera 2, same frame
    # the fitted body drawn by the cropped cameras lands on the dataset's masks (clothes make them differ a little)
    body = video.normals.max(axis=-1) > 0
    person = video.masks > 127
    assert (body & person).sum() / (body | person).sum() > 0.6
    for index in range(len(body)):
        body_centre = np.argwhere(body[index]).mean(axis=0)
        person_centre = np.argwhere(person[index]).mean(axis=0)
        assert np.linalg.norm(body_centre - person_centre) < 5.0  # pixels of 64


def _frames_of(root: Path, video: str) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in sorted((root / video / "images").glob("*.png"))]


def test_bad_input_gets_a_status_and_reason_per_segment(tmp_path, synthetic_tiktok_root):
    from gas_core.segment.background import video_background

    root = tmp_path / "raw"
    frames = _frames_of(synthetic_tiktok_root, "00001")
    empty = np.clip(video_background(frames), 0, 255).astype(np.uint8)
    write_mp4(frames[:10] + [empty] * 10, root / "leaves.mp4", fps=30.0)  # the subject is gone from frame 10 on
    # cut above the knees: at 96 px MediaPipe finds no person in most such frames, else legs go unseen
    waist_up = [cv2.resize(frame[:74, 11:85], (96, 96), interpolation=cv2.INTER_LINEAR) for frame in frames]
    write_mp4(waist_up, root / "waist.mp4", fps=30.0)
    leaves = preprocess_video(VideoRef(dataset="tiktok", subject_id="leaves", path=root / "leaves.mp4", kind="file"),
                              tiny_config(), tmp_path / "staging")
    statuses = [(row["status"], row["reason"]) for row in leaves.segment_rows]
    assert leaves.status == "ok" and leaves.segments == 1 and statuses[0] == ("ok", "")
    assert statuses[1][0] == "rejected" and "without a single clear person (no_person)" in statuses[1][1]
    assert leaves.dropped == 1 and "segment 1 (frames 10-19)" in leaves.error
    with pytest.raises(ScanReadError, match="waist.mp4: no usable segment: .*(partial body: legs not seen|without a single clear person)"):
        preprocess_video(VideoRef(dataset="tiktok", subject_id="waist", path=root / "waist.mp4", kind="file"),
                         tiny_config(), tmp_path / "staging")
    assert sorted(path.name for path in (tmp_path / "staging").iterdir()) == ["tiktok__leaves"]
    staged = sorted((tmp_path / "staging" / "tiktok__leaves").iterdir())
    assert [path.name for path in staged] == ["tiktok__leaves__seg000"]  # rejected segments are never staged
