"""MVHumanNet reader: round trip of a synthetic capture, the release's SMPL-X records, damaged captures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipelines.datasets.errors import ScanReadError
from pipelines.datasets.mvhumannet import (
    discover_mvhumannet,
    iter_mvhumannet_chunks,
    pelvis_centred_transl,
    read_mvhumannet_smpl,
    read_mvhumannet_video,
)
from pipelines.synth_video import read_video_groundtruth, synthesize_mvhumannet

CAMERAS, FRAMES, SIZE = 3, 4, 64


@pytest.fixture(scope="module")
def capture_root(tmp_path_factory, open_body_model_dir):
    root = tmp_path_factory.mktemp("mvhumannet")
    synthesize_mvhumannet(root, num_subjects=1, num_cameras=CAMERAS, num_frames=FRAMES, size=SIZE, seed=2)
    return root


@pytest.fixture()
def damaged(capture_root, tmp_path):
    """A copy of the capture folder to damage."""
    copy = tmp_path / "copy"
    shutil.copytree(capture_root, copy)
    return copy, copy / "100001"


def test_layout_files_exist(capture_root):
    folder = capture_root / "100001"
    for name in ("camera_intrinsics.json", "camera_extrinsics.json", "camera_scale.pkl"):
        assert (folder / name).is_file(), name
    cameras = sorted(p.name for p in (folder / "images_lr").iterdir())
    assert cameras == ["CC32871A004", "CC32871A005", "CC32871A006"]
    assert (folder / "images_lr" / "CC32871A004" / "0020_img.jpg").is_file()
    assert (folder / "fmask_lr" / "CC32871A006" / "0005_img_fmask.png").is_file()
    assert (folder / "smplx" / "smpl" / "000003.json").is_file()
    assert sorted(json.loads((folder / "camera_extrinsics.json").read_text())) == [f"1_{c}.png" for c in cameras]


def test_round_trip_recovers_cameras_masks_and_parameters(capture_root):
    (ref,) = discover_mvhumannet(capture_root)
    video = read_mvhumannet_video(ref)
    record, truth = read_video_groundtruth(capture_root, ref.video_id)
    assert video.camera_names == tuple(record["camera_names"])
    assert video.ticks == ("0005", "0010", "0015", "0020") and (video.width, video.height) == (SIZE, SIZE)
    for name, camera in video.cameras.items():
        expected = record["cameras"][name]
        np.testing.assert_allclose(camera.K, expected["K"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(camera.R, expected["R"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(camera.t, expected["t"], rtol=0, atol=1e-12)
    chunks = list(iter_mvhumannet_chunks(video, 3))
    assert [len(chunk.ticks) for chunk in chunks] == [3, 1]
    images = np.concatenate([chunk.images for chunk in chunks], axis=1)
    masks = np.concatenate([chunk.masks for chunk in chunks], axis=1)
    assert images.shape == (CAMERAS, FRAMES, SIZE, SIZE, 3)
    np.testing.assert_array_equal(masks, truth["masks"].astype(bool))
    assert 0.02 < masks.mean() < 0.6
    params = [p for chunk in chunks for p in chunk.smpl]
    np.testing.assert_array_equal(np.stack([p["body_pose"] for p in params]), truth["body_pose"])
    np.testing.assert_array_equal(params[0]["betas"], truth["betas"])
    np.testing.assert_array_equal(np.stack([p["global_orient"] for p in params]), truth["global_orient"])
    transl = np.stack([pelvis_centred_transl(p, truth["rest_pelvis"]) for p in params])
    np.testing.assert_allclose(transl, truth["transl"], rtol=0, atol=1e-9)
    assert params[0]["body_model"] == record["body_model"]
    # ground-truth keypoints are the world keypoints projected by the cameras the reader returns
    for c, camera in enumerate(video.cameras.values()):
        inside = truth["keypoints2d"][c, ..., 2] > 0
        assert inside.mean() > 0.9
        np.testing.assert_allclose(camera.project(truth["coco17"])[inside], truth["keypoints2d"][c][inside][:, :2], atol=1e-6)


def test_release_smplx_record_is_read_as_is(capture_root, tmp_path):
    (ref,) = discover_mvhumannet(capture_root)
    video = read_mvhumannet_video(ref)
    poses = np.round(np.linspace(-0.5, 0.5, 87), 3)
    poses[:3] = 0.0
    record = [{"id": 0, "Rh": [[-1.217, 1.2, -1.242]], "Th": [[-0.028, -0.036, -1.307]], "poses": [poses.tolist()],
               "expression": [[0.0] * 10], "shapes": [[-0.333, 0.083, 0.077, -0.087, -0.034, -0.066, -0.002, 0.016, -0.005, 0.007]]}]
    path = video.smpl_path("0010")
    original = path.read_bytes()
    try:
        path.write_text(json.dumps(record))
        params = read_mvhumannet_smpl(video, "0010")
    finally:
        path.write_bytes(original)
    assert params["body_model"].startswith("SMPL-X")
    np.testing.assert_array_equal(params["body_pose"][:21], poses[3:66].reshape(21, 3))
    np.testing.assert_array_equal(params["body_pose"][21:], 0.0)
    np.testing.assert_array_equal(params["extra_pose"], poses[66:])
    np.testing.assert_array_equal(params["global_orient"], [-1.217, 1.2, -1.242])
    assert params["transl_about"] == "model origin"


def test_missing_camera_file_is_named(damaged):
    root, folder = damaged
    (folder / "camera_extrinsics.json").unlink()
    with pytest.raises(ScanReadError, match="camera_extrinsics.json"):
        read_mvhumannet_video(discover_mvhumannet(root)[0])


def test_camera_without_calibration_is_named(damaged):
    root, folder = damaged
    path = folder / "camera_extrinsics.json"
    extrinsics = json.loads(path.read_text())
    del extrinsics["1_CC32871A005.png"]
    path.write_text(json.dumps(extrinsics))
    with pytest.raises(ScanReadError, match="CC32871A005"):
        read_mvhumannet_video(discover_mvhumannet(root)[0])


def test_unreadable_image_is_named(damaged):
    root, folder = damaged
    bad = folder / "images_lr" / "CC32871A004" / "0015_img.jpg"
    bad.write_bytes(b"not a jpeg")
    video = read_mvhumannet_video(discover_mvhumannet(root)[0])
    with pytest.raises(ScanReadError, match="0015_img.jpg"):
        list(iter_mvhumannet_chunks(video, 2))


def test_missing_body_fit_is_named(damaged):
    root, folder = damaged
    (folder / "smplx" / "smpl" / "000002.json").unlink()
    video = read_mvhumannet_video(discover_mvhumannet(root)[0])
    with pytest.raises(ScanReadError, match="000002.json"):
        list(iter_mvhumannet_chunks(video, 4))


def test_cameras_with_different_frame_counts(damaged):
    root, folder = damaged
    (folder / "images_lr" / "CC32871A006" / "0020_img.jpg").unlink()
    ref = discover_mvhumannet(root)[0]
    with pytest.raises(ScanReadError, match="CC32871A"):
        read_mvhumannet_video(ref)
    assert read_mvhumannet_video(ref, allow_partial=True).ticks == ("0005", "0010", "0015")


def test_empty_root_is_refused(tmp_path):
    with pytest.raises(ScanReadError, match="no capture"):
        discover_mvhumannet(tmp_path)


def test_missing_mask_and_bad_camera_scale_are_named(damaged):
    root, folder = damaged
    (folder / "fmask_lr" / "CC32871A005" / "0010_img_fmask.png").unlink()
    video = read_mvhumannet_video(discover_mvhumannet(root)[0])
    with pytest.raises(ScanReadError, match="0010_img_fmask.png"):
        list(iter_mvhumannet_chunks(video, 4))
    (folder / "camera_scale.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ScanReadError, match="camera_scale.pkl"):
        read_mvhumannet_video(discover_mvhumannet(root)[0])


def test_chunks_of_chosen_cameras(capture_root):
    video = read_mvhumannet_video(discover_mvhumannet(capture_root)[0])
    (chunk,) = list(iter_mvhumannet_chunks(video, 8, cameras=["CC32871A006"]))
    assert chunk.images.shape == (1, FRAMES, SIZE, SIZE, 3) and chunk.ticks == video.ticks
    with pytest.raises(ValueError, match="cameras"):
        next(iter_mvhumannet_chunks(video, 2, cameras=["nope"]))
    with pytest.raises(ValueError, match="chunk_frames"):
        next(iter_mvhumannet_chunks(video, 0))
