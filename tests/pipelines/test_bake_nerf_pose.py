"""Pose clips from video segments: reference frames, labels, cross-view clips, a whole bake and its re-run.

The video segments are assembled from a preprocessed scan subject (its views stand in for cameras)
with a pose that changes per frame, so the bake's pose path runs on real subject data without a video.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gas_core.body.smpl import BodyModel
from gas_core.cameras import Camera
from pipelines.bake_nerf import (
    BakeInputError,
    ClipBaker,
    bake,
    describe_checkpoint,
    pose_clip_labels,
    pose_clip_specs,
    pose_reference_frames,
    video_clip_source,
)
from shards.manifest import load_manifest
from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.schema import VIDEO_SCHEMA, SchemaError, VideoSample, decode, decode_clip, decode_video
from shards.writer import ShardWriter
from tests.pipelines.test_bake_nerf import build_bake_inputs, fast_config


@pytest.fixture(scope="module")
def bake_inputs(tmp_path_factory, synthetic_thuman_root):
    return build_bake_inputs(tmp_path_factory, synthetic_thuman_root)


def video_from_subject(subject, cameras: tuple[int, ...], num_frames: int, segment: int = 0) -> VideoSample:
    """C cameras (views of ``subject``) x T frames whose pose bends the elbows a little more every frame."""
    frames, masks, camera_dicts, smpl = [], [], [], []
    for view in cameras:
        for t in range(num_frames):
            frames.append(subject.views[view])
            masks.append(subject.masks[view])
            camera_dicts.append(subject.cameras[view])
            pose = np.array(subject.smpl["body_pose"], dtype=np.float64).copy()
            pose[17, 2] += 0.15 * t  # left elbow (SMPL joint 18 = body_pose row 17)
            pose[18, 2] -= 0.15 * t
            smpl.append({**subject.smpl, "body_pose": pose})
    kind = "monocular" if len(cameras) == 1 else "multiview"
    return VideoSample(frames=np.stack(frames), masks=np.stack(masks), cameras=camera_dicts, smpl=smpl,
                       video={"kind": kind, "num_cameras": len(cameras), "num_frames": num_frames, "fps": 30.0,
                              "segment": segment, "source_frames": list(range(segment * num_frames, (segment + 1) * num_frames))},
                       meta={"dataset": "synthvideo", "subject_id": str(subject.meta["subject_id"]), "source": []})


@pytest.fixture(scope="module")
def subject(bake_inputs):
    return decode(next(iter_shard_samples(resolve_shard_urls(bake_inputs[0])[0])))


def test_pose_reference_frames_and_labels():
    assert pose_reference_frames(10, 4, 1) == (0,)
    assert pose_reference_frames(10, 4, 3) == (0, 3, 6)
    assert pose_reference_frames(4, 4, 3) == (0,)  # one possible start only
    with pytest.raises(ValueError, match="shorter than a pose clip"):
        pose_reference_frames(3, 4, 1)
    clip = fast_config("clip.pose_frames=3", "clip.pose_references=2", "clip.pose_cross_views=1").clip
    assert pose_clip_labels(1, 6, clip) == ("pose000", "pose003")
    assert pose_clip_labels(2, 6, clip) == ("pose000-cam00", "pose000-cam00to01", "pose003-cam00", "pose003-cam00to01")


def test_video_sample_schema_round_trip_and_layout_checks(tmp_path, subject):
    video = video_from_subject(subject, (0, 4), 3, segment=2)
    assert video.key == f"synthvideo__{subject.meta['subject_id']}__seg002"
    assert video.image_index(1, 2) == 5
    with pytest.raises(ValueError, match="camera"):
        video.image_index(2, 0)
    with ShardWriter(tmp_path, "videos", VIDEO_SCHEMA) as writer:
        writer.write(video)
    back = decode_video(next(iter_shard_samples(resolve_shard_urls(tmp_path)[0])))
    assert back.key == video.key and np.array_equal(back.frames, video.frames)
    assert np.allclose(back.smpl[5]["body_pose"], video.smpl[5]["body_pose"])
    with pytest.raises(SchemaError, match="num_cameras"):
        replace(video, video={**video.video, "num_frames": 4})


def test_pose_clip_specs_fix_the_camera_and_follow_the_frames(subject):
    source = video_clip_source(video_from_subject(subject, (0, 4), 5))
    clip = fast_config("clip.pose_frames=3", "clip.pose_references=2", "clip.pose_cross_views=1").clip
    specs = pose_clip_specs(source, clip)
    assert [spec.label for spec in specs] == list(pose_clip_labels(2, 5, clip))
    same, cross = specs[2], specs[3]  # reference frame 2 of camera 0; the second one seen from camera 1
    assert same.reference_index == 2 and same.frame_indices == (2, 3, 4)
    assert cross.reference_index == 2 and cross.frame_indices == (7, 8, 9)  # camera 1 is images 5..9
    assert all(camera is source.cameras[2] for camera in same.cameras)
    assert all(camera is source.cameras[7] for camera in cross.cameras)
    assert [float(item["body_pose"][17, 2]) for item in same.smpl] == [float(source.smpl[i]["body_pose"][17, 2]) for i in (2, 3, 4)]
    assert same.key(source).endswith("__seg000-pose002-cam00") and cross.key(source).endswith("__seg000-pose002-cam00to01")
    with pytest.raises(BakeInputError, match="shorter than a pose clip"):
        pose_clip_specs(source, replace(clip, pose_frames=6))


def test_baked_pose_clip_renders_each_frame_pose(subject, bake_inputs, open_body_model_dir):
    from gas_core.nerf import GeneralizableHumanNeRF

    source = video_clip_source(video_from_subject(subject, (0,), 4))
    config = fast_config("clip.pose_frames=4", "clip.pose_references=1")
    spec = pose_clip_specs(source, config.clip)[0]
    model = GeneralizableHumanNeRF.from_pretrained(str(bake_inputs[1]))
    with ClipBaker(model, BodyModel(open_body_model_dir), config, describe_checkpoint(bake_inputs[1]), torch.device("cpu")) as baker:
        clip = baker.bake(source, spec)
    assert clip.mode == "pose" and clip.key.endswith("__seg000-pose000") and clip.meta["clip_id"] == "seg000-pose000"
    assert np.array_equal(clip.reference, clip.frames[0])
    # the arms move frame after frame: every normal map differs from the previous one
    changes = [np.abs(clip.normals[i].astype(int) - clip.normals[i - 1].astype(int)).sum() for i in range(1, 4)]
    assert min(changes) > 0
    first = Camera.from_dict(clip.cameras[0])
    for camera in map(Camera.from_dict, clip.cameras):
        assert np.array_equal(camera.K, first.K) and np.array_equal(camera.R, first.R) and np.array_equal(camera.t, first.t)


def test_bake_of_video_shards_writes_pose_clips_and_reruns_skip(tmp_path, subject, bake_inputs):
    videos = tmp_path / "videos"
    with ShardWriter(videos, "videos", VIDEO_SCHEMA) as writer:
        writer.write(video_from_subject(subject, (0,), 3, segment=0))
        writer.write(video_from_subject(subject, (0, 4), 3, segment=1))
    config = fast_config("clip.pose_frames=2", "clip.pose_references=1", "clip.pose_cross_views=1")
    out = tmp_path / "clips"
    report = bake(videos, out, bake_inputs[1], config, rank=0, world_size=1, progress=False)
    assert report.ok, report.problems
    sid = subject.meta["subject_id"]
    expected = {f"synthvideo__{sid}__seg000-pose000", f"synthvideo__{sid}__seg001-pose000-cam00",
                f"synthvideo__{sid}__seg001-pose000-cam00to01"}
    assert set(load_manifest(out).keys) == expected
    clips = [decode_clip(raw) for url in resolve_shard_urls(out) for raw in iter_shard_samples(url)]
    assert {clip.mode for clip in clips} == {"pose"} and {clip.key for clip in clips} == expected
    again = bake(videos, out, bake_inputs[1], config, rank=0, world_size=1, progress=False)
    assert again.clips_written == 0 and again.clips_skipped == 3
