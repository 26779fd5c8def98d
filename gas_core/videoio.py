"""Video files in and out through ffmpeg (ffmpeg-python builds the command lines).

* :func:`probe_video` reads a file's header (size, average frame rate, frame count, codec) with
  ffprobe; :func:`count_video_frames` decodes the stream to count its frames exactly.
* :func:`iter_video_frames` streams decoded ``uint8 (H, W, 3)`` RGB frames out of an ffmpeg pipe,
  one frame's bytes at a time, so memory stays flat whatever the video's length. It can resample to
  a constant frame rate (ffmpeg's ``fps`` filter), resize, skip and stop early; the ffmpeg process is
  always ended, also when the consumer stops iterating.
* :func:`write_mp4` encodes RGB frames to H.264 ``yuv420p`` MP4, streaming them into ffmpeg's stdin
  and publishing the file atomically (temporary name, then rename).

Bad or unreadable input raises :class:`VideoReadError` (a ``ValueError``) whose message names the
file, the reason and what to do; such errors are never retried. Bad arguments raise ``ValueError``
naming the argument.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Iterable, Iterator

import ffmpeg
import numpy as np

__all__ = [
    "VideoReadError",
    "VideoInfo",
    "probe_video",
    "count_video_frames",
    "iter_video_frames",
    "output_size",
    "write_mp4",
    "VIDEO_SUFFIXES",
]

#: File name endings treated as video files by discovery code.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

_LOGGER = logging.getLogger(__name__)

#: How much of ffmpeg's stderr is quoted in an error message.
_STDERR_TAIL_CHARS = 1200


class VideoReadError(ValueError):
    """A video (or frame image) cannot be read; the message names the file, the reason and the fix.

    Bad input is not retried: the file has to be re-downloaded, re-encoded or removed first.
    """


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says about its video stream.

    Attributes:
        path: the file (or frame folder).
        width, height: displayed frame size in pixels (rotation metadata already applied, as the
            decoder outputs it).
        fps: average frame rate in frames per second (frames / duration).
        num_frames: frame count from the header, ``None`` when the container does not store it
            (e.g. Matroska/WebM); :func:`count_video_frames` gives the exact decoded count.
        duration_s: stream duration in seconds.
        variable_frame_rate: ``True`` when the average rate differs from the stream's base rate
            (ffprobe's ``avg_frame_rate`` vs ``r_frame_rate``, 1 % tolerance): a header heuristic.
        codec: ffprobe's codec name (``"h264"``, ``"vp9"``, ``"png"`` for frame folders, ...).
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int | None
    duration_s: float
    variable_frame_rate: bool
    codec: str


def _stderr_tail(stderr: bytes | str | None) -> str:
    if stderr is None:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    text = text.strip()
    if len(text) > _STDERR_TAIL_CHARS:
        text = "..." + text[-_STDERR_TAIL_CHARS:]
    return text


def _require_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(
            f"video file {path} does not exist or is not a file; fix: check the path (and that the "
            "download finished)"
        )
    return path


def _rate(text: str | None) -> float:
    """ffprobe's ``"30000/1001"`` as a float; 0.0 when missing or ``0/0``."""
    if not text:
        return 0.0
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def _rotation_degrees(stream: dict) -> int:
    """Rotation from the display matrix side data or the legacy ``rotate`` tag (0 when none)."""
    for side_data in stream.get("side_data_list", []) or []:
        if "rotation" in side_data:
            try:
                return int(round(float(side_data["rotation"])))
            except (TypeError, ValueError):
                return 0
    rotate_tag = (stream.get("tags") or {}).get("rotate")
    if rotate_tag is not None:
        try:
            return int(round(float(rotate_tag)))
        except ValueError:
            return 0
    return 0


def _run_probe(path: Path, **options) -> dict:
    try:
        return ffmpeg.probe(str(path), v="error", hide_banner=None, **options)
    except ffmpeg.Error as error:
        raise VideoReadError(
            f"video file {path} cannot be read by ffprobe: {_stderr_tail(error.stderr) or 'no details'}; "
            "fix: re-download or re-encode the file (e.g. `ffmpeg -i in -c:v libx264 out.mp4`), or "
            "remove it"
        ) from error


