"""Tests of the monocular-video dataset readers on small TikTok-style folders and video files made here."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gas_core.videoio import VideoReadError, count_video_frames, write_mp4
from pipelines.datasets.tiktok import (
    VideoRef,
    discover_videos,
    frame_paths,
    iter_ref_frames,
    read_dataset_masks,
    resampled_indices,
    video_info,
)


def square_frame(index: int, height: int = 40, width: int = 30) -> np.ndarray:
    """uint8 (H, W, 3) RGB: a green square whose row follows ``index`` (so frames are tellable apart)."""
    frame = np.full((height, width, 3), 20, np.uint8)
    top = (index * 2) % (height - 8)
    frame[top : top + 8, 4:12] = (30, 220, 40)
    return frame


def square_row(frame: np.ndarray) -> int:
    return int(np.nonzero((frame[..., 1] > 128).any(axis=1))[0].min())


def write_sequence(folder: Path, num_frames: int, *, masks: bool = True) -> None:
    (folder / "images").mkdir(parents=True)
    if masks:
        (folder / "masks").mkdir()
    (folder / "densepose").mkdir()
    for index in range(num_frames):
        name = f"{index + 1:04d}.png"
        frame = square_frame(index)
        cv2.imwrite(str(folder / "images" / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if masks:
            cv2.imwrite(str(folder / "masks" / name), ((frame[..., 1] > 128) * 255).astype(np.uint8))


@pytest.fixture()
def tiktok_root(tmp_path: Path) -> Path:
    """<root>/TikTok_dataset/{00002, 00010, 00001}/images + a folder of internet videos next to it."""
    release = tmp_path / "TikTok_dataset"
    write_sequence(release / "00010", 6)
    write_sequence(release / "00002", 12)
    write_sequence(release / "00001", 3, masks=False)
    (release / "00003_broken").mkdir(parents=True)  # no images/ folder: not a sequence
    videos = tmp_path / "internet" / "dance"
    write_mp4([square_frame(index) for index in range(8)], videos / "clip_b.mp4", 25)
    write_mp4([square_frame(index) for index in range(5)], videos / "clip_a.mov", 25)
    (videos / ".clip_c.mp4.123.tmp").write_bytes(b"unfinished")
    (videos / "notes.txt").write_text("not a video")
    return tmp_path


def test_discover_finds_sequences_and_files_in_numeric_order(tiktok_root: Path) -> None:
    refs = discover_videos(tiktok_root)
    assert [(ref.subject_id, ref.kind) for ref in refs] == [
        ("00001", "frames"), ("00002", "frames"), ("00010", "frames"),
        ("internet/dance/clip_a", "file"), ("internet/dance/clip_b", "file"),
    ]
    assert all(ref.dataset == "tiktok" for ref in refs)
    # the release folder itself works as the root too, with a custom dataset name
    inner = discover_videos(tiktok_root / "TikTok_dataset", dataset="tiktok_test")
    assert [ref.subject_id for ref in inner] == ["00001", "00002", "00010"]
    assert inner[0].dataset == "tiktok_test"
    only_files = discover_videos(tiktok_root / "internet", dataset="internet")
    assert [ref.path.name for ref in only_files] == ["clip_a.mov", "clip_b.mp4"]


def test_discover_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="not found") as caught:
        discover_videos(tmp_path / "nowhere")
    assert "nowhere" in str(caught.value) and isinstance(caught.value, ValueError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoReadError, match="no sequence folders"):
        discover_videos(tmp_path / "empty")
    with pytest.raises(ValueError, match="dataset"):
        discover_videos(tmp_path, dataset="../bad")


def test_video_info_for_folders_and_files(tiktok_root: Path) -> None:
    refs = {ref.subject_id: ref for ref in discover_videos(tiktok_root)}
    folder = video_info(refs["00002"])
    assert (folder.width, folder.height, folder.num_frames) == (30, 40, 12)
    assert folder.fps == 30.0 and folder.duration_s == pytest.approx(12 / 30)
    assert folder.codec == "png" and not folder.variable_frame_rate
    assert video_info(refs["00002"], frames_fps=24.0).duration_s == pytest.approx(12 / 24)
    file_info = video_info(refs["internet/dance/clip_b"])
    # 30 x 40 is even already: no padding
    assert (file_info.width, file_info.height, file_info.fps) == (30, 40, 25.0)
    assert file_info.codec == "h264"


def test_folder_frames_in_order_resampled_and_resized(tiktok_root: Path) -> None:
    ref = next(ref for ref in discover_videos(tiktok_root) if ref.subject_id == "00002")
    frames = list(iter_ref_frames(ref, fps=None, max_side=None))
    assert len(frames) == 12 and frames[0].dtype == np.uint8 and frames[0].shape == (40, 30, 3)
    assert [square_row(frame) for frame in frames] == [square_row(square_frame(i)) for i in range(12)]
    # 30 -> 10 fps keeps every third frame; 30 -> 60 fps shows each twice
    tenth = list(iter_ref_frames(ref, fps=10.0, max_side=None))
    assert [square_row(frame) for frame in tenth] == [square_row(square_frame(i)) for i in (0, 3, 6, 9)]
    assert len(list(iter_ref_frames(ref, fps=60.0, max_side=None))) == 24
    small = list(iter_ref_frames(ref, fps=None, max_side=20, start_frame=10))
    assert len(small) == 2 and small[0].shape == (20, 15, 3)
    exact = next(iter_ref_frames(ref, fps=None, max_side=None, size=(16, 16)))
    assert exact.shape == (16, 16, 3)
    assert len(list(iter_ref_frames(ref, fps=15.0, max_side=None, max_frames=2))) == 2


def test_file_refs_stream_through_ffmpeg(tiktok_root: Path) -> None:
    ref = next(ref for ref in discover_videos(tiktok_root) if ref.kind == "file" and ref.path.suffix == ".mp4")
    frames = list(iter_ref_frames(ref, fps=None, max_side=None))
    assert len(frames) == count_video_frames(ref.path) == 8
    assert [square_row(frame) for frame in frames] == [square_row(square_frame(i)) for i in range(8)]
    assert len(list(iter_ref_frames(ref, fps=50.0, max_side=16))) == 16


def test_resampled_indices() -> None:
    assert resampled_indices(6, 30.0, None) == [0, 1, 2, 3, 4, 5]
    assert resampled_indices(6, 30.0, 15.0) == [0, 2, 4]
    assert resampled_indices(3, 10.0, 30.0) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert resampled_indices(10, 30.0, 7.0) == [0, 4, 8]
    assert resampled_indices(0, 30.0, 10.0) == []
    with pytest.raises(ValueError, match="fps"):
        resampled_indices(5, 30.0, -1.0)


def test_corrupt_and_odd_sized_frames_are_named(tiktok_root: Path) -> None:
    refs = {ref.subject_id: ref for ref in discover_videos(tiktok_root)}
    sequence = refs["00010"]
    (sequence.path / "images" / "0004.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    frames = iter_ref_frames(sequence, fps=None, max_side=None)
    good = [next(frames) for _ in range(3)]
    assert len(good) == 3
    with pytest.raises(VideoReadError, match="0004.png"):
        next(frames)
    other = refs["00002"]
    cv2.imwrite(str(other.path / "images" / "0005.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(VideoReadError, match="0005.png.*10x10"):
        list(iter_ref_frames(other, fps=None, max_side=None))
    empty = VideoRef("tiktok", "00099", tiktok_root / "TikTok_dataset" / "00003_broken", "frames")
    (empty.path / "images").mkdir()
    with pytest.raises(VideoReadError, match="no .*frames"):
        frame_paths(empty)


def test_dataset_masks(tiktok_root: Path) -> None:
    refs = {ref.subject_id: ref for ref in discover_videos(tiktok_root)}
    mask = read_dataset_masks(refs["00002"], 5)
    assert mask is not None and mask.dtype == bool and mask.shape == (40, 30)
    expected = square_frame(5)[..., 1] > 128
    assert np.array_equal(mask, expected)
    assert read_dataset_masks(refs["00001"], 0) is None  # sequence without masks/
    assert read_dataset_masks(refs["internet/dance/clip_b"], 0) is None
    (refs["00002"].path / "masks" / "0007.png").unlink()
    assert read_dataset_masks(refs["00002"], 6) is None
    (refs["00002"].path / "masks" / "0008.png").write_bytes(b"broken")
    with pytest.raises(VideoReadError, match="0008.png"):
        read_dataset_masks(refs["00002"], 7)
    with pytest.raises(ValueError, match="index"):
        read_dataset_masks(refs["00002"], 12)
