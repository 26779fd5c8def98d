"""The raw monocular-video datasets (paper section 4.1.1): the TikTok dance release and video folders.

Two layouts are read, possibly mixed under one root:

* **Frame folders**, as the TikTok dataset is distributed (Jafarian & Park, "Learning high fidelity
  depths of dressed humans by watching social media dance videos", CVPR 2021)::

      <root>/TikTok_dataset/00001/images/0001.png, 0002.png, ...   (30 fps)
                                 /masks/0001.png, ...               (person masks)
                                 /densepose/0001.png, ...           (DensePose renderings, unused)

  ``<root>`` may be the folder holding ``TikTok_dataset`` or ``TikTok_dataset`` itself; any folder
  with an ``images/`` sub-folder is one sequence (``kind="frames"``), named by its folder.
* **Video files**: ``*.mp4``, ``*.mov``, ``*.mkv``, ``*.webm`` (also ``.avi``, ``.m4v``) anywhere
  under ``<root>`` (``kind="file"``), named by their path relative to ``<root>`` without suffix.

Both come out as :class:`VideoRef` in numeric order; :func:`iter_ref_frames` streams their frames as
``uint8 (H, W, 3)`` RGB, one frame in memory at a time (ffmpeg for files, one image read per frame
for folders). Bad input raises :class:`gas_core.videoio.VideoReadError` naming the file and the fix.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import cv2
import numpy as np

from gas_core.videoio import (
    VIDEO_SUFFIXES,
    VideoInfo,
    VideoReadError,
    iter_video_frames,
    output_size,
    probe_video,
)
from pipelines.datasets.common import numeric_first

__all__ = [
    "VideoRef",
    "VideoReadError",
    "TIKTOK_FPS",
    "TIKTOK_DIRNAME",
    "IMAGE_SUFFIXES",
    "discover_videos",
    "frame_paths",
    "video_info",
    "iter_ref_frames",
    "resampled_indices",
    "read_dataset_masks",
]

#: Frame rate of the TikTok release's image sequences.
TIKTOK_FPS = 30.0
#: The folder the TikTok release unpacks to.
TIKTOK_DIRNAME = "TikTok_dataset"
#: Frame image endings of frame folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class VideoRef:
    """Where one monocular video lives.

    Attributes:
        dataset: the dataset name given to :func:`discover_videos` (e.g. ``"tiktok"``, ``"internet"``).
        subject_id: the sequence folder's name (``"00001"``) or the file's path relative to the root
            without suffix (``"dance/clip_07"``).
        path: the sequence folder (holding ``images/``) or the video file.
        kind: ``"frames"`` for a frame folder, ``"file"`` for a video file.
    """

    dataset: str
    subject_id: str
    path: Path
    kind: Literal["frames", "file"]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    images = [
        entry for entry in folder.iterdir()
        if entry.is_file() and _visible(entry) and entry.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(images, key=lambda entry: numeric_first(entry.stem))


def frame_paths(ref: VideoRef) -> list[Path]:
    """The frame images of a ``kind="frames"`` ref, in frame order (``images/0001.png`` first).

    Raises:
        ValueError: ``ref`` is a video file.
        VideoReadError: the folder has no frame images.
    """
    if ref.kind != "frames":
        raise ValueError(f"ref must be a frame folder (kind 'frames'), got kind {ref.kind!r}")
    images = _image_files(ref.path / "images")
    if not images:
        raise VideoReadError(
            f"sequence folder {ref.path / 'images'} holds no {'/'.join(IMAGE_SUFFIXES)} frames; fix: "
            "restore the sequence from the release or remove the folder"
        )
    return images


def discover_videos(root: Path, dataset: str = "tiktok") -> list[VideoRef]:
    """All sequence folders (``kind="frames"``) and video files (``kind="file"``) under ``root``.

    Args:
        root: the dataset folder (the one holding ``TikTok_dataset``, ``TikTok_dataset`` itself, or
            a folder of video files, possibly nested).
        dataset: name recorded in every ref (letters, digits, ``_.-``).

    Returns:
        refs sorted by ``subject_id``, numeric ids first in numeric order. Hidden entries (names
        starting with ``.``, such as unfinished ``.tmp`` downloads) are skipped.

    Raises:
        ValueError: ``dataset`` is not a plain name.
        VideoReadError: ``root`` is missing, or holds neither sequence folders nor video files.
    """
    if not isinstance(dataset, str) or not _DATASET_NAME.match(dataset):
        raise ValueError(f"dataset must be a plain name (letters, digits, _.-), got {dataset!r}")
    root = Path(root)
    if not root.is_dir():
        raise VideoReadError(
            f"dataset root {root} not found; fix: pass the folder that holds {TIKTOK_DIRNAME}/<seq>/"
            "images/0001.png or the video files"
        )
    search_root = root / TIKTOK_DIRNAME if (root / TIKTOK_DIRNAME).is_dir() else root
    refs: list[VideoRef] = []
    for entry in search_root.iterdir():
        if entry.is_dir() and _visible(entry) and (entry / "images").is_dir():
            refs.append(VideoRef(dataset, entry.name, entry, "frames"))
    for folder, subfolders, files in os.walk(root):
        folder_path = Path(folder)
        # do not descend into hidden folders or sequence folders (thousands of frame images)
        subfolders[:] = [
            name for name in subfolders
            if not name.startswith(".") and not (folder_path / name / "images").is_dir()
        ]
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in VIDEO_SUFFIXES:
                continue
            entry = folder_path / name
            subject_id = entry.relative_to(root).with_suffix("").as_posix()
            refs.append(VideoRef(dataset, subject_id, entry, "file"))
    if not refs:
        raise VideoReadError(
            f"dataset root {root} holds no sequence folders (<seq>/images/*.png) and no video files "
            f"({', '.join(VIDEO_SUFFIXES)}); fix: check the path or unpack the dataset there"
        )
    return sorted(refs, key=lambda ref: (numeric_first(ref.subject_id), ref.kind))


def _read_image(path: Path, *, expected_shape: tuple[int, ...] | None) -> np.ndarray:
    """One frame image as ``uint8 (H, W, 3)`` RGB; VideoReadError naming it when unreadable/odd-sized."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoReadError(
            f"frame image {path} cannot be decoded (damaged or not an image); fix: restore it from the "
            "release or remove the sequence"
        )
    if expected_shape is not None and image.shape != expected_shape:
        raise VideoReadError(
            f"frame image {path} is {image.shape[1]}x{image.shape[0]} but the sequence's first frame is "
            f"{expected_shape[1]}x{expected_shape[0]}; fix: restore the frame from the release"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_frames_fps(frames_fps: float) -> None:
    if not math.isfinite(frames_fps) or frames_fps <= 0:
        raise ValueError(f"frames_fps must be a positive finite number, got {frames_fps!r}")


def video_info(ref: VideoRef, *, frames_fps: float = TIKTOK_FPS) -> VideoInfo:
    """Size, rate and length of ``ref``.

    Video files: their header (:func:`gas_core.videoio.probe_video`). Frame folders: size from the
    first image, count from the listing, rate ``frames_fps`` (frames per second; 30 for TikTok).
    """
    _check_frames_fps(frames_fps)
    if ref.kind == "file":
        return probe_video(ref.path)
    images = frame_paths(ref)
    first = _read_image(images[0], expected_shape=None)
    return VideoInfo(
        path=ref.path,
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        fps=float(frames_fps),
        num_frames=len(images),
        duration_s=len(images) / frames_fps,
        variable_frame_rate=False,
        codec=images[0].suffix.lower().lstrip("."),
    )


def resampled_indices(num_frames: int, source_fps: float, fps: float | None) -> list[int]:
    """Source frame index of each output frame when ``num_frames`` at ``source_fps`` are resampled.

    Output frame ``k`` (time ``k / fps`` seconds) shows the source frame on screen at that time,
    ``floor(k * source_fps / fps)``; frames repeat when ``fps > source_fps`` and are skipped when
    lower. ``fps=None`` keeps every frame.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be non-negative, got {num_frames}")
    _check_frames_fps(source_fps)
    if fps is None:
        return list(range(num_frames))
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number or None, got {fps!r}")
    count = math.ceil(num_frames * fps / source_fps - 1e-9)
    return [min(num_frames - 1, math.floor(k * source_fps / fps + 1e-9)) for k in range(count)]


def iter_ref_frames(
    ref: VideoRef,
    *,
    fps: float | None,
    max_side: int | None,
    size: tuple[int, int] | None = None,
    frames_fps: float = TIKTOK_FPS,
    start_frame: int = 0,
    max_frames: int | None = None,
    strict: bool = True,
) -> Iterator[np.ndarray]:
    """Frames of ``ref`` as ``uint8 (H, W, 3)`` RGB arrays, one in memory at a time.

    Args:
        ref: from :func:`discover_videos`.
        fps: output rate in frames per second (``None``: the source's own frames). Files are
            resampled by ffmpeg's ``fps`` filter, frame folders by index (:func:`resampled_indices`)
            from their rate ``frames_fps``.
        max_side: shrink so the longer side is at most this many pixels (``None``: source size).
        size: exact output ``(width, height)`` in pixels instead of ``max_side``.
        start_frame: skip this many output frames first.
        max_frames: stop after this many output frames.
        strict: for files, see :func:`gas_core.videoio.iter_video_frames` (frame images are always
            checked).

    Raises:
        VideoReadError: an unreadable file, or a frame image that is damaged or of another size than
            the first (raised when reached, after the frames before it).
    """
    if int(start_frame) != start_frame or start_frame < 0:
        raise ValueError(f"start_frame must be a non-negative integer, got {start_frame!r}")
    if max_frames is not None and (int(max_frames) != max_frames or max_frames < 0):
        raise ValueError(f"max_frames must be a non-negative integer or None, got {max_frames!r}")
    _check_frames_fps(frames_fps)
    if ref.kind == "file":
        return iter_video_frames(
            ref.path, fps=fps, max_side=max_side, size=size, start_frame=start_frame,
            max_frames=max_frames, strict=strict,
        )
    if ref.kind != "frames":
        raise ValueError(f"ref.kind must be 'frames' or 'file', got {ref.kind!r}")
    images = frame_paths(ref)
    indices = resampled_indices(len(images), frames_fps, fps)[int(start_frame):]
    if max_frames is not None:
        indices = indices[: int(max_frames)]
    first = _read_image(images[0], expected_shape=None)
    out_width, out_height = output_size(first.shape[1], first.shape[0], max_side=max_side, size=size)
    return _folder_frames(images, indices, first.shape[:2] + (3,), (out_width, out_height))


def _folder_frames(
    images: list[Path], indices: list[int], source_shape: tuple[int, ...], out_size: tuple[int, int]
) -> Iterator[np.ndarray]:
    last_index, last_frame = -1, None
    for index in indices:
        if index != last_index:
            frame = _read_image(images[index], expected_shape=source_shape)
            if (frame.shape[1], frame.shape[0]) != out_size:
                frame = cv2.resize(frame, out_size, interpolation=cv2.INTER_AREA)
            last_index, last_frame = index, frame
        yield last_frame.copy()


def read_dataset_masks(ref: VideoRef, index: int) -> np.ndarray | None:
    """The release's own person mask of source frame ``index`` as ``bool (H, W)``, or ``None``.

    For a TikTok sequence this is ``masks/<name>`` matching ``images/<name>`` (same stem, any image
    ending); ``None`` when the sequence has no ``masks/`` folder or no mask for that frame, and for
    video files. The pipeline makes its own masks; these serve only as an optional comparison.

    Raises:
        ValueError: ``index`` outside the sequence.
        VideoReadError: the mask image exists but cannot be decoded.
    """
    if ref.kind != "frames":
        return None
    images = frame_paths(ref)
    if int(index) != index or not 0 <= index < len(images):
        raise ValueError(f"index must be a frame index in [0, {len(images)}), got {index!r}")
    masks_folder = ref.path / "masks"
    if not masks_folder.is_dir():
        return None
    stem = images[int(index)].stem
    candidates = [masks_folder / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES]
    mask_path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if mask_path is None:
        return None
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise VideoReadError(
            f"mask image {mask_path} cannot be decoded; fix: restore it from the release or delete it"
        )
    threshold = 127 if int(mask.max()) > 1 else 0
    return mask > threshold
