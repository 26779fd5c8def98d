"""Preprocessing of 3D scans (THuman2.1, 2K2K): render an orbit, fit the body model, stage, pack shards.

Steps (each a plain function, wired into Prefect by :mod:`flows.preprocess`):

1. :func:`plan_subjects` finds the subjects under a raw dataset root and drops those already done
   (listed in the output manifest, or staged by an earlier run that stopped before packing);
2. :func:`preprocess_subject` reads one scan (damaged files are refused with a
   :class:`~pipelines.datasets.common.ScanReadError`), settles its length unit (``config.units``),
   renders ``config.orbit`` views (RGB + mask) framed to the subject's size (``config.framing``),
   gets 2D keypoints per view, fits the body model, measures the subject's quality
   (:mod:`pipelines.quality`) and judges it by ``config.gates``. A subject that passes is **staged**
   in ``<out_dir>/_staging/<key>/``; one that fails a gate is *rejected*: its complete sample goes to
   ``<out_dir>/_rejected/<key>/`` instead and is not packed (both folders are written whole or not
   at all by :meth:`shards.remote.Folder.write_folder`, on a local disk or on object storage, so the
   tasks may run on other hosts than the flow);
3. :func:`pack_staged_subjects` packs staged samples into size/count-limited shards with
   :class:`shards.writer.ShardWriter` (atomic shards + manifest) and removes what it packed.

The quality values and the gate outcome go into each sample's ``meta.json``
(``meta["extra"]["quality"]``, ``meta["extra"]["gates"]``). Rejected samples are judged again by the
next run's gates (without recomputing them) and move to staging when they pass or are accepted
(``gates.accept_subjects``, ``gates.enforce=false``); a rejected subject whose raw files changed since
is processed again. A run killed at any point leaves no partial shard; the next run re-does only what
is missing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gas_core.body.fit.fitter import FitConfig, fit_smpl_multiview
from gas_core.body.fit.monocular import MonocularFitConfig
from gas_core.body.fit.keypoints import ProjectedKeypoints, UltralyticsPoseDetector
from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import OrbitSpec
from gas_core.presets import PaperDefaults
from gas_core.render.framing import OrbitFraming
from gas_core.render.normalize import Normalization
from gas_core.render.normals import NormalMapRenderer
from gas_core.render.scan import ScanRenderer, render_orbit
from gas_core.segment import MaskingConfig
from pipelines.video_quality import SegmentGates
from pipelines.config import load_config
from pipelines.datasets.common import ScanReadError, SubjectRef
from pipelines.datasets.layouts import dataset_layout, read_groundtruth
from pipelines.datasets.units import UNITS_SETTINGS, resolve_scan_units
from pipelines.quality import QualityGates, QualityValues, evaluate_gates, measure_quality
from shards.manifest import clean_stale_tmp, existing_keys
from shards.remote import Folder, as_folder
from shards.schema import (
    SCHEMA_MEMBER,
    SUBJECT_SCHEMA,
    VIDEO_SCHEMA,
    SampleSchema,
    SubjectSample,
    encode,
    make_key,
    read_schema_tag,
    schema_for,
)
from shards.writer import ShardWriter

__all__ = [
    "KeypointConfig",
    "ShardConfig",
    "PreprocessConfig",
    "VideoConfig",
    "VideoKeypointConfig",
    "load_preprocess_config",
    "SubjectPlan",
    "SubjectReport",
    "PackReport",
    "plan_subjects",
    "preprocess_subject",
    "pack_staged_subjects",
    "STAGING_DIRNAME",
    "REJECTED_DIRNAME",
]

logger = logging.getLogger(__name__)

STAGING_DIRNAME = "_staging"
#: Folder under the output holding the complete samples of subjects rejected by the quality gates.
REJECTED_DIRNAME = "_rejected"


# --------------------------------------------------------------------------------------- config
#: Keypoint sources (:class:`KeypointConfig`, :class:`VideoKeypointConfig`): a pose estimator (MediaPipe,
#: or the ultralytics weights when set) or the ground truth of synthetic data.
VIDEO_KEYPOINT_SOURCES = ("estimator", "groundtruth")


@dataclass(frozen=True)
class KeypointConfig:
    """Where the 2D keypoints for fitting come from.

    ``detector_weights``: a local ultralytics pose model (COCO-17). When it is None, ``source``
    decides: ``"groundtruth"`` (the default for scans): the dataset's ground-truth COCO keypoints
    (synthetic data ships them), projected into each view with ``noise_px`` Gaussian pixel noise and
    ``drop_prob`` of points dropped; ``"estimator"``: MediaPipe Pose on each rendered view
    (:class:`gas_core.segment.MediaPipeKeypoints`, offline, no weights).
    """

    detector_weights: str | None = None
    noise_px: float = 0.0
    drop_prob: float = 0.0
    seed: int = 0
    source: str = "groundtruth"

    def __post_init__(self) -> None:
        if self.source not in VIDEO_KEYPOINT_SOURCES:
            raise ValueError(f"keypoints.source must be one of {VIDEO_KEYPOINT_SOURCES}, got {self.source!r}")


@dataclass(frozen=True)
class ShardConfig:
    """Shard naming and limits: ``{prefix}-000000.tar`` holding at most ``max_count`` samples / ``max_size`` bytes.

    ``prefix`` None names shards after their schema: ``subjects-*.tar`` for scans, ``videos-*.tar`` for videos.
    """

    prefix: str | None = None
    max_count: int = 64
    max_size: int = 2 << 30


@dataclass(frozen=True)
class VideoKeypointConfig(KeypointConfig):
    """Where the 2D keypoints of video frames come from: the fields of :class:`KeypointConfig`, with
    more noise and dropped points by default.

    ``source``: ``"estimator"`` (default): MediaPipe Pose in the tracked person's box (the same run as
    the masks when the masks come from MediaPipe; offline, no weights), or the local ultralytics pose
    model (COCO-17) of ``detector_weights`` when that is set; ``"groundtruth"``: the ground-truth
    keypoints of synthetic videos, with ``noise_px`` Gaussian pixel noise and ``drop_prob`` of points
    dropped; only for measuring the fitter alone (real videos then fail with a message naming this setting).
    """

    source: str = "estimator"
    noise_px: float = 3.0
    drop_prob: float = 0.05


@dataclass(frozen=True)
class VideoConfig:
    """How videos (monocular and multi-view) become ``video`` segments.

    Frames are decoded at ``fps`` (constant rate; frame folders are taken to run at ``frames_fps``)
    with the longer side at most ``max_side`` pixels, cut into segments of ``segment_frames`` frames
    (a last, shorter segment is kept when it has ``min_segment_frames``; a video with fewer frames than
    that fails as too short), and each segment is cropped to a square of ``crop_size`` pixels around
    the person (the union of its boxes, ``crop_margin`` of its size added per side; the camera follows
    the crop). A monocular segment in which more than ``max_missing_fraction`` of the frames have no
    person (or several people the tracker cannot tell apart) is dropped with the reason.
    ``masks``: :class:`gas_core.segment.MaskingConfig`; ``fit``: the per-segment monocular SMPL fit;
    ``gates``: the segment quality gates (:class:`pipelines.video_quality.SegmentGates`): a segment
    outside them is rejected with the reason, never packed.
    ``store_normals``: render the fitted body's normal map of every image into the segment.
    Multi-view video keeps ``multiview_cameras`` cameras (evenly spaced among the capture's, by name
    order) and cuts ``multiview_segment_frames`` synchronised frames per segment; the dataset's masks
    and SMPL are used as they are. ``multiview_fps``: the rate of the frames as released, recorded in
    each segment (not used to resample; MVHumanNet's frame ticks step by 5, and the default assumes
    25 fps captures: set it for your data).
    """

    fps: float = 30.0
    frames_fps: float = 30.0
    max_side: int = 1024
    segment_frames: int = 120
    min_segment_frames: int = 20
    crop_size: int = 512
    crop_margin: float = 0.1
    max_missing_fraction: float = 0.05
    masks: MaskingConfig = MaskingConfig()
    keypoints: VideoKeypointConfig = VideoKeypointConfig()
    gates: SegmentGates = SegmentGates()
    fit: MonocularFitConfig = MonocularFitConfig()
    store_normals: bool = True
    multiview_cameras: int = 8
    multiview_segment_frames: int = 30
    multiview_fps: float = 5.0

    def __post_init__(self) -> None:
        for name in ("fps", "frames_fps"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"video.{name} must be > 0, got {getattr(self, name)}")
        for name in ("max_side", "segment_frames", "min_segment_frames", "crop_size", "multiview_cameras",
                     "multiview_segment_frames"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"video.{name} must be >= 1, got {getattr(self, name)}")
        if self.min_segment_frames > self.segment_frames:
            raise ValueError(f"video.min_segment_frames ({self.min_segment_frames}) must be <= "
                             f"video.segment_frames ({self.segment_frames})")
        if not 0.0 <= float(self.crop_margin) < 1.0:
            raise ValueError(f"video.crop_margin must be in [0, 1), got {self.crop_margin}")
        if not 0.0 <= float(self.max_missing_fraction) <= 1.0:
            raise ValueError(f"video.max_missing_fraction must be in [0, 1], got {self.max_missing_fraction}")

    @classmethod
    def tiny(cls) -> "VideoConfig":
        """CPU preset: 256 px decode, 16-frame segments of 128 px crops, short fits, background masks."""
        return cls(max_side=256, segment_frames=16, min_segment_frames=8, crop_size=128,
                   masks=MaskingConfig.tiny(), fit=MonocularFitConfig.tiny(), multiview_cameras=4,
                   multiview_segment_frames=8)


@dataclass(frozen=True)
class PreprocessConfig(PaperDefaults):
    """Everything the scan preprocessing needs; presets :meth:`tiny` (CPU, seconds) and :meth:`paper`.

    ``units``: the length unit of the raw scans, ``"auto"`` (default: inferred from each scan's height,
    metres, centimetres or millimetres, whichever makes it 0.5-2.6 m tall) or ``"m"`` / ``"cm"`` /
    ``"mm"`` (applied as given); the scale applied goes into each sample's ``meta["extra"]["units"]``
    (:mod:`pipelines.datasets.units`). ``framing``: how far the orbit's cameras stand from each subject
    (:class:`gas_core.render.framing.OrbitFraming`; default ``"contain"``: ``orbit.distance``, or
    farther when the subject would not fit in every view).
    ``target_height``: rescale each scan to this height in metres (None keeps metric scale).
    ``body_model_path``: folder with ``SMPL_NEUTRAL.pkl`` (None: ``$GAS_BODY_MODEL_PATH`` or the
    open body model). ``workers``: subjects processed concurrently by the flow. ``gates``: the
    quality bounds a subject must meet to be packed (:class:`pipelines.quality.QualityGates`).
    ``video``: the settings of video datasets (``tiktok``, ``mvhumannet``; :class:`VideoConfig`); the
    scan settings above do not apply to them, except ``shards``, ``body_model_path`` and ``workers``.

    Preset ``paper()`` (the defaults): the paper's setting: 20 views at 1024x1024.
    """

    orbit: OrbitSpec = OrbitSpec()
    framing: OrbitFraming = OrbitFraming()
    units: Literal["auto", "m", "cm", "mm"] = "auto"
    target_height: float | None = None
    keypoints: KeypointConfig = KeypointConfig()
    fit: FitConfig = FitConfig()
    shards: ShardConfig = ShardConfig()
    gates: QualityGates = QualityGates()
    video: VideoConfig = VideoConfig()
    body_model_path: str | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if self.units not in UNITS_SETTINGS:
            raise ValueError(f"units must be one of {UNITS_SETTINGS}, got {self.units!r}")

    @classmethod
    def tiny(cls) -> "PreprocessConfig":
        """A CPU preset for tests and demos: 8 views at 256x256, short fits."""
        return cls(orbit=OrbitSpec(num_views=8, width=256, height=256), fit=FitConfig(keypoint_iterations=120, surface_iterations=30),
                   gates=QualityGates.tiny(), video=VideoConfig.tiny())


def load_preprocess_config(path: Path | None = None, *, preset: Literal["tiny", "paper"] = "paper",
                           overrides: list[str] | tuple[str, ...] = ()) -> PreprocessConfig:
    """Build a config: ``preset``, then the YAML file's fields (nested mappings), then ``KEY=VALUE`` overrides
    (see :func:`pipelines.config.load_config`)."""
    return load_config(PreprocessConfig, path, preset=preset, overrides=overrides)


# --------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class SubjectPlan:
    """What a run will do: subjects found, those already done (manifest or staged), those rejected by an
    earlier run and still outside the gates (``rejected``: their reports), those to process."""

    total: int
    done: tuple[SubjectRef, ...]
    todo: tuple[SubjectRef, ...]
    staging_dir: Path | str  # a Path for a local out_dir, a URL (``s3://...``) otherwise
    rejected: tuple["SubjectReport", ...] = ()
    rejected_dir: Path | str | None = None


def plan_subjects(dataset: str, raw_root: Path, out_dir: Path | str, *, limit: int | None = None,
                  gates: QualityGates | None = None) -> SubjectPlan:
    """Discover ``dataset``'s subjects under ``raw_root`` and split them into done / rejected / to do.

    A subject is done when its key is in ``out_dir``'s manifest or a complete staged folder exists.
    A subject rejected by an earlier run (``<out_dir>/_rejected/<key>/``) is judged again by ``gates``
    (default :class:`QualityGates`) from the quality values in its ``meta.json``: accepted now, it is
    moved to staging (done); still outside the gates, it is reported rejected without being
    processed again; if its raw files changed after it was rejected, it is processed again.
    ``limit`` caps the number of subjects considered (in discovery order). ``out_dir`` is a local
    folder or a URL (``s3://bucket/subjects``): staging and rejected samples live beside the shards,
    so the tasks of a run may run on other hosts.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    gates = QualityGates() if gates is None else gates
    layout = dataset_layout(dataset)
    refs = layout.discover(Path(raw_root))
    if limit is not None:
        refs = refs[:limit]
    out = as_folder(out_dir)
    out.makedirs(STAGING_DIRNAME)
    done_keys = existing_keys(out) | staged_keys(out.child(STAGING_DIRNAME))
    done, todo, rejected = [], [], []
    for ref in refs:
        key = make_key(ref.dataset, ref.subject_id)
        if key in done_keys:
            done.append(ref)
            continue
        report = _review_rejected(ref, out, key, gates)
        if report is None:
            todo.append(ref)
        elif report.status == "rejected":
            rejected.append(report)
        else:
            done.append(ref)
    location = Path if out.local else str
    return SubjectPlan(total=len(refs), done=tuple(done), todo=tuple(todo),
                       staging_dir=location(out.join(STAGING_DIRNAME)), rejected=tuple(rejected),
                       rejected_dir=location(out.join(REJECTED_DIRNAME)))


def staged_keys(staging: Folder) -> set[str]:
    """Keys of the complete staged folders in ``staging``: a folder is complete when it holds its schema
    member (:meth:`shards.remote.Folder.write_folder` writes it last) or sample sub-folders that do."""
    keys = set()
    for name in staging.list(dirs=True):
        if not name.endswith(".tmp") and _staged_samples(staging, name):
            keys.add(name)
    return keys


def _review_rejected(ref: SubjectRef, out: Folder, key: str, gates: QualityGates) -> "SubjectReport | None":
    """Judge a subject rejected earlier by ``gates`` again.

    Returns None when there is nothing usable to review (no folder, unreadable meta, or raw files newer
    than the rejection: process the subject again); a "rejected" report when it still fails; an "ok"
    report after moving it to staging when it is accepted now.
    """
    folder, meta_name = f"{REJECTED_DIRNAME}/{key}", f"{REJECTED_DIRNAME}/{key}/meta.json"
    if not out.isfile(meta_name):
        return None
    try:
        meta = json.loads(out.read_bytes(meta_name))
        quality = QualityValues.from_dict(meta["extra"]["quality"])
        sources = [Path(path) for path in meta.get("source", [])]
        rejected_at = out.modified(meta_name)
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("%s: unreadable rejected sample, processing the subject again", out.join(folder))
        out.remove(folder, recursive=True)
        return None
    if any(not path.is_file() or path.stat().st_mtime > rejected_at for path in sources):
        logger.info("%s: raw files changed since it was rejected, processing it again", ref.subject_id)
        out.remove(folder, recursive=True)
        return None
    outcome = evaluate_gates(quality, gates, ref.subject_id)
    if not outcome.accepted:
        return SubjectReport(dataset=ref.dataset, subject_id=ref.subject_id, status="rejected",
                             error=f"rejected by quality gates: {outcome.describe()}",
                             rejected_by=",".join(outcome.failed), quality=quality.as_dict())
    meta["extra"]["gates"] = outcome.as_dict()
    members = {name: out.read_bytes(f"{folder}/{name}") for name in out.list(folder, dirs=False)}
    members["meta.json"] = json.dumps(meta).encode("utf-8")
    out.child(STAGING_DIRNAME).write_folder(key, members, last=SCHEMA_MEMBER)
    out.remove(folder, recursive=True)
    logger.info("%s: accepted now (%s), staged for packing", ref.subject_id, outcome.accepted_because or "passes the gates")
    return SubjectReport(dataset=ref.dataset, subject_id=ref.subject_id, status="ok", quality=quality.as_dict())


# --------------------------------------------------------------------------------------- one subject
@dataclass(frozen=True)
class _ItemReport:
    """The fields every per-item report of this stage starts with (:class:`SubjectReport`, and
    ``pipelines.preprocess_video.VideoReport``): the item, its ``status``, the ``error`` text and the
    ``worker`` it ran on."""

    dataset: str
    subject_id: str
    status: str
    error: str = ""
    worker: str = ""  # where it ran (set by the flow): a Dask worker's address, or host:pid


@dataclass(frozen=True)
class SubjectReport(_ItemReport):
    """Outcome of one subject.

    ``status``: "ok" (staged for packing), "failed" (bad input or an error: ``error`` names the file
    and the reason) or "rejected" (read and fitted, but outside the quality gates: ``rejected_by``
    lists the failed quality keys, ``error`` the values and bounds). Timings in seconds; ``quality``
    holds the measured :class:`pipelines.quality.QualityValues` (None where not measured).
    """

    render_s: float = 0.0
    fit_s: float = 0.0
    write_s: float = 0.0
    keypoint_error_px: float = float("nan")
    joint_error_cm: float = float("nan")  # against ground-truth joints, when the dataset has them
    rejected_by: str = ""
    quality: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def failed(cls, ref: SubjectRef, error: str) -> "SubjectReport":
        return cls(dataset=ref.dataset, subject_id=ref.subject_id, status="failed", error=error)

    def as_row(self) -> dict[str, Any]:
        """A flat dict for tables and artifacts: the fields, then one column per quality value (NaN and
        unmeasured values shown as empty)."""
        row = asdict(self)
        row.update(row.pop("quality"))
        return {key: table_value(value) for key, value in row.items()}


def table_value(value: Any) -> Any:
    """A report value as tables and artifacts show it: None and NaN as empty, floats to 4 decimals."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return round(value, 4) if isinstance(value, float) else value


_thread_state = threading.local()


def _thread_renderer(kind: type, width: int, height: int):
    """One renderer of ``kind`` (and so one GL context) per thread and image size, reused across subjects."""
    renderers = getattr(_thread_state, "renderers", None)
    if renderers is None:
        renderers = _thread_state.renderers = {}
    key = (kind, width, height)
    if key not in renderers:
        renderers[key] = kind(width=width, height=height)
    return renderers[key]


@lru_cache(maxsize=4)
def _body_model(path: str | None) -> BodyModel:
    return BodyModel(path)


def _keypoint_source(config: KeypointConfig, groundtruth: dict[str, Any] | None, ref: SubjectRef, normalization):
    if config.detector_weights:
        return UltralyticsPoseDetector(Path(config.detector_weights))
    if config.source == "estimator":
        from gas_core.segment import MediaPipeKeypoints

        try:
            return MediaPipeKeypoints()
        except ImportError as error:
            raise ScanReadError(f"{ref.path}: keypoints.source=estimator but {error}") from error
    if groundtruth is None or "coco17" not in groundtruth:
        raise ScanReadError(
            f"{ref.path}: no keypoint detector configured and no ground-truth keypoints for subject "
            f"{ref.subject_id}; set keypoints.detector_weights to a local ultralytics pose model"
        )
    points = normalization.apply(np.asarray(groundtruth["coco17"], dtype=np.float64))
    return ProjectedKeypoints(points, noise_px=config.noise_px, drop_prob=config.drop_prob, seed=config.seed)


def preprocess_subject(ref: SubjectRef, config: PreprocessConfig, staging_dir: Path,
                       rejected_dir: Path | None = None) -> SubjectReport:
    """Render, fit, measure and judge one subject; stage it (passed) or keep it aside (rejected).

    ``rejected_dir``: where the samples of rejected subjects go (default: ``_rejected`` beside
    ``staging_dir``). Returns the report: status "ok" (staged) or "rejected" (naming the failed gates
    and their values). Raises :class:`ScanReadError` (bad input: names the file and the reason) or any
    other error for unexpected failures; nothing is written unless everything succeeded.
    """
    layout = dataset_layout(ref.dataset)
    scan = layout.read(ref)
    scan_file = scan.source_paths[0] if scan.source_paths else Path(ref.path)
    units = resolve_scan_units(np.asarray(scan.mesh.vertices), config.units, scan_file)
    if units.scale != 1.0:
        scan.mesh.apply_scale(units.scale)  # the mesh was just read: scaling it in place to metres is safe
        logger.info("%s/%s: scan in %s (%.4g units tall, setting units=%s), scaled by %g to metres",
                    ref.dataset, ref.subject_id, units.unit, units.height_in_file, units.setting, units.scale)
    start = time.perf_counter()
    orbit = render_orbit(scan.mesh, config.orbit, renderer=_thread_renderer(ScanRenderer, config.orbit.width, config.orbit.height),
                         target_height=config.target_height, framing=config.framing)
    render_s = time.perf_counter() - start

    start = time.perf_counter()
    groundtruth = read_groundtruth(ref)
    source = _keypoint_source(config.keypoints, groundtruth, ref, orbit.normalization)
    images = [view.rgb for view in orbit.views]
    body = _body_model(config.body_model_path)
    scan_vertices = orbit.normalization.apply(np.asarray(scan.mesh.vertices))
    try:
        keypoints2d = source.detect(images, orbit.cameras)
        fit = fit_smpl_multiview(body, orbit.cameras, keypoints2d, scan_vertices=scan_vertices, config=config.fit)
    except ScanReadError:
        raise
    except ValueError as error:
        # The same subject fails the same way every time: report it as bad input, by file, not retried.
        raise ScanReadError(
            f"{scan_file}: the body model cannot be fitted to this scan ({error}); check that it is one whole "
            f"person, y up, and in the unit the units setting gives (now units={config.units}, applied: "
            f"{units.unit})") from error
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    normal_renderer = _thread_renderer(NormalMapRenderer, config.orbit.width, config.orbit.height)
    normals = normal_renderer.render_views(np.asarray(fit.vertices), np.asarray(body.faces), orbit.cameras)
    render_s += time.perf_counter() - start
    quality = _measure(orbit, normals, fit, body, scan_vertices, np.asarray(scan.mesh.faces), config)
    outcome = evaluate_gates(quality, config.gates, ref.subject_id)
    joint_error_cm = float("nan")
    if groundtruth is not None and "joints24" in groundtruth:
        truth = orbit.normalization.apply(np.asarray(groundtruth["joints24"], dtype=np.float64))
        joint_error_cm = float(np.linalg.norm(np.asarray(fit.joints) - truth, axis=-1).mean() / orbit.normalization.scale * 100)

    start = time.perf_counter()
    smpl = {key: np.asarray(value).reshape(shape).tolist() for key, value, shape in (
        ("betas", fit.params.betas, (-1,)), ("body_pose", fit.params.body_pose, (23, 3)),
        ("global_orient", fit.params.global_orient, (3,)), ("transl", fit.params.transl, (3,)))}
    smpl["scale"] = float(np.asarray(fit.params.scale).reshape(-1)[0])
    smpl["body_model"] = body.label
    sample = SubjectSample(
        views=np.stack(images),
        masks=np.stack([view.mask for view in orbit.views]),
        cameras=[camera.to_dict() for camera in orbit.cameras],
        smpl=smpl,
        # maps the raw file's coordinates (in its own unit) to the fitting frame
        normalization=Normalization(center=orbit.normalization.center / units.scale,
                                    scale=orbit.normalization.scale * units.scale).to_dict(),
        meta={"dataset": ref.dataset, "subject_id": ref.subject_id,
              "source": [str(path) for path in scan.source_paths],
              "extra": {"units": units.as_dict(), "orbit_distance_m": float(orbit.spec.distance),
                        "keypoint_error_px": float(fit.keypoint_error_px),
                        "joint_error_cm": None if np.isnan(joint_error_cm) else joint_error_cm,
                        "quality": quality.as_dict(), "gates": outcome.as_dict()}},
        normals=normals,
        keypoints=np.asarray(keypoints2d, dtype=np.float32),
    )
    staging = as_folder(staging_dir)
    rejected = as_folder(os.path.join(os.path.dirname(staging.location.rstrip("/")), REJECTED_DIRNAME)
                         if rejected_dir is None else rejected_dir)
    (staging if outcome.accepted else rejected).write_folder(sample.key, encode(sample), last=SCHEMA_MEMBER)
    if outcome.accepted:
        rejected.remove(sample.key, recursive=True)  # an earlier rejection, now superseded
    write_s = time.perf_counter() - start
    if outcome.failed:
        logger.warning("%s/%s outside the quality gates: %s%s", ref.dataset, ref.subject_id, outcome.describe(),
                       f" (packed: {outcome.accepted_because})" if outcome.accepted else "")
    return SubjectReport(dataset=ref.dataset, subject_id=ref.subject_id,
                         status="ok" if outcome.accepted else "rejected",
                         error="" if outcome.accepted else f"rejected by quality gates: {outcome.describe()}",
                         render_s=render_s, fit_s=fit_s, write_s=write_s,
                         keypoint_error_px=float(fit.keypoint_error_px), joint_error_cm=joint_error_cm,
                         rejected_by=",".join(outcome.failed), quality=quality.as_dict())


def _measure(orbit, normals: np.ndarray, fit, body: BodyModel, scan_vertices: np.ndarray, scan_faces: np.ndarray,
             config: PreprocessConfig) -> QualityValues:
    """The subject's quality values: scan masks against the fitted body's silhouettes (its normal maps are
    black outside the body), the fit's residuals and its rest-pose height."""
    params = fit.params
    rest = SMPLParams(betas=params.betas, body_pose=torch.zeros_like(params.body_pose),
                      global_orient=torch.zeros_like(params.global_orient), transl=torch.zeros_like(params.transl),
                      scale=params.scale)
    with torch.no_grad():
        rest_vertices = body(rest).vertices[0].double().cpu().numpy()
    return measure_quality(
        scan_masks=np.stack([view.mask for view in orbit.views]),
        body_masks=np.asarray(normals).max(axis=-1) > 0,
        reprojection_px=float(fit.keypoint_error_px),
        scan_vertices=scan_vertices, scan_faces=scan_faces,
        body_vertices=np.asarray(fit.vertices), body_faces=np.asarray(body.faces),
        rest_body_vertices=rest_vertices, betas=params.betas.detach().cpu().numpy(),
        seed=config.fit.seed,
    )


# --------------------------------------------------------------------------------------- pack
@dataclass(frozen=True)
class PackReport:
    """Shards written by one pack step."""

    shards: tuple[str, ...] = ()
    samples_written: int = 0
    samples_already_packed: int = 0

    def summary(self) -> str:
        return (f"{self.samples_written} samples packed into {len(self.shards)} shards"
                + (f", {self.samples_already_packed} already packed" if self.samples_already_packed else ""))


def _staged_samples(staging: Folder, name: str) -> list[str]:
    """The sample folders (names in ``staging``) of one staged folder: itself (a subject) or its sub-folders
    (the segments of a video); [] while it is incomplete."""
    if staging.isfile(f"{name}/{SCHEMA_MEMBER}"):
        return [name]
    return [f"{name}/{sub}" for sub in staging.list(name, dirs=True) if staging.isfile(f"{name}/{sub}/{SCHEMA_MEMBER}")]


def _staged_schema(staging: Folder, samples: list[str]) -> SampleSchema:
    """The one schema every staged sample declares (shards of one folder hold one schema)."""
    tags = {read_schema_tag({SCHEMA_MEMBER: staging.read_bytes(f"{name}/{SCHEMA_MEMBER}")}, where=staging.join(name))
            for name in samples}
    if len(tags) != 1:
        raise ValueError(f"staged samples declare several schemas {sorted(tags)}; write each kind to its own out_dir")
    name, version = tags.pop()
    return schema_for(name, version)


def pack_staged_subjects(staging_dir: Path | str, out_dir: Path | str, config: PreprocessConfig) -> PackReport:
    """Pack every complete staged sample into shards in ``out_dir`` and delete what was packed.

    A staged folder is one sample (a scan subject) or a group of samples packed together (the segments
    of one video, one sub-folder each); the schema is the one the samples declare (``subject`` or
    ``video``). Samples whose key is already in the manifest (a run killed after packing part of them)
    are not written twice; a staged folder is removed once all its samples are packed. Stale temporary
    files are cleaned first. Both folders may be local or URLs (``s3://...``).
    """
    staging, out = as_folder(staging_dir), as_folder(out_dir)
    names = staging.list(dirs=True)
    for stale in (name for name in staging.list() if name.endswith(".tmp")):
        staging.remove(stale, recursive=True)
    staged = {name: _staged_samples(staging, name) for name in names if not name.endswith(".tmp")}
    samples = [sample for group in staged.values() for sample in group]
    schema = _staged_schema(staging, samples) if samples else SUBJECT_SCHEMA
    prefix = config.shards.prefix or ("videos" if schema is VIDEO_SCHEMA else "subjects")
    clean_stale_tmp(out, prefix)
    packed = existing_keys(out)
    todo = [sample for sample in samples if sample.rsplit("/", 1)[-1] not in packed]
    already = len(samples) - len(todo)
    if todo:
        with ShardWriter(out, prefix, schema, max_count=config.shards.max_count,
                         max_size=config.shards.max_size) as writer:
            for name in todo:
                members: dict[str, Any] = {"__key__": name.rsplit("/", 1)[-1]}
                members.update({member: staging.read_bytes(f"{name}/{member}") for member in staging.list(name, dirs=False)})
                writer.write(members)
        shards = tuple(entry.file for entry in writer.closed_shards)
    else:
        shards = ()
    for name, group in staged.items():
        if group:  # complete: packed now or before
            staging.remove(name, recursive=True)
    return PackReport(shards=shards, samples_written=len(todo), samples_already_packed=already)
