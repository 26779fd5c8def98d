"""Tests of gas_core.videoio on small synthetic videos made here (moving coloured squares)."""

from __future__ import annotations

import gc
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gas_core import videoio
from gas_core.videoio import (
    VideoReadError,
    count_video_frames,
    iter_video_frames,
    output_size,
    probe_video,
    write_mp4,
)


def moving_square_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8: a red square moving right over a dark blue background."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 2] = 60
    side = max(4, height // 4)
    for index in range(num_frames):
        left = (index * 3) % (width - side)
        frames[index, 8 : 8 + side, left : left + side] = (230, 20, 20)
    return frames


@pytest.fixture(scope="module")
def square_video(tmp_path_factory) -> Path:
    """30 frames, 64 x 48, 10 fps."""
    return write_mp4(moving_square_frames(30), tmp_path_factory.mktemp("video") / "square.mp4", 10.0)


# ----------------------------------------------------------------------------------------- write_mp4


def test_write_mp4_round_trip_keeps_count_size_rate_and_content(square_video: Path) -> None:
    info = probe_video(square_video)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(10.0)
    assert info.codec == "h264"
    assert not info.variable_frame_rate
    assert count_video_frames(square_video) == 30
    decoded = np.stack(list(iter_video_frames(square_video)))
    expected = moving_square_frames(30)
    assert decoded.shape == expected.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 3.0
    # the square moves: the decoded frames follow it, frame by frame
    for index in (0, 7, 29):
        red = decoded[index, ..., 0] > 128
        columns = np.nonzero(red.any(axis=0))[0]
        assert columns.min() == pytest.approx((index * 3) % (64 - 12), abs=1)


def test_write_mp4_pads_odd_sizes_and_accepts_generators(tmp_path: Path) -> None:
    frames = (frame for frame in moving_square_frames(5, height=33, width=47))
    path = write_mp4(frames, tmp_path / "nested" / "odd.mp4", 25)
    info = probe_video(path)
    assert (info.width, info.height) == (48, 34)
    assert count_video_frames(path) == 5
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("frames", "fps", "crf", "named"),
    [
        (np.zeros((0, 8, 8, 3), np.uint8), 10, 18, "frames"),
        (np.zeros((2, 8, 8, 3), np.float32), 10, 18, "frames"),
        (np.zeros((2, 8, 8), np.uint8), 10, 18, "frames"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], 10, 18, "frames[1]"),
        (np.zeros((2, 8, 8, 3), np.uint8), 0, 18, "fps"),
        (np.zeros((2, 8, 8, 3), np.uint8), float("nan"), 18, "fps"),
        (np.zeros((2, 8, 8, 3), np.uint8), 10, 60, "crf"),
    ],
)
def test_write_mp4_rejects_bad_arguments_and_leaves_no_file(
    tmp_path: Path, frames, fps, crf, named: str
) -> None:
    target = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        write_mp4(frames, target, fps, crf=crf)
    assert list(tmp_path.iterdir()) == []


def test_write_mp4_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    write_mp4(moving_square_frames(4), target, 10)
    write_mp4(moving_square_frames(9), target, 10)
    assert count_video_frames(target) == 9


# ------------------------------------------------------------------------------ probe and frame counts


def _ffmpeg(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *arguments], check=True)


@pytest.fixture(scope="module")
def variable_rate_video(tmp_path_factory) -> Path:
    """40 distinct frames: the first 10 at 10 fps (1 s), the next 30 at 15 fps (2 s): a VFR file."""
    folder = tmp_path_factory.mktemp("vfr")
    constant = write_mp4(moving_square_frames(40), folder / "constant.mp4", 30)
    target = folder / "vfr.mp4"
    _ffmpeg(
        "-i", str(constant), "-vf", "setpts='if(lt(N,10),N/10,1+(N-10)/15)/TB'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-video_track_timescale", "90000", str(target),
    )
    return target


def test_probe_flags_variable_frame_rate_and_count_is_exact(variable_rate_video: Path) -> None:
    info = probe_video(variable_rate_video)
    assert info.variable_frame_rate
    assert info.duration_s == pytest.approx(3.0, abs=0.1)
    assert info.fps == pytest.approx(40 / 3.0, rel=0.05)
    assert count_video_frames(variable_rate_video) == 40
    # without fps every decoded frame comes out once (no duplicates at the 10 fps part)
    assert sum(1 for _ in iter_video_frames(variable_rate_video)) == 40


def test_matroska_has_no_header_count_but_decodes(square_video: Path, tmp_path: Path) -> None:
    target = tmp_path / "square.mkv"
    _ffmpeg("-i", str(square_video), "-c", "copy", str(target))
    info = probe_video(target)
    assert info.num_frames is None
    assert count_video_frames(target) == 30
    assert sum(1 for _ in iter_video_frames(target)) == 30


def test_rotated_phone_video_reports_and_decodes_the_displayed_size(square_video: Path, tmp_path: Path) -> None:
    target = tmp_path / "portrait.mp4"
    _ffmpeg("-i", str(square_video), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(target))
    info = probe_video(target)
    assert (info.width, info.height) == (48, 64)
    assert next(iter_video_frames(target)).shape == (64, 48, 3)
    assert next(iter_video_frames(target, max_side=32)).shape == (32, 24, 3)