def _video_stream(path: Path, probe: dict) -> dict:
    for stream in probe.get("streams", []):
        if stream.get("codec_type") != "video":
            continue
        if (stream.get("disposition") or {}).get("attached_pic"):
            continue  # cover art, not the video
        return stream
    raise VideoReadError(
        f"file {path} has no video stream (streams: "
        f"{[s.get('codec_type') for s in probe.get('streams', [])]}): not a video, or truncated; "
        "fix: pass a video file, or re-download it"
    )


def probe_video(path: Path | str) -> VideoInfo:
    """Header facts of ``path``'s first video stream (cover art skipped; no decoding).

    Raises:
        VideoReadError: the file is missing, not a media file, or has no video stream.
    """
    return _probe_with_index(path)[0]


def _probe_with_index(path: Path | str) -> tuple[VideoInfo, int]:
    """:func:`probe_video` and the container's index of the stream it describes."""
    path = _require_file(Path(path))
    probe = _run_probe(path)
    stream = _video_stream(path, probe)
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise VideoReadError(
            f"video file {path} reports no frame size (width={width}, height={height}); fix: "
            "re-encode the file"
        )
    if abs(_rotation_degrees(stream)) % 180 == 90:
        width, height = height, width
    average_fps = _rate(stream.get("avg_frame_rate"))
    base_fps = _rate(stream.get("r_frame_rate"))
    duration_text = stream.get("duration") or (probe.get("format") or {}).get("duration")
    duration_s = float(duration_text) if duration_text not in (None, "N/A") else 0.0
    num_frames_text = stream.get("nb_frames")
    num_frames = int(num_frames_text) if num_frames_text not in (None, "N/A", "") else None
    if average_fps <= 0.0:
        if num_frames and duration_s > 0:
            average_fps = num_frames / duration_s
        else:
            average_fps = base_fps
    variable = bool(
        average_fps > 0 and base_fps > 0 and abs(average_fps - base_fps) > 0.01 * base_fps
    )
    info = VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=average_fps,
        num_frames=num_frames,
        duration_s=duration_s,
        variable_frame_rate=variable,
        codec=str(stream.get("codec_name", "unknown")),
    )
    return info, int(stream.get("index", 0))


def count_video_frames(path: Path | str) -> int:
    """Exact number of frames of the first video stream, by decoding it (``ffprobe -count_frames``).

    Costs a full decode; :attr:`VideoInfo.num_frames` is the header's (free, sometimes missing) value.
    """
    path = _require_file(Path(path))
    _, stream_index = _probe_with_index(path)
    probe = _run_probe(path, count_frames=None, select_streams=str(stream_index))
    stream = _video_stream(path, probe)
    count_text = stream.get("nb_read_frames")
    if count_text in (None, "N/A", ""):
        raise VideoReadError(
            f"ffprobe could not count the frames of {path}; fix: re-encode the file"
        )
    return int(count_text)


