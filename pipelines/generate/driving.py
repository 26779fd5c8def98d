"""Driving videos of pose mode: recognised, checked, and turned into a pose-sequence NPZ (preprocessed as tiktok)."""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gas_core.fileio import atomic_write_bytes
from gas_core.videoio import VIDEO_SUFFIXES
from pipelines.datasets.errors import ScanReadError
from pipelines.generate.config import GenerateConfig
from pipelines.generate.files import GenerateInputError
from pipelines.preprocess import VideoConfig
from shards.manifest import load_manifest
from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.schema import VIDEO_SCHEMA, SchemaError, decode_video

logger = logging.getLogger(__name__)


def is_driving_video(path: str | Path) -> bool:
    """True for a driving video rather than a pose file: a video file, a TikTok-style frame folder (with
    ``images/``) or video shards (a folder whose manifest holds ``video`` samples, or a ``.tar``)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES or path.suffix == ".tar"
    if path.is_dir():
        if (path / "images").is_dir():
            return True
        manifest = load_manifest(path) if (path / "manifest.json").is_file() else None
        return manifest is not None and manifest.schema_name == VIDEO_SCHEMA.name
    return False


def video_shard_poses(shards: str | Path, out_file: Path, key: str | None = None) -> Path:
    """The per-frame SMPL of the first video in video shards (its segments in order, the first camera),
    written as a pose-sequence NPZ (``body_pose`` (T, 23, 3), ``global_orient``, ``transl``, ``betas``).
    ``key``: only the segment of that sample key."""
    segments: dict[str, list[tuple[int, Any]]] = {}
    for url in resolve_shard_urls(str(shards)):
        for raw in iter_shard_samples(url):
            if key is not None and raw.get("__key__") != key:
                continue
            try:
                video = decode_video(raw, where=f"{url} sample {raw.get('__key__', '?')}")
            except SchemaError as error:
                raise GenerateInputError(f"driving video shards {shards}: {error}") from error
            segments.setdefault(video.meta["subject_id"], []).append((int(video.video["segment"]), video))
    if not segments:
        raise GenerateInputError(f"driving video shards {shards} hold no video segment"
                                 + (f" with key {key}" if key is not None else ""))
    first = sorted(segments)[0]
    frames = [item for _, video in sorted(segments[first], key=lambda pair: pair[0])
              for item in video.smpl[: video.num_frames]]
    arrays = {name: np.stack([np.asarray(item[name], dtype=np.float64) for item in frames])
              for name in ("body_pose", "global_orient", "transl")}
    arrays["betas"] = np.asarray(frames[0]["betas"], dtype=np.float64)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(out_file, buffer.getvalue())
    logger.info("driving poses: %d frames of video %s from %s", len(frames), first, shards)
    return out_file


#: The ``video.*`` settings of :class:`pipelines.preprocess.VideoConfig` that preprocessing errors name;
#: for a driving video they are set as ``driver.*``.
_VIDEO_SETTING = re.compile(r"\bvideo\.(?=(?:%s)\b)" % "|".join(f.name for f in dataclasses.fields(VideoConfig)))


def _driver_settings(message: str) -> str:
    """A preprocessing error message with its ``video.<setting>`` names as ``gas generate`` takes them (``driver.``)."""
    return _VIDEO_SETTING.sub("driver.", message)


def _check_driving_video(path: Path, config: GenerateConfig) -> None:
    """A driving video file or frame folder whose first frame decodes and whose fit will have keypoints
    (video shards are read as they are later). Raises :class:`GenerateInputError` naming the video or setting."""
    from pipelines.datasets.tiktok import VideoRef, iter_ref_frames, video_info
    from pipelines.preprocess_video import read_video_groundtruth

    if path.suffix == ".tar" or (path.is_dir() and not (path / "images").is_dir()):
        return
    video = config.driver
    ref = VideoRef(dataset="driver", subject_id=path.stem, path=path, kind="frames" if path.is_dir() else "file")
    frames = None
    try:
        video_info(ref, frames_fps=video.frames_fps)
        frames = iter_ref_frames(ref, fps=video.fps, max_side=video.max_side, frames_fps=video.frames_fps, max_frames=1)
        if next(iter(frames), None) is None:
            raise ValueError("it holds no frame")
    except (ScanReadError, ValueError, OSError) as error:  # gas_core.videoio.VideoReadError is a ValueError
        raise GenerateInputError(f"driving video {path} is not readable: {error}") from error
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    weights = video.keypoints.detector_weights
    if weights and not Path(weights).is_file():
        raise GenerateInputError(f"driver.keypoints.detector_weights {weights} does not exist (the keypoint detector "
                                 f"for driving video {path})")
    if not weights and read_video_groundtruth(ref) is None:
        raise GenerateInputError(
            f"driving video {path}: its monocular body fit needs 2D keypoints and no keypoint detector is configured; "
            "set driver.keypoints.detector_weights to a local ultralytics pose model (e.g. --set "
            "driver.keypoints.detector_weights=/models/yolov8x-pose.pt), or give a pose sequence file (JSON/NPZ)")


def driving_video_poses(path: str | Path, work_dir: Path, config: GenerateConfig) -> Path:
    """A driving video turned into a pose-sequence NPZ in ``work_dir``.

    Video shards are read as they are; a video file or frame folder is first preprocessed like the
    ``tiktok`` dataset (masks, per-segment monocular SMPL fit; ``config.driver``) into ``work_dir``.
    Raises :class:`GenerateInputError` naming the video (and, for a missing setting, the ``driver.*``
    setting to give) when it cannot be used; folders this call created are removed again on failure.
    """
    from pipelines.datasets.tiktok import VideoRef
    from pipelines.preprocess import PreprocessConfig, pack_staged_subjects
    from pipelines.preprocess_video import preprocess_video

    path = Path(path)
    work_dir = Path(work_dir)
    if path.suffix == ".tar" or (path.is_dir() and not (path / "images").is_dir()):
        return video_shard_poses(path, work_dir / "poses.npz")
    shards = work_dir / "shards"
    staging = shards / "_staging"
    created = next((folder for folder in (work_dir, shards, staging) if not folder.exists()), None)
    preprocess_config = PreprocessConfig(video=config.driver, body_model_path=config.body_model_path)
    ref = VideoRef(dataset="driver", subject_id=path.stem, path=path, kind="frames" if path.is_dir() else "file")
    try:
        try:
            report = preprocess_video(ref, preprocess_config, staging)
        except (ScanReadError, FileNotFoundError) as error:
            raise GenerateInputError(f"driving video {path}: {_driver_settings(str(error))}") from error
        pack_staged_subjects(staging, shards, preprocess_config)
        logger.info("driving video %s: %d segments of %d frames", path, report.segments, report.frames)
        poses = video_shard_poses(shards, work_dir / "poses.npz")
    except BaseException:
        if created is not None:  # the outermost folder this call made, with everything in it
            shutil.rmtree(created, ignore_errors=True)
        raise
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()
    return poses
