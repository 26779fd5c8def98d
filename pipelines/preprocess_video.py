"""Preprocessing of videos (paper section 4.1.1): monocular dance/internet videos and multi-view video.

Steps (plain functions, wired into Prefect by :mod:`flows.preprocess`, one task per video):

1. :func:`plan_videos` finds the videos under a raw dataset root and drops those already done (their
   segments are in the output manifest, or staged by an earlier run that stopped before packing);
2. :func:`preprocess_video` turns one video into ``video`` segments (:class:`shards.schema.VideoSample`):

   * **monocular** (``tiktok``, ``internet``: frame folders or video files): frames are streamed at a
     fixed rate (:func:`pipelines.datasets.tiktok.iter_ref_frames`), masked with one subject kept across
     frames (:class:`gas_core.segment.VideoMasker`), cut into segments; per segment, COCO-17 keypoints
     (a local ultralytics pose model in the tracked box, or the ground truth of synthetic videos) and
     one monocular SMPL fit with one shape and temporal smoothness
     (:func:`gas_core.body.fit.monocular.fit_smpl_monocular`) under one fixed perspective camera;
   * **multi-view** (``mvhumannet``): synchronised frames of every camera with the dataset's own
     cameras, masks and SMPL (used as is), cut into segments;

   then each segment is cropped to a square around the person (the camera follows the crop) and the
   fitted body's normal maps are rendered. All segments of a video are staged together in
   ``<out_dir>/_staging/<dataset>__<video>/`` (written under a temporary name, then renamed), so a
   video is either complete or absent;
3. :func:`pipelines.preprocess.pack_staged_subjects` packs staged segments into ``video`` shards.

Bad input (an unreadable or truncated video, a video shorter than one segment, no person in any
segment, no keypoint source) fails that video with a :class:`~pipelines.datasets.errors.ScanReadError`
naming the file and the reason; segments with too many frames without the person are dropped and
named in the report; the other videos complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from gas_core.body.fit.monocular import detect_video_keypoints, fit_smpl_monocular
from gas_core.body.smpl import BodyModel
from gas_core.cameras import Camera
from gas_core.fileio import atomic_directory
from gas_core.render.normals import NormalMapRenderer
from gas_core.segment import VideoMasker, VideoMasks, mask_box
from gas_core.videoio import VideoReadError
from pipelines.datasets.errors import ScanReadError
from pipelines.datasets.tiktok import VideoRef, discover_videos, iter_ref_frames, resampled_indices, video_info
from pipelines.preprocess import (
    STAGING_DIRNAME,
    PreprocessConfig,
    VideoConfig,
    _body_model,
    _ItemReport,
    _thread_renderer,
    table_value,
)
from pipelines.video_quality import SegmentQuality, check_segment, mask_histogram, measure_segment
from shards.manifest import existing_keys
from shards.schema import VideoSample, encode, make_key

__all__ = [
    "NoUsableSegmentError",
    "MONOCULAR_DATASETS",
    "MULTIVIEW_DATASETS",
    "VIDEO_DATASETS",
    "SegmentCrop",
    "VideoPlan",
    "VideoReport",
    "is_video_dataset",
    "plan_videos",
    "preprocess_video",
    "square_crop",
]

logger = logging.getLogger(__name__)

#: Monocular video datasets: the TikTok release's frame folders and folders of video files.
MONOCULAR_DATASETS = ("tiktok", "internet")
#: Multi-view video datasets.
MULTIVIEW_DATASETS = ("mvhumannet",)
VIDEO_DATASETS = MONOCULAR_DATASETS + MULTIVIEW_DATASETS


def _video_id(ref: Any) -> str:
    """The id of a monocular (``subject_id``) or multi-view (``video_id``) video reference."""
    return str(getattr(ref, "subject_id", None) or getattr(ref, "video_id"))


def is_video_dataset(dataset: str) -> bool:
    """True for the datasets this module reads (``tiktok``, ``internet``, ``mvhumannet``)."""
    return dataset in VIDEO_DATASETS


class NoUsableSegmentError(ScanReadError):
    """A video whose every segment was dropped or rejected; ``segment_rows`` holds each segment's row
    (status, reason, gate values) as in :attr:`VideoReport.segment_rows`."""

    def __init__(self, message: str, segment_rows: tuple[dict[str, Any], ...] = ()) -> None:
        super().__init__(message)
        self.segment_rows = tuple(segment_rows)


# --------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class VideoPlan:
    """What a run will do: videos found, those already done (packed or staged), those to process."""

    total: int
    done: tuple[Any, ...]
    todo: tuple[Any, ...]
    staging_dir: Path


def _discover(dataset: str, raw_root: Path) -> list[Any]:
    if dataset in MONOCULAR_DATASETS:
        return discover_videos(raw_root, dataset)
    if dataset in MULTIVIEW_DATASETS:
        from pipelines.datasets.mvhumannet import discover_mvhumannet

        return discover_mvhumannet(raw_root)
    raise ValueError(f"dataset must be one of {VIDEO_DATASETS}, got {dataset!r}")


def plan_videos(dataset: str, raw_root: Path, out_dir: Path, *, limit: int | None = None) -> VideoPlan:
    """Discover ``dataset``'s videos under ``raw_root`` and split them into done / to do.

    A video is done when a complete staged folder exists or the output manifest holds any of its
    segments (a video's segments are staged together and its folder is removed only once all are packed).
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    refs = _discover(dataset, Path(raw_root))
    if limit is not None:
        refs = refs[:limit]
    out_dir = Path(out_dir)
    staging_dir = out_dir / STAGING_DIRNAME
    staging_dir.mkdir(parents=True, exist_ok=True)
    packed = existing_keys(out_dir) if (out_dir / "manifest.json").exists() else set()
    packed_videos = {key.rsplit("__", 1)[0] for key in packed}
    staged = {path.name for path in staging_dir.iterdir() if path.is_dir() and not path.name.endswith(".tmp")}
    done, todo = [], []
    for ref in refs:
        key = make_key(ref.dataset, _video_id(ref))
        (done if key in staged or key in packed_videos else todo).append(ref)
    return VideoPlan(total=len(refs), done=tuple(done), todo=tuple(todo), staging_dir=staging_dir)


# --------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class VideoReport(_ItemReport):
    """Outcome of one video.

    ``status``: "ok" (segments staged; ``error`` lists the rejected segments, if any) or "failed" (bad
    input, or no segment passed the gates: ``error`` names the file and every reason). ``frames``:
    frames read; ``segments``: segments staged; ``dropped``: segments rejected (outside the quality
    gates of :mod:`pipelines.video_quality`, or without a fit); ``segment_rows``: one dict per segment
    (status, reason and quality values; the flow's segment table, not part of :meth:`as_row`); ``missing_fraction``: frames without the person over all frames;
    ``keypoint_error_px``: mean reprojection error of the fits; against the ground truth of synthetic
    videos (NaN otherwise): ``mask_iou`` (mean over frames) and ``pa_mpjpe_mm`` (Procrustes-aligned
    joint error of the fit, millimetres); timings in seconds; ``worker``: where it ran (set by the flow).
    """

    frames: int = 0
    segments: int = 0
    dropped: int = 0
    missing_fraction: float = float("nan")
    keypoint_error_px: float = float("nan")
    mask_iou: float = float("nan")
    pa_mpjpe_mm: float = float("nan")
    decode_s: float = 0.0
    mask_s: float = 0.0
    fit_s: float = 0.0
    write_s: float = 0.0
    segment_rows: tuple[dict[str, Any], ...] = ()

    @classmethod
    def failed(cls, ref: Any, error: str) -> "VideoReport":
        return cls(dataset=ref.dataset, subject_id=_video_id(ref), status="failed", error=error)

    def as_row(self) -> dict[str, Any]:
        """A flat dict for tables and artifacts (NaN shown as empty, floats rounded)."""
        return {key: table_value(value) for key, value in asdict(self).items() if key != "segment_rows"}


# --------------------------------------------------------------------------------------- crops
@dataclass(frozen=True)
class SegmentCrop:
    """A square crop of a segment: pixel ``(x0, y0)`` of its top-left corner and ``side`` in source pixels,
    resized to ``size`` pixels (``scale = size / side``)."""

    x0: float
    y0: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        return self.size / self.side

    def matrix(self) -> np.ndarray:
        """(2, 3) affine map from source pixels to crop pixels."""
        s = self.scale
        return np.array([[s, 0.0, -self.x0 * s], [0.0, s, -self.y0 * s]])

    def apply_image(self, image: np.ndarray, *, nearest: bool = False) -> np.ndarray:
        """The crop of ``image`` (H, W[, 3]) uint8, zeros outside the source."""
        flags = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR)
        if flags == cv2.INTER_AREA:  # warpAffine has no area filter: pre-shrink, then place
            factor = self.scale
            small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            shift = np.array([[1.0, 0.0, -self.x0 * factor], [0.0, 1.0, -self.y0 * factor]])
            return cv2.warpAffine(small, shift, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return cv2.warpAffine(image, self.matrix(), (self.size, self.size), flags=flags,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def apply_camera(self, camera: Camera) -> Camera:
        """The camera of the cropped image: principal point shifted and focal lengths scaled."""
        s = self.scale
        K = np.array(camera.K, dtype=np.float64).copy()
        K[0, 0] *= s
        K[1, 1] *= s
        K[0, 1] *= s
        K[0, 2] = (K[0, 2] - self.x0) * s
        K[1, 2] = (K[1, 2] - self.y0) * s
        return Camera(K=K, R=camera.R, t=camera.t, width=self.size, height=self.size)

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """Keypoints (..., 3) u, v pixels + confidence in crop pixels (confidence kept)."""
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - self.x0) * self.scale
        out[..., 1] = (out[..., 1] - self.y0) * self.scale
        return out


def square_crop(boxes: np.ndarray, image_size: tuple[int, int], size: int, margin: float) -> SegmentCrop:
    """The square crop holding every box of ``boxes`` (K, 4) xyxy pixels (NaN rows ignored), ``margin``
    of its size added per side, centred on them; the whole image when no box is finite.

    ``image_size``: (W, H) pixels; ``size``: the crop's output side in pixels.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = boxes[np.isfinite(boxes).all(axis=1)]
    width, height = image_size
    if len(finite) == 0:
        side = float(max(width, height))
        return SegmentCrop(x0=(width - side) / 2, y0=(height - side) / 2, side=side, size=int(size))
    x0, y0 = finite[:, 0].min(), finite[:, 1].min()
    x1, y1 = finite[:, 2].max(), finite[:, 3].max()
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return SegmentCrop(x0=cx - side / 2, y0=cy - side / 2, side=float(side), size=int(size))


# --------------------------------------------------------------------------------------- helpers
def _smpl_dicts(params, body: BodyModel) -> list[dict[str, Any]]:
    """Per-frame SMPL dicts (the project's layout, betas padded to 10) of a batch of parameters."""
    betas = params.betas.detach().cpu().double().numpy()
    if betas.shape[1] < 10:
        betas = np.concatenate([betas, np.zeros((len(betas), 10 - betas.shape[1]))], axis=1)
    body_pose = params.body_pose.detach().cpu().double().numpy().reshape(len(betas), 23, 3)
    orient = params.global_orient.detach().cpu().double().numpy().reshape(len(betas), 3)
    transl = params.transl.detach().cpu().double().numpy().reshape(len(betas), 3)
    scale = np.broadcast_to(params.scale.detach().cpu().double().numpy().reshape(-1), (len(betas),))
    return [{"betas": betas[i, :10], "body_pose": body_pose[i], "global_orient": orient[i], "transl": transl[i],
             "scale": float(scale[i]), "body_model": body.label} for i in range(len(betas))]


def _normal_maps(body: BodyModel, smpl: Sequence[dict[str, Any]], cameras: Sequence[Camera], size: int) -> np.ndarray:
    """Normal maps (N, size, size, 3) uint8 of N images, each with its own SMPL dict and camera."""
    from gas_core.body.smpl import SMPLParams

    params = SMPLParams.from_records(smpl)
    with torch.no_grad():
        vertices = body(params).vertices.cpu().double().numpy()
    renderer = _thread_renderer(NormalMapRenderer, size, size)
    return renderer.render_frames(vertices, np.asarray(body.faces), list(cameras))


def _chunks(frames: Iterator[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """Frames grouped into arrays of ``count`` (the last one shorter)."""
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == count:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)


def _stage_sample(folder: Path, sample: VideoSample) -> None:
    target = folder / sample.key
    target.mkdir()
    for suffix, data in encode(sample).items():
        (target / suffix).write_bytes(data)


# --------------------------------------------------------------------------------------- monocular
@dataclass
class _MonocularState:
    """Frames waiting for their masks, and masked frames waiting for a full segment: tuples of (index,
    frame, mask, box, status, keypoints (17, 3) or None)."""

    frames: dict[int, np.ndarray] = field(default_factory=dict)
    ready: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, str, np.ndarray | None]] = field(default_factory=list)

    def collect(self, masks: VideoMasks) -> None:
        for i, index in enumerate(masks.frame_indices.tolist()):
            points = None if masks.keypoints is None else masks.keypoints[i]
            self.ready.append((index, self.frames.pop(index), masks.masks[i], masks.boxes[i], masks.statuses[i], points))


def _estimator_keypoints(frames: np.ndarray, boxes: np.ndarray, estimated: list[np.ndarray | None]) -> np.ndarray:
    """COCO-17 keypoints (T, 17, 3) of MediaPipe: those the masker estimated with the masks, else a
    single-image run in each frame's box (frames without a box get confidence 0)."""
    if all(points is not None for points in estimated):
        return np.stack(estimated).astype(np.float32)
    from gas_core.segment.mediapipe_pose import MediaPipePose, MediaPipePoseConfig

    estimator = MediaPipePose(MediaPipePoseConfig(probe_stride=0), static_image_mode=True)
    try:
        points = np.zeros((len(frames), 17, 3), np.float32)
        for t, (frame, box) in enumerate(zip(frames, boxes)):
            if np.isfinite(box).all():
                points[t] = estimator.estimate(frame, box).keypoints
        return points
    finally:
        estimator.close()


def _video_keypoints(ref: Any, config: VideoConfig, frames: np.ndarray, boxes: np.ndarray, source_frames: np.ndarray,
                     decode_scale: float, groundtruth: dict[str, Any] | None,
                     estimated: list[np.ndarray | None] | None = None) -> np.ndarray:
    """COCO-17 keypoints (T, 17, 3) of a segment: the configured detector weights, else MediaPipe
    (``estimated``: the masker's per-frame keypoints, or None), or, when ``video.keypoints.source`` is
    ``"groundtruth"``, the ground truth of a synthetic video (noised)."""
    keypoints = config.keypoints
    if keypoints.source == "estimator":
        if keypoints.detector_weights:
            return detect_video_keypoints(keypoints.detector_weights, list(frames), boxes)
        try:
            return _estimator_keypoints(frames, boxes, list(estimated) if estimated is not None else [None] * len(frames))
        except ImportError as error:
            raise ScanReadError(f"{ref.path}: no keypoint estimator for video {ref.subject_id}: {error}; or set "
                                "video.keypoints.detector_weights to a local ultralytics pose model") from error
    if groundtruth is None or "keypoints2d" not in groundtruth:
        raise ScanReadError(f"{ref.path}: video.keypoints.source='groundtruth' but video {ref.subject_id} has no "
                            "ground-truth keypoints (only synthetic videos do); set video.keypoints.detector_weights "
                            "to a local ultralytics pose model, or video.keypoints.source=estimator (MediaPipe)")
    truth = np.asarray(groundtruth["keypoints2d"], dtype=np.float64)
    lookup = resampled_indices(len(truth), float(groundtruth.get("fps", config.frames_fps)), config.fps)
    if int(source_frames.max()) >= len(lookup):
        raise ScanReadError(f"{ref.path}: ground truth holds {len(truth)} frames but frame {int(source_frames.max())} "
                            "was decoded; re-create the synthetic video")
    points = truth[np.asarray(lookup)[source_frames]].copy()
    points[..., 2] = np.select([points[..., 2] >= 2, points[..., 2] >= 1], [1.0, 0.5], 0.0)  # COCO flags -> confidence
    points[..., :2] *= decode_scale
    rng = np.random.default_rng([keypoints.seed, int(source_frames[0])])
    points[..., :2] += rng.normal(0.0, keypoints.noise_px, size=points[..., :2].shape)
    dropped = rng.random(points.shape[:2]) < keypoints.drop_prob
    points[dropped, 2] = 0.0
    return points.astype(np.float32)


#: Plain words for each gate, in rejection reasons.
_GATE_HINTS = {
    "missing_fraction": "subject missing, or several people the tracker cannot tell apart",
    "silhouette_iou": "mask and fitted body disagree",
    "keypoint_error": "keypoints not explained by the fitted body",
    "area_jump": "mask area jumps between frames",
    "identity_distance": "the tracked person's look changes (subject may be swapped)",
    "box_jump": "the tracked box jumps (subject may be swapped)",
    "lower_body_seen": "partial body: legs not seen",
}


def _rejection(prefix: str, failures: list[str]) -> str:
    hints = sorted({_GATE_HINTS[failure.split(" ", 1)[0]] for failure in failures})
    return f"{prefix}: rejected by the quality gates ({'; '.join(failures)}: {'; '.join(hints)})"


@dataclass
class _SegmentOutcome:
    """One segment: the staged sample (None when rejected), its table row and mean keypoint error (px)."""

    sample: VideoSample | None
    row: dict[str, Any]
    reason: str = ""
    error_px: float = float("nan")


def _segment_row(ref: Any, segment: int, indices: np.ndarray, status: str, reason: str,
                 quality: SegmentQuality) -> dict[str, Any]:
    return {"dataset": ref.dataset, "video": _video_id(ref), "segment": segment,
            "frames": f"{int(indices[0])}-{int(indices[-1])}", "status": status, "reason": reason, **quality.as_dict()}


def _reference_histogram(items: list, count: int = 5) -> np.ndarray | None:
    """The subject's look at the start of the video: mean masked HSV histogram of its first ``count``
    frames with a subject (None when there is none in ``items``)."""
    histograms = [mask_histogram(item[1], item[2] > 127) for item in items if item[4] == "ok"]
    histograms = [histogram for histogram in histograms if histogram is not None][:count]
    return np.mean(histograms, axis=0) if histograms else None


def _monocular_segment(ref: Any, segment: int, items: list, config: PreprocessConfig, body: BodyModel,
                       decode_scale: float, groundtruth: dict[str, Any] | None, timings: dict[str, float],
                       reference: np.ndarray | None = None) -> _SegmentOutcome:
    """One segment: masked, fitted and measured (:mod:`pipelines.video_quality`); a segment outside the
    gates (or without a fit) comes back without a sample, with the reason."""
    video = config.video
    indices = np.array([item[0] for item in items])
    statuses = [item[4] for item in items]
    prefix = f"segment {segment} (frames {indices[0]}-{indices[-1]})"
    missing = [i for i, status in zip(indices.tolist(), statuses) if status != "ok"]
    frames = np.stack([item[1] for item in items])
    masks = np.stack([item[2] for item in items])
    boxes = np.stack([item[3] for item in items]).astype(np.float64)
    max_missing = (video.gates.max_missing_fraction if video.gates.max_missing_fraction is not None
                   else video.max_missing_fraction)
    if len(missing) > max_missing * len(items):  # too little to fit: measured and rejected before the fit
        kinds = sorted({status for status in statuses if status != "ok"})
        quality = measure_segment(frames, masks, boxes, statuses, reference=reference)
        reason = (f"{prefix}: rejected, {len(missing)} of {len(items)} frames without a single clear person "
                  f"({', '.join(kinds)}), over video.max_missing_fraction={max_missing}")
        return _SegmentOutcome(None, _segment_row(ref, segment, indices, "rejected", reason, quality), reason)
    height, width = frames.shape[1:3]
    started = time.perf_counter()
    keypoints = _video_keypoints(ref, video, frames, boxes, indices, decode_scale, groundtruth,
                                 [item[5] for item in items])
    try:
        fit = fit_smpl_monocular(body, keypoints, (width, height), video.fit)
    except ValueError as error:
        quality = measure_segment(frames, masks, boxes, statuses, keypoints=keypoints, reference=reference)
        reason = f"{prefix}: rejected, SMPL fit impossible ({error})"
        return _SegmentOutcome(None, _segment_row(ref, segment, indices, "rejected", reason, quality), reason)
    timings["fit_s"] += time.perf_counter() - started
    crop = square_crop(boxes, (width, height), video.crop_size, video.crop_margin)
    camera = crop.apply_camera(fit.camera)
    smpl = _smpl_dicts(fit.params, body)
    crop_masks = np.stack([crop.apply_image(mask, nearest=True) for mask in masks])
    normals = _normal_maps(body, smpl, [camera] * len(items), video.crop_size)
    quality = measure_segment(frames, masks, boxes, statuses, keypoints=keypoints, reprojection_px=fit.reprojection_error_px, reference=reference)
    silhouette = measure_segment(frames, crop_masks, boxes, statuses, silhouettes=normals.any(axis=-1))
    quality = replace(quality, silhouette_iou=silhouette.silhouette_iou)  # mask and render on the same crop grid
    failures = check_segment(quality, video.gates, video.max_missing_fraction) if video.gates.enforce else []
    truth = _groundtruth_scores(groundtruth, indices, masks, fit.joints, video) if groundtruth is not None else None
    if truth is not None:
        timings.setdefault("truth", []).append(truth)
    error_px = fit.reprojection_error_px[np.isfinite(fit.reprojection_error_px)]
    mean_px = float(error_px.mean()) if len(error_px) else float("nan")
    if failures:
        reason = _rejection(prefix, failures)
        row = _segment_row(ref, segment, indices, "rejected", reason, quality)
        if truth is not None:
            row.update({"true_mask_iou": round(truth["mask_iou"], 4), "true_pa_mpjpe_mm": round(truth["pa_mpjpe_m"] * 1000, 1)})
        return _SegmentOutcome(None, row, reason, mean_px)
    sample = VideoSample(
        frames=np.stack([crop.apply_image(frame) for frame in frames]),
        masks=crop_masks,
        cameras=[camera.to_dict() for _ in items], smpl=smpl,
        video={"kind": "monocular", "num_cameras": 1, "num_frames": len(items), "fps": float(video.fps),
               "segment": segment, "source_frames": indices.tolist()},
        meta={"dataset": ref.dataset, "subject_id": ref.subject_id, "source": [str(ref.path)],
              "extra": {"frame_status": statuses, "reprojection_error_px": np.nan_to_num(fit.reprojection_error_px).tolist(),
                        "interpolated": fit.interpolated.astype(bool).tolist(),
                        "keypoint_source": _keypoint_source_label(video),
                        "segment_status": "ok", "quality": _finite(quality.as_dict()),
                        "crop": {"x0": crop.x0, "y0": crop.y0, "side": crop.side, "decode_scale": decode_scale}}},
        keypoints=crop.apply_points(keypoints),
    )
    if video.store_normals:
        sample.normals = normals
    row = _segment_row(ref, segment, indices, "ok", "", quality)
    if truth is not None:
        sample.meta["extra"]["groundtruth"] = truth
        row.update({"true_mask_iou": round(truth["mask_iou"], 4), "true_pa_mpjpe_mm": round(truth["pa_mpjpe_m"] * 1000, 1)})
    return _SegmentOutcome(sample, row, "", mean_px)


def _finite(values: dict[str, float]) -> dict[str, float]:
    """The finite entries of ``values`` (meta.json holds no NaN)."""
    return {key: value for key, value in values.items() if np.isfinite(value)}


def _keypoint_source_label(video: VideoConfig) -> str:
    """What the segment's keypoints came from, as recorded in its meta."""
    if video.keypoints.source == "groundtruth":
        return "groundtruth (synthetic, noised)"
    return "ultralytics pose" if video.keypoints.detector_weights else "mediapipe pose"


def _groundtruth_scores(groundtruth: dict[str, Any], indices: np.ndarray, masks: np.ndarray, joints: np.ndarray,
                        video: VideoConfig) -> dict[str, float]:
    """A segment against the synthetic ground truth: mask IoU (decoded size) and PA-MPJPE of the 24 joints (metres)."""
    from gas_core.metrics.joints import procrustes_aligned_mpjpe

    lookup = np.asarray(resampled_indices(len(groundtruth["joints24"]), float(groundtruth.get("fps", video.frames_fps)),
                                          video.fps))[indices]
    truth_masks = np.asarray(groundtruth["masks"])[0][lookup]
    height, width = masks.shape[1:3]
    ious = []
    for mask, truth in zip(masks, truth_masks):
        truth = cv2.resize(truth.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        union = np.logical_or(mask > 127, truth).sum()
        ious.append(np.logical_and(mask > 127, truth).sum() / union if union else 1.0)
    return {"mask_iou": float(np.mean(ious)),
            "pa_mpjpe_m": procrustes_aligned_mpjpe(joints, np.asarray(groundtruth["joints24"], dtype=np.float64)[lookup])}


def _video_masker(ref: VideoRef, video: VideoConfig, *, frames_fps: float) -> VideoMasker:
    """The video's masker; when it runs the built-in background model, that model starts from the
    background of the whole video (:func:`gas_core.segment.background.video_background`, one extra
    decoding pass), so masks do not collapse at the start of a segment or lose still legs."""
    masker = VideoMasker(video.masks)
    if not masker.uses_background_model:
        return masker
    from gas_core.segment.background import video_background

    try:
        prior = video_background(iter_ref_frames(ref, fps=video.fps, max_side=video.max_side, frames_fps=frames_fps),
                                 video.masks.background)
    except ValueError as error:
        raise ScanReadError(f"{ref.path}: no frame to estimate the background from ({error})") from error
    return VideoMasker(video.masks, background_prior=prior)


def _preprocess_monocular(ref: VideoRef, config: PreprocessConfig, staging_dir: Path) -> VideoReport:
    video = config.video
    info = video_info(ref, frames_fps=video.frames_fps)
    decode_scale = min(1.0, video.max_side / max(info.width, info.height))
    groundtruth = read_video_groundtruth(ref)
    body = _body_model(config.body_model_path)
    masker = _video_masker(ref, video, frames_fps=video.frames_fps)
    state = _MonocularState()
    timings: dict[str, Any] = {"decode_s": 0.0, "mask_s": 0.0, "fit_s": 0.0, "write_s": 0.0}
    dropped: list[str] = []
    errors: list[float] = []
    counts = {"frames": 0, "segments": 0, "missing": 0}

    rows: list[dict[str, Any]] = []
    reference: list[np.ndarray | None] = [None]

    def flush(items: list, segment: int, folder: Path) -> None:
        counts["missing"] += sum(item[4] != "ok" for item in items)
        if reference[0] is None:
            reference[0] = _reference_histogram(items)
        outcome = _monocular_segment(ref, segment, items, config, body, decode_scale, groundtruth, timings, reference[0])
        rows.append(outcome.row)
        if outcome.sample is None:
            dropped.append(outcome.reason)
            return
        started = time.perf_counter()
        _stage_sample(folder, outcome.sample)
        timings["write_s"] += time.perf_counter() - started
        counts["segments"] += 1
        errors.append(outcome.error_px)

    key = make_key(ref.dataset, ref.subject_id)
    frames = iter_ref_frames(ref, fps=video.fps, max_side=video.max_side, frames_fps=video.frames_fps)
    with atomic_directory(Path(staging_dir) / key, replace_existing=True) as folder:
        segment = 0
        chunks = _chunks(frames, video.segment_frames)
        while True:
            started = time.perf_counter()
            try:
                chunk = next(chunks, None)
            except VideoReadError as error:
                raise ScanReadError(str(error)) from error
            timings["decode_s"] += time.perf_counter() - started
            started = time.perf_counter()
            if chunk is None:
                state.collect(masker.finish())
            else:
                base = counts["frames"]
                for offset, frame in enumerate(chunk):
                    state.frames[base + offset] = frame
                counts["frames"] += len(chunk)
                state.collect(masker.process(chunk))
            timings["mask_s"] += time.perf_counter() - started
            while len(state.ready) >= video.segment_frames:
                items, state.ready = state.ready[:video.segment_frames], state.ready[video.segment_frames:]
                flush(items, segment, folder)
                segment += 1
            if chunk is None:
                break
        if counts["frames"] < video.min_segment_frames:
            raise ScanReadError(f"{ref.path}: {counts['frames']} frames at {video.fps:g} fps, shorter than one segment "
                                f"(video.min_segment_frames={video.min_segment_frames}); skip this video or lower the setting")
        if len(state.ready) >= video.min_segment_frames:
            flush(state.ready, segment, folder)
        if counts["segments"] == 0:
            raise NoUsableSegmentError(f"{ref.path}: no usable segment: " + "; ".join(dropped), tuple(rows))
    if dropped:
        logger.warning("%s/%s: %d segment(s) rejected: %s", ref.dataset, ref.subject_id, len(dropped), "; ".join(dropped))
    truth = timings.pop("truth", [])
    scores = {"mask_iou": float(np.mean([item["mask_iou"] for item in truth])) if truth else float("nan"),
              "pa_mpjpe_mm": float(np.mean([item["pa_mpjpe_m"] for item in truth])) * 1000 if truth else float("nan")}
    return VideoReport(dataset=ref.dataset, subject_id=ref.subject_id, status="ok", **scores,
                       error="; ".join(dropped), frames=counts["frames"],
                       segments=counts["segments"], dropped=len(dropped), segment_rows=tuple(rows),
                       missing_fraction=counts["missing"] / max(1, counts["frames"]),
                       keypoint_error_px=float(np.nanmean(errors)) if errors and np.isfinite(errors).any() else float("nan"),
                       **timings)


# --------------------------------------------------------------------------------------- ground truth
def read_video_groundtruth(ref: Any) -> dict[str, Any] | None:
    """Ground truth kept aside for a synthetic video (``<root>/_groundtruth/<id>/``), or None (real data has none).

    Returns the arrays of :func:`pipelines.synth_video.read_video_groundtruth` with ``keypoints2d`` of the
    first camera (T, 17, 3) pixels at the video's own size, and ``fps``.
    """
    from pipelines.datasets.common import GROUNDTRUTH_DIRNAME
    from pipelines.synth_video import read_video_groundtruth as read

    root = Path(ref.path).parent
    if not (root / GROUNDTRUTH_DIRNAME / ref.subject_id / "arrays.npz").is_file():
        return None
    record, arrays = read(root, ref.subject_id)
    truth = dict(arrays)
    truth["keypoints2d"] = np.asarray(arrays["keypoints2d"])[0]
    truth["fps"] = float(record.get("motion", {}).get("fps", 30.0))
    return truth


# --------------------------------------------------------------------------------------- multi-view
def _rest_pelvis(body: BodyModel, betas: np.ndarray) -> np.ndarray:
    """The body model's pelvis (3,) metres in the rest pose for ``betas`` (10,)."""
    from gas_core.body.smpl import SMPLParams

    params = SMPLParams.from_records([{"betas": betas, "body_pose": np.zeros((23, 3)), "global_orient": np.zeros(3),
                                       "transl": np.zeros(3)}])
    with torch.no_grad():
        return body(params).joints[0, 0].double().cpu().numpy()


def _dataset_smpl(item: dict[str, Any], body: BodyModel, pelvis_cache: dict[bytes, np.ndarray]) -> dict[str, Any]:
    """A dataset body fit as the project's SMPL dict: SMPL's translation convention, the loaded model's label."""
    from pipelines.datasets.mvhumannet import pelvis_centred_transl

    betas = np.asarray(item["betas"], dtype=np.float64).reshape(-1)[:10]
    transl = np.asarray(item["transl"], dtype=np.float64).reshape(3)
    if item.get("transl_about") == "model origin":
        key = betas.tobytes()
        if key not in pelvis_cache:
            pelvis_cache[key] = _rest_pelvis(body, betas)
        transl = pelvis_centred_transl(item, pelvis_cache[key])
    return {"betas": betas, "body_pose": np.asarray(item["body_pose"], dtype=np.float64).reshape(23, 3),
            "global_orient": np.asarray(item["global_orient"], dtype=np.float64).reshape(3), "transl": transl,
            "scale": float(np.asarray(item.get("scale", 1.0)).reshape(-1)[0]), "body_model": body.label}


def _multiview_quality(masks: np.ndarray, normals: np.ndarray, cameras: int, frames: int) -> SegmentQuality:
    """The gates that apply to a multi-view segment (dataset masks and bodies; no keypoints, no tracking):
    missing fraction (empty masks), silhouette IoU against the dataset body, and the largest mask-area
    jump over each camera's frames. ``masks`` (C*T, S, S) uint8 and ``normals`` (C*T, S, S, 3), camera-major."""
    binary = masks > 127
    silhouettes = normals.any(axis=-1)
    filled = binary.reshape(len(binary), -1).any(axis=1)
    ious = [float(np.logical_and(m, s).sum() / max(np.logical_or(m, s).sum(), 1))
            for m, s, f in zip(binary, silhouettes, filled) if f]
    jumps = []
    areas = binary.reshape(cameras, frames, -1).sum(axis=2).astype(np.float64)
    for row in areas:
        for a, b in zip(row[:-1], row[1:]):
            if a > 0 and b > 0:
                jumps.append(abs(b - a) / max(a, b))
    return SegmentQuality(missing_fraction=float(1.0 - filled.mean()),
                          silhouette_iou=float(np.mean(ious)) if ious else float("nan"),
                          area_jump=float(max(jumps)) if jumps else float("nan"))


def _preprocess_multiview(ref: Any, config: PreprocessConfig, staging_dir: Path) -> VideoReport:
    from pipelines.datasets.mvhumannet import iter_mvhumannet_chunks, read_mvhumannet_video

    video_config = config.video
    started = time.perf_counter()
    video = read_mvhumannet_video(ref)
    names = video.camera_names
    chosen = [names[i] for i in sorted({int(round(k * len(names) / min(len(names), video_config.multiview_cameras)))
                                        % len(names) for k in range(min(len(names), video_config.multiview_cameras))})]
    body = _body_model(config.body_model_path)
    timings = {"decode_s": time.perf_counter() - started, "mask_s": 0.0, "fit_s": 0.0, "write_s": 0.0}
    counts = {"frames": 0, "segments": 0}
    dropped: list[str] = []
    rows: list[dict[str, Any]] = []
    pelvis_cache: dict[bytes, np.ndarray] = {}
    length = video_config.multiview_segment_frames
    if len(video.ticks) < min(length, video_config.min_segment_frames):
        raise ScanReadError(f"{ref.path}: {len(video.ticks)} synchronised frames, shorter than one segment "
                            f"(video.min_segment_frames={video_config.min_segment_frames})")
    key = make_key(ref.dataset, ref.video_id)
    with atomic_directory(Path(staging_dir) / key, replace_existing=True) as folder:
        chunks = iter_mvhumannet_chunks(video, length, cameras=chosen)
        segment = 0
        while True:
            started = time.perf_counter()
            chunk = next(chunks, None)
            timings["decode_s"] += time.perf_counter() - started
            if chunk is None:
                break
            frames_in_chunk = len(chunk.ticks)
            counts["frames"] += frames_in_chunk
            if frames_in_chunk < min(length, video_config.min_segment_frames):
                dropped.append(f"segment {segment}: only {frames_in_chunk} frames left at the end")
                break
            started = time.perf_counter()
            smpl_t = [_dataset_smpl(item, body, pelvis_cache) for item in chunk.smpl]
            images, masks, cameras, smpl = [], [], [], []
            for c, name in enumerate(chosen):
                camera_masks = chunk.masks[c]
                boxes = [mask_box(mask) for mask in camera_masks]
                crop = square_crop(np.stack([np.full(4, np.nan) if box is None else box for box in boxes]),
                                   (video.width, video.height),
                                   video_config.crop_size, video_config.crop_margin)
                camera = crop.apply_camera(video.cameras[name])
                for t in range(frames_in_chunk):
                    images.append(crop.apply_image(chunk.images[c, t]))
                    masks.append(crop.apply_image(camera_masks[t].astype(np.uint8) * 255, nearest=True))
                    cameras.append(camera.to_dict())
                    smpl.append(smpl_t[t])
            sample = VideoSample(
                frames=np.stack(images), masks=np.stack(masks), cameras=cameras, smpl=smpl,
                video={"kind": "multiview", "num_cameras": len(chosen), "num_frames": frames_in_chunk,
                       "fps": float(video_config.multiview_fps), "segment": segment,
                       "source_frames": [int(tick) for tick in chunk.ticks], "camera_names": list(chosen)},
                meta={"dataset": ref.dataset, "subject_id": ref.video_id, "source": [str(ref.path)],
                      "extra": {"dataset_body_model": sorted({str(item.get("body_model", "")) for item in chunk.smpl})}})
            normals = _normal_maps(body, smpl, [Camera.from_dict(camera) for camera in cameras], video_config.crop_size)
            quality = _multiview_quality(np.stack(masks), normals, len(chosen), frames_in_chunk)
            failures = check_segment(quality, video_config.gates, video_config.max_missing_fraction) \
                if video_config.gates.enforce else []
            indices = np.asarray(chunk.ticks)
            timings["fit_s"] += time.perf_counter() - started
            if failures:
                reason = _rejection(f"segment {segment} (ticks {indices[0]}-{indices[-1]})", failures)
                dropped.append(reason)
                rows.append(_segment_row(ref, segment, indices, "rejected", reason, quality))
                segment += 1
                continue
            rows.append(_segment_row(ref, segment, indices, "ok", "", quality))
            sample.meta["extra"].update({"segment_status": "ok", "quality": _finite(quality.as_dict())})
            if video_config.store_normals:
                sample.normals = normals
            started = time.perf_counter()
            _stage_sample(folder, sample)
            timings["write_s"] += time.perf_counter() - started
            counts["segments"] += 1
            segment += 1
        if counts["segments"] == 0:
            raise NoUsableSegmentError(f"{ref.path}: no usable segment: " + "; ".join(dropped), tuple(rows))
    return VideoReport(dataset=ref.dataset, subject_id=ref.video_id, status="ok", error="; ".join(dropped),
                       frames=counts["frames"], segments=counts["segments"], dropped=len(dropped), segment_rows=tuple(rows),
                       missing_fraction=0.0, **timings)


# --------------------------------------------------------------------------------------- entry point
def preprocess_video(ref: Any, config: PreprocessConfig, staging_dir: Path) -> VideoReport:
    """Turn one video into staged ``video`` segments (see the module docstring); returns its report.

    Raises :class:`ScanReadError` for bad input (the message names the file and the reason); nothing
    is staged for a video that fails.
    """
    try:
        if ref.dataset in MULTIVIEW_DATASETS:
            return _preprocess_multiview(ref, config, staging_dir)
        return _preprocess_monocular(ref, config, staging_dir)
    except VideoReadError as error:
        raise ScanReadError(str(error)) from error