def output_size(
    width: int, height: int, *, max_side: int | None = None, size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Decoded frame size ``(width, height)`` in pixels for a ``width x height`` source.

    ``size``: exact ``(width, height)``; ``max_side``: shrink (never enlarge) so the longer side is at
    most ``max_side`` pixels, keeping the aspect ratio; neither: the source size.
    """
    if size is not None and max_side is not None:
        raise ValueError("pass at most one of size and max_side")
    if size is not None:
        if len(size) != 2 or any(int(side) != side or side <= 0 for side in size):
            raise ValueError(f"size must be (width, height) positive integers, got {size!r}")
        return int(size[0]), int(size[1])
    if max_side is not None:
        if int(max_side) != max_side or max_side <= 0:
            raise ValueError(f"max_side must be a positive integer, got {max_side!r}")
        longest = max(width, height)
        if longest <= max_side:
            return width, height
        scale = max_side / longest
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def _read_exactly(stream: IO[bytes], buffer: bytearray) -> int:
    """Fill ``buffer`` from ``stream``; returns how many bytes were read (less only at end of stream)."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _end_process(process: subprocess.Popen) -> None:
    """Stop ``process`` (if still running) and reap it; closes its pipes."""
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    if process.poll() is None:
        process.kill()
    process.wait()


def iter_video_frames(
    path: Path | str,
    *,
    fps: float | None = None,
    max_side: int | None = None,
    size: tuple[int, int] | None = None,
    start_frame: int = 0,
    max_frames: int | None = None,
    strict: bool = True,
) -> Iterator[np.ndarray]:
    """Decoded frames of ``path`` as ``uint8 (H, W, 3)`` RGB arrays, streamed from an ffmpeg pipe.

    Args:
        path: a video file ffmpeg can read.
        fps: resample to this constant rate (frames per second) with ffmpeg's ``fps`` filter
            (variable-frame-rate input comes out at a fixed rate); ``None`` yields every decoded
            frame once, in order (no duplication or dropping).
        max_side: shrink so the longer side is at most this many pixels (aspect kept).
        size: exact output ``(width, height)`` in pixels (not with ``max_side``).
        start_frame: skip this many frames of the (resampled) stream first.
        max_frames: stop after this many frames.
        strict: treat any error ffmpeg logs while decoding as a corrupt file (the default). With
            ``False`` only a failing exit status, a cut frame or no frames raise; logged decoding
            errors (e.g. a clip cut before its first keyframe) become a ``logging`` warning.

    Only one frame is held in memory at a time. Frames share no memory with each other.

    Raises:
        VideoReadError: the file is missing/unreadable, ffmpeg reports a decoding error or exits with
            an error (truncated or corrupt file), or it yields no frame at all (with
            ``start_frame == 0``). Errors found at the end come after the frames already decoded.
        ValueError: bad arguments (named in the message).
    """
    path = Path(path)
    if fps is not None and (not math.isfinite(fps) or fps <= 0):
        raise ValueError(f"fps must be a positive finite number or None, got {fps!r}")
    if int(start_frame) != start_frame or start_frame < 0:
        raise ValueError(f"start_frame must be a non-negative integer, got {start_frame!r}")
    if max_frames is not None and (int(max_frames) != max_frames or max_frames < 0):
        raise ValueError(f"max_frames must be a non-negative integer or None, got {max_frames!r}")
    info, stream_index = _probe_with_index(path)
    out_width, out_height = output_size(info.width, info.height, max_side=max_side, size=size)
    return _stream_frames(
        info, stream_index=stream_index, fps=fps, out_width=out_width, out_height=out_height,
        start_frame=int(start_frame), max_frames=None if max_frames is None else int(max_frames),
        strict=bool(strict),
    )


def _decode_command(
    path: Path, *, stream_index: int, fps: float | None, out_width: int, out_height: int,
    source_size: tuple[int, int], start_frame: int, max_frames: int | None,
) -> list[str]:
    stream = ffmpeg.input(str(path))[str(stream_index)]
    if fps is not None:
        stream = stream.filter("fps", fps=str(Fraction(float(fps)).limit_denominator(100000)))
    if start_frame > 0:
        stream = stream.filter("trim", start_frame=start_frame).filter("setpts", "PTS-STARTPTS")
    if (out_width, out_height) != source_size:
        stream = stream.filter("scale", out_width, out_height, flags="area")
    # passthrough: every decoded frame once; the demuxer's time base keeps variable-rate timestamps
    # distinct for the raw muxer (the default 1/rate base collides and makes ffmpeg complain)
    output_options: dict = {
        "format": "rawvideo", "pix_fmt": "rgb24", "fps_mode": "passthrough", "enc_time_base": "-1",
    }
    if max_frames is not None:
        output_options["frames:v"] = max_frames
    command = ffmpeg.output(stream, "pipe:", **output_options).global_args(
        "-nostdin", "-hide_banner", "-loglevel", "error"
    )
    return command.compile()


def _stream_frames(
    info: VideoInfo, *, stream_index: int, fps: float | None, out_width: int, out_height: int,
    start_frame: int, max_frames: int | None, strict: bool,
) -> Iterator[np.ndarray]:
    if max_frames == 0:
        return
    command = _decode_command(
        info.path, stream_index=stream_index, fps=fps, out_width=out_width, out_height=out_height,
        source_size=(info.width, info.height), start_frame=start_frame, max_frames=max_frames,
    )
    frame_bytes = out_width * out_height * 3
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file,
            bufsize=0,
        )
        finished = False
        try:
            yielded = 0
            while True:
                buffer = bytearray(frame_bytes)
                filled = _read_exactly(process.stdout, buffer)
                if filled == 0:
                    break
                if filled < frame_bytes:
                    process.wait()
                    raise VideoReadError(
                        f"video file {info.path} ended inside a frame ({filled} of {frame_bytes} "
                        "bytes); fix: re-download or re-encode the file"
                    )
                yield np.frombuffer(buffer, dtype=np.uint8).reshape(out_height, out_width, 3)
                yielded += 1
            return_code = process.wait()
            finished = True
            stderr_file.seek(0)
            stderr_text = _stderr_tail(stderr_file.read())
            if return_code != 0 or (stderr_text and strict):
                raise VideoReadError(
                    f"video file {info.path} is truncated or corrupt (ffmpeg exit status "
                    f"{return_code} after {yielded} frames: {stderr_text or 'no details'}); fix: "
                    "re-download or re-encode the file, or remove it (or read it with strict=False "
                    "to accept frames ffmpeg decoded despite errors)"
                )
            if stderr_text:
                _LOGGER.warning(
                    "ffmpeg reported errors decoding %s (%d frames read, strict=False): %s",
                    info.path, yielded, stderr_text,
                )
            if yielded == 0 and start_frame == 0:
                raise VideoReadError(
                    f"video file {info.path} decodes to no frames; fix: re-download or re-encode "
                    "the file, or remove it"
                )
        finally:
            if not finished:
                _end_process(process)
            elif process.stdout is not None:
                process.stdout.close()


