"""Synthetic TikTok-style and MVHumanNet-style videos: layouts, backdrop, ground truth, MP4, arguments."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.synth_video import (
    backdrop,
    read_video_groundtruth,
    ring_cameras,
    synth_video_main,
    synthesize_mvhumannet,
    synthesize_tiktok,
)

SIZE, FRAMES = 64, 4


@pytest.fixture(scope="module")
def tiktok_root(tmp_path_factory, open_body_model_dir):
    root = tmp_path_factory.mktemp("tiktok")
    timing = synthesize_tiktok(root, num_videos=2, num_frames=FRAMES, size=SIZE, seed=1)
    print(f"\ntiktok synthesis: {timing.seconds_per_image:.3f} s per frame at {SIZE}px")
    return root


def test_tiktok_layout_and_groundtruth(tiktok_root):
    for video_id in ("00001", "00002"):
        images = sorted(p.name for p in (tiktok_root / video_id / "images").iterdir())
        assert images == [f"{i:04d}.png" for i in range(1, FRAMES + 1)]
        record, truth = read_video_groundtruth(tiktok_root, video_id)
        assert record["motion"]["kind"] == ("dance", "walk")[int(video_id) - 1]
        assert truth["masks"].shape == (1, FRAMES, SIZE, SIZE) and truth["keypoints2d"].shape == (1, FRAMES, 17, 3)
        assert truth["body_pose"].shape == (FRAMES, 23, 3) and truth["joints24"].shape == (FRAMES, 24, 3)
        flags = truth["keypoints2d"][..., 2]
        assert set(np.unique(flags)) <= {0.0, 1.0, 2.0}
        assert (flags > 0).mean() > 0.9 and (flags == 2).mean() > 0.5  # in view, mostly visible
        if record["motion"]["kind"] == "walk":  # side-on: the far ear, hip or limbs hide behind the body
            assert (flags == 1).any()
        for frame in range(FRAMES):
            rgb = np.asarray(Image.open(tiktok_root / video_id / "images" / f"{frame + 1:04d}.png"))
            mask = np.asarray(Image.open(tiktok_root / video_id / "masks" / f"{frame + 1:04d}.png")) > 127
            np.testing.assert_array_equal(mask, truth["masks"][0, frame].astype(bool))
            assert 0.02 < mask.mean() < 0.6
            background = rgb[~mask]
            assert background.mean() > 20 and background.std() > 5  # a textured backdrop, not black


def test_existing_videos_are_skipped(tiktok_root):
    image = tiktok_root / "00002" / "images" / "0001.png"
    stamp = image.stat().st_mtime_ns
    timing = synthesize_tiktok(tiktok_root, num_videos=2, num_frames=FRAMES, size=SIZE, seed=1)
    assert timing.ids == () and image.stat().st_mtime_ns == stamp
    assert not [p for p in tiktok_root.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_backdrop_is_seeded_and_varied():
    first, again, other = backdrop(48, 32, 3), backdrop(48, 32, 3), backdrop(48, 32, 4)
    assert first.shape == (32, 48, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 5
    assert first.reshape(-1, 3).std(axis=0).min() > 3


def test_tiktok_mp4(tmp_path, open_body_model_dir):
    from gas_core.videoio import count_video_frames, probe_video

    synthesize_tiktok(tmp_path, num_videos=1, num_frames=FRAMES, size=SIZE, seed=2, as_mp4=True)
    path = tmp_path / "00001.mp4"
    assert path.is_file() and not (tmp_path / "00001").exists()
    info = probe_video(path)
    assert (info.width, info.height) == (SIZE, SIZE)
    assert count_video_frames(path) == FRAMES
    _, truth = read_video_groundtruth(tmp_path, "00001")
    assert truth["masks"].shape == (1, FRAMES, SIZE, SIZE) and truth["masks"].any()


def test_ring_cameras_surround_the_subject():
    cameras = ring_cameras(4, 32, radius=2.0)
    centres = np.stack([camera.center for camera in cameras])
    np.testing.assert_allclose(np.linalg.norm(centres[:, [0, 2]], axis=1), 2.0)
    for camera in cameras:
        u, v = camera.project(np.zeros(3))
        assert abs(u - 16) < 4 and abs(v - 16) < 6


def test_cli_entry_point(tmp_path, open_body_model_dir, capsys):
    assert synth_video_main(["mvhumannet", "--out", str(tmp_path), "-n", "1", "--frames", "2", "--cameras", "2",
                             "--size", "32"]) == 0
    assert "1 synthetic mvhumannet" in capsys.readouterr().out
    assert (tmp_path / "100001" / "images_lr" / "CC32871A005" / "0010_img.jpg").is_file()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="num_videos"):
        synthesize_tiktok(tmp_path, num_videos=0, num_frames=4)
    with pytest.raises(ValueError, match="size"):
        synthesize_tiktok(tmp_path, num_videos=1, num_frames=4, size=8)
    with pytest.raises(ValueError, match="num_cameras"):
        synthesize_mvhumannet(tmp_path, num_subjects=1, num_cameras=0, num_frames=4)
    with pytest.raises(ValueError, match="seed"):
        synthesize_mvhumannet(tmp_path, num_subjects=1, num_cameras=2, num_frames=4, seed=-1)


def test_keypoint_flags_follow_the_image_and_the_depth():
    from gas_core.cameras import Camera, look_at
    from pipelines.synth_video import VISIBILITY_TOLERANCE, keypoints_2d

    R, t = look_at(np.array([0.0, 0.0, 2.0]), np.zeros(3))
    camera = Camera(K=Camera.intrinsics_from_fov(40.0, 32, 32), R=R, t=t, width=32, height=32)
    points = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])  # centre, centre, off-image
    depth = np.zeros((1, 32, 32), dtype=np.float32)
    flags = keypoints_2d(points, camera, depth)[0, :, 2]
    assert list(flags) == [2.0, 2.0, 0.0]  # nothing rendered in front
    depth[:] = 2.0 - VISIBILITY_TOLERANCE - 0.05  # a surface well in front of the centre point
    assert keypoints_2d(points[:, :1], camera, depth)[0, 0, 2] == 1.0
    depth[:] = 2.0 - 0.05  # the point's own skin, just in front
    uv = keypoints_2d(points[:, :1], camera, depth)[0, 0]
    assert uv[2] == 2.0 and np.allclose(uv[:2], 16.0)


def test_stress_set_from_the_cli_records_motion_body_scene_and_exact_truth(tmp_path, open_body_model_dir, capsys):
    """``gas synth tiktok --stress``: stress motions, bodies and scenes in turn, recorded in the ground
    truth, whose masks are the shown subject and whose keypoints are its projected joints (through the
    shake-and-zoom warp where there is one)."""
    from gas_core.cameras import Camera
    from gas_core.synth.scene import warp_points

    assert synth_video_main(["tiktok", "--out", str(tmp_path), "-n", "2", "--frames", "3", "--size", "48", "--stress",
                             "--motions", "arms_overhead", "squat", "--bodies", "child", "heavy",
                             "--scenes", "shake_zoom", "lighting", "--people", "none"]) == 0
    assert "2 synthetic tiktok" in capsys.readouterr().out
    heights = []
    for video_id, motion, body, scene in (("00001", "arms_overhead", "child", "shake_zoom"),
                                          ("00002", "squat", "heavy", "lighting")):
        record, arrays = read_video_groundtruth(tmp_path, video_id)
        assert record["stress"] == {"motion": motion, "body": body, "scene": scene, "people": "none", "subject": 0}
        assert record["motion"]["kind"] == motion
        camera = Camera.from_dict(record["cameras"]["camera"])
        uv = camera.project(arrays["coco17"])
        if scene == "shake_zoom":
            assert arrays["image_warp"].shape == (3, 2, 3) and "light_gain" not in arrays
            uv = np.stack([warp_points(points, warp) for points, warp in zip(uv, arrays["image_warp"])])
        else:
            assert arrays["light_gain"].shape == (3, 3) and np.ptp(arrays["light_gain"]) > 0
        seen = arrays["keypoints2d"][0, ..., 2] > 0
        np.testing.assert_allclose(arrays["keypoints2d"][0][seen][:, :2], uv[seen], atol=1e-6)
        mask = arrays["masks"][0, 0].astype(bool)
        assert mask.any() and np.array_equal(mask, np.asarray(Image.open(tmp_path / video_id / "masks" / "0001.png")) > 127)
        heights.append(np.ptp(arrays["joints24"][0, :, 1]))
    assert heights[0] < heights[1]  # the child is smaller than the heavy adult
    with pytest.raises(SystemExit):
        synth_video_main(["tiktok", "--out", str(tmp_path), "--stress", "--motions", "cartwheel"])


def test_a_second_person_occluding_leaves_the_subject_mask_exact(tmp_path, open_body_model_dir):
    """A second person crossing in front: the ground-truth mask is the subject's visible part only (never
    the intruder's), the intruder has its own mask, and covered keypoints are flagged hidden."""
    from pipelines.synth_video import StressOptions

    options = StressOptions(motions=("arms_overhead",), bodies=("adult",), scenes=("plain",), people=("occlude",))
    synthesize_tiktok(tmp_path, num_videos=1, num_frames=12, fps=10.0, size=48, seed=3, stress=options)
    record, arrays = read_video_groundtruth(tmp_path, "00001")
    assert record["stress"]["people"] == "occlude" and record["stress"]["subject"] == 0
    subject, other = arrays["masks"][0].astype(bool), arrays["other_masks"][0, :, 0].astype(bool)
    assert other.any(axis=(1, 2)).sum() >= 2  # the intruder is seen
    assert not np.logical_and(subject, other).any()  # the subject mask excludes the intruder
    assert subject.any(axis=(1, 2)).all()
    shown = np.stack([np.asarray(Image.open(tmp_path / "00001" / "masks" / f"{f + 1:04d}.png")) > 127 for f in range(12)])
    assert np.array_equal(shown, subject)
    # frames where the intruder covers much of the subject hide some of its keypoints
    covered = other.sum(axis=(1, 2)) > 0.3 * (subject.sum(axis=(1, 2)) + other.sum(axis=(1, 2)))
    assert covered.any() and (arrays["keypoints2d"][0, covered, :, 2] == 1).any()