# ------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(("fps", "expected"), [(5.0, 15), (10.0, 30), (20.0, 60)])
def test_fps_resampling_gives_duration_times_rate(square_video: Path, fps: float, expected: int) -> None:
    assert sum(1 for _ in iter_video_frames(square_video, fps=fps)) == expected


def test_fps_resampling_makes_variable_rate_constant(variable_rate_video: Path) -> None:
    frames = list(iter_video_frames(variable_rate_video, fps=30.0))
    assert abs(len(frames) - 90) <= 1
    # first second was 10 fps: each source frame is repeated three times at 30 fps
    assert np.array_equal(frames[0], frames[1]) and np.array_equal(frames[1], frames[2])
    assert not np.array_equal(frames[2], frames[3])


def test_size_control(square_video: Path) -> None:
    shrunk = next(iter_video_frames(square_video, max_side=32))
    assert shrunk.shape == (24, 32, 3) and shrunk.dtype == np.uint8
    exact = next(iter_video_frames(square_video, size=(20, 10)))
    assert exact.shape == (10, 20, 3)
    not_enlarged = next(iter_video_frames(square_video, max_side=512))
    assert not_enlarged.shape == (48, 64, 3)
    assert output_size(1920, 1080, max_side=512) == (512, 288)
    with pytest.raises(ValueError, match="size"):
        output_size(64, 48, size=(0, 10))
    with pytest.raises(ValueError, match="max_side"):
        next(iter_video_frames(square_video, max_side=-1))


def test_start_and_max_frames_select_a_window(square_video: Path) -> None:
    everything = list(iter_video_frames(square_video))
    window = list(iter_video_frames(square_video, start_frame=12, max_frames=5))
    assert len(window) == 5
    for got, expected in zip(window, everything[12:17]):
        assert np.array_equal(got, expected)
    assert list(iter_video_frames(square_video, start_frame=100)) == []
    assert list(iter_video_frames(square_video, max_frames=0)) == []
    with pytest.raises(ValueError, match="start_frame"):
        iter_video_frames(square_video, start_frame=-1)
    with pytest.raises(ValueError, match="fps"):
        iter_video_frames(square_video, fps=0.0)


def test_frames_are_independent_arrays(square_video: Path) -> None:
    first, second = list(iter_video_frames(square_video, max_frames=2))
    first[:] = 0
    assert second.any()


def test_early_stop_ends_the_ffmpeg_process(square_video: Path, monkeypatch) -> None:
    started: list[subprocess.Popen] = []
    original_popen = subprocess.Popen

    class RecordingPopen(original_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *arguments, **options) -> None:
            super().__init__(*arguments, **options)
            if Path(self.args[0]).name == "ffmpeg":  # the decoder, not ffprobe
                started.append(self)

    monkeypatch.setattr(videoio.subprocess, "Popen", RecordingPopen)
    frames = iter_video_frames(square_video)
    assert next(frames).shape == (48, 64, 3)
    assert len(started) == 1
    assert started[0].poll() is None  # 30 frames do not fit the pipe: ffmpeg waits for the reader
    frames.close()
    assert started[0].returncode is not None
    assert started[0].stdout.closed

    for index, _frame in enumerate(iter_video_frames(square_video)):
        if index == 3:
            break
    # the abandoned generator is finalised when collected
    gc.collect()
    assert len(started) == 2 and started[1].returncode is not None


# ------------------------------------------------------------------------------------------ errors


def test_missing_and_non_video_files_raise_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoReadError, match="missing.mp4"):
        probe_video(missing)
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("not a video at all")
    for call in (probe_video, count_video_frames, lambda p: next(iter_video_frames(p))):
        with pytest.raises(VideoReadError, match="notes.mp4") as caught:
            call(text_file)
        assert "fix:" in str(caught.value)
    image_only = tmp_path / "audio.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=0.2",
         str(image_only)],
        check=True,
    )
    with pytest.raises(VideoReadError, match="no video stream"):
        probe_video(image_only)
    assert isinstance(VideoReadError("x"), ValueError)


def test_truncated_file_raises_after_the_good_frames(tmp_path: Path, caplog) -> None:
    source = write_mp4(moving_square_frames(120, height=96, width=128), tmp_path / "full.mp4", 30)
    data = source.read_bytes()
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.7)])
    decoded = 0
    with pytest.raises(VideoReadError, match="cut.mp4") as caught:
        for _frame in iter_video_frames(truncated):
            decoded += 1
    assert 0 < decoded < 120
    assert "truncated or corrupt" in str(caught.value)
    # strict=False accepts what ffmpeg decoded (it exits 0 here) and logs the errors instead
    with caplog.at_level("WARNING", logger="gas_core.videoio"):
        lenient = sum(1 for _ in iter_video_frames(truncated, strict=False))
    assert lenient == decoded
    assert "cut.mp4" in caplog.text
    header_only = tmp_path / "header.mp4"
    header_only.write_bytes(data[:300])
    with pytest.raises(VideoReadError, match="header.mp4"):
        list(iter_video_frames(header_only))