def _frame_iterator(frames: Iterable[np.ndarray] | np.ndarray) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(
                f"frames as one array must be (T, H, W, 3) uint8, got shape {frames.shape}"
            )
    return iter(frames)


def _check_frame(frame: np.ndarray, index: int, shape: tuple[int, ...] | None) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"frames[{index}] must be a uint8 (H, W, 3) RGB array, got dtype {frame.dtype} shape "
            f"{frame.shape}"
        )
    if shape is not None and frame.shape != shape:
        raise ValueError(
            f"frames[{index}] has shape {frame.shape} but frames[0] has {shape}; all frames must "
            "share one size"
        )
    return np.ascontiguousarray(frame)


def write_mp4(
    frames: Iterable[np.ndarray] | np.ndarray, path: Path | str, fps: float, *, crf: int = 18
) -> Path:
    """Encode ``frames`` to an H.264 ``yuv420p`` MP4 at ``path``; returns ``path``.

    Args:
        frames: ``uint8 (H, W, 3)`` RGB frames, all one size (an iterable, streamed, or a
            ``(T, H, W, 3)`` array). Odd sizes are padded by one black row/column to even ones.
        path: the output file (parents created); written under a temporary name, then renamed.
        fps: constant frame rate in frames per second.
        crf: x264 constant rate factor (0 lossless ... 51 worst; 18 is visually near lossless).

    Raises:
        ValueError: no frames, a frame of the wrong dtype/shape/size, or bad ``fps``/``crf``.
        RuntimeError: ffmpeg failed to encode (its stderr quoted).
    """
    path = Path(path)
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if isinstance(crf, bool) or int(crf) != crf or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an integer in [0, 51], got {crf!r}")
    iterator = _frame_iterator(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("frames is empty; write_mp4 needs at least one frame")
    first = _check_frame(first, 0, None)
    height, width = first.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    rate = str(Fraction(float(fps)).limit_denominator(100000))
    command = (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=rate)
        .output(
            str(temporary), format="mp4", vcodec="libx264", pix_fmt="yuv420p", crf=int(crf),
            vf="pad=ceil(iw/2)*2:ceil(ih/2)*2", movflags="+faststart", r=rate,
        )
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .overwrite_output()
        .compile()
    )
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr_file
        )
        try:
            try:
                process.stdin.write(first.tobytes())
                for index, frame in enumerate(iterator, start=1):
                    process.stdin.write(_check_frame(frame, index, first.shape).tobytes())
                process.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg died; its exit status and stderr say why below
            return_code = process.wait()
            if return_code != 0:
                stderr_file.seek(0)
                raise RuntimeError(
                    f"ffmpeg failed to write {path} (exit status {return_code}): "
                    f"{_stderr_tail(stderr_file.read()) or 'no details'}"
                )
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            _end_process(process)
            temporary.unlink(missing_ok=True)
            raise
    return path
