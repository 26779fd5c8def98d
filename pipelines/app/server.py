"""The Gradio app (``gas app``): :class:`AppSettings`, :func:`build_app` (the Generate and Shards tabs) and
:func:`launch_app`.

Generate: a photo (optional mask, SMPL and camera JSON) -> novel views or novel poses (driven by an
uploaded pose file or MP4, or by a video segment from shards under a data root); one generation at a
time per device (:class:`pipelines.app.worker.GenerationWorker`; Gradio's queue shows the position of
waiting ones); the progress bar follows the generation's stages. Shards: what ``gas-shards inspect`` and
``verify`` report for a folder under a data root, a histogram per quality value, a searchable sample list,
a sample's contact sheet and ``meta.json``.

Safety: the app binds to 127.0.0.1 unless told otherwise; typed paths go through
:meth:`DataRoots.resolve` (no ``..``, nothing outside the roots, no symlink leading out); Gradio serves
files only from the data roots and the output folder (``allowed_paths``); uploads are limited to
``max_upload_mb`` and checked (:func:`pipelines.app.uploads.check_uploads`) before anything is queued.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.app.paths import DataRoots, PathRefused
from pipelines.app.shards_view import (
    SampleRow,
    histogram_image,
    inspect_location,
    list_samples,
    sample_sheet,
    verify_location,
)
from pipelines.app.uploads import IMAGE_SUFFIXES, POSE_SUFFIXES, UploadRefused, check_uploads
from pipelines.app.worker import GenerationRequest, GenerationWorker
from pipelines.generate import GenerateConfig, GenerateInputError, GenerateInputs, read_image_file, video_shard_poses
from shards.manifest import load_manifest
from shards.reader import ShardReadError
from shards.schema import VIDEO_SCHEMA, SchemaError

__all__ = ["AppSettings", "build_app", "close_app", "launch_app", "missing_estimator_settings"]

logger = logging.getLogger(__name__)

_MODES = {"novel views": "view", "novel poses": "pose"}
_SAMPLE_COLUMNS = ["key", "dataset", "subject", "mode", "shard"]


@dataclass(frozen=True)
class AppSettings:
    """What ``gas app`` serves.

    ``host`` / ``port``: where it listens (127.0.0.1: this machine only; port None: the first free one from
    7860). ``data_roots``: folders or ``s3://`` prefixes whose shards may be browsed and served.
    ``out_dir``: where generations and contact sheets are written (served too). ``nerf`` / ``diffusion``:
    checkpoints (None: the Generate tab says they are missing). ``config``: the base generation config.
    ``max_upload_mb``: the upload size limit.
    """

    host: str = "127.0.0.1"
    port: int | None = None
    data_roots: tuple[str, ...] = ()
    out_dir: Path = Path("out/app")
    nerf: Path | None = None
    diffusion: Path | None = None
    config: GenerateConfig = field(default_factory=GenerateConfig)
    max_upload_mb: int = 50

    def __post_init__(self) -> None:
        if self.port is not None and not 0 < int(self.port) < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if int(self.max_upload_mb) < 1:
            raise ValueError(f"max_upload_mb must be >= 1, got {self.max_upload_mb}")


def missing_estimator_settings(config: GenerateConfig) -> list[str]:
    """The estimator settings a photo without mask / SMPL+camera files needs and ``config`` lacks."""
    masking = config.estimators.masking
    missing = []
    if masking.detector_weights is None and masking.grounding_dino_config is None:
        missing.append("estimators.masking.detector_weights")
    if masking.sam_checkpoint is None:
        missing.append("estimators.masking.sam_checkpoint")
    if config.estimators.keypoint_weights is None:
        missing.append("estimators.keypoint_weights")
    return missing


def _message(error: BaseException) -> str:
    text = str(error).replace("pass --mask", "upload a mask").replace("pass --smpl and --camera",
                                                                      "upload SMPL and camera JSON files")
    return text.replace("(--poses)", "(upload one or pick a video segment)")


def _path_of(upload: Any) -> str | None:
    if upload is None or upload == "":
        return None
    return os.fspath(upload if isinstance(upload, (str, os.PathLike)) else getattr(upload, "name", upload))


class _App:
    """State and event handlers behind the Blocks (one per :func:`build_app`)."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.roots = DataRoots.from_paths(settings.data_roots)
        self.out_dir = Path(settings.out_dir).absolute()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(settings.max_upload_mb) * 2**20
        self.worker = None
        if settings.nerf is not None and settings.diffusion is not None:
            self.worker = GenerationWorker(settings.nerf, settings.diffusion, settings.config, self.out_dir / "generations")
        self._samples: dict[str, list[SampleRow]] = {}

    # ------------------------------------------------------------------ Generate
    def setup_note(self) -> str:
        lines = []
        if self.worker is None:
            lines.append("**Generation is off:** start the app with `--nerf CKPT --diffusion CKPT`.")
        missing = missing_estimator_settings(self.settings.config)
        if missing:
            lines.append("Upload a mask (or a photo with an alpha channel) and SMPL + camera JSON files: estimating "
                         "them needs " + ", ".join(f"`{name}`" for name in missing)
                         + " (`gas app --set KEY=FILE`).")
        else:
            lines.append("A missing mask, SMPL or camera is estimated from the photo.")
        config = self.settings.config
        lines.append(f"Device `{config.device}`, {config.size} px; one generation at a time, others wait in the queue.")
        return "\n\n".join(lines)

    def preview(self, photo: Any) -> Any:
        path = _path_of(photo)
        if path is None:
            return None
        try:
            image, _ = read_image_file(path)
        except GenerateInputError as error:
            gr.Warning(_message(str(error).replace(path, Path(path).name)))
            return None
        return image

    def video_folders(self) -> list[str]:
        folders = []
        for folder in self.roots.shard_folders():
            try:
                manifest = load_manifest(folder)
            except (ValueError, OSError):
                continue
            if manifest is not None and manifest.schema_name == VIDEO_SCHEMA.name:
                folders.append(folder)
        return folders

    def segments(self, folder: str) -> Any:
        if not folder:
            return gr.update(choices=[], value=None)
        try:
            rows = self._rows(self.roots.resolve(folder))
        except (PathRefused, ShardReadError, OSError, ValueError) as error:
            raise gr.Error(_message(error)) from None
        keys = [row.key for row in rows]
        return gr.update(choices=keys, value=keys[0] if keys else None)

    def generate(self, photo: Any, mask: Any, smpl: Any, camera: Any, mode: str, num_views: float, poses: Any,
                 segment_folder: str | None, segment_key: str | None, steps: float, seed: float, guidance: float,
                 progress: gr.Progress = gr.Progress()) -> tuple[str, str, str, str]:
        if self.worker is None:
            raise gr.Error("generation is off: start the app with --nerf CKPT --diffusion CKPT")
        if _path_of(photo) is None:
            raise gr.Error("upload a photo first")
        mode_name = _MODES.get(mode)
        if mode_name is None:
            raise gr.Error(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        poses_path = _path_of(poses)
        if mode_name == "pose" and poses_path is None and segment_folder and segment_key:
            try:
                folder = self.roots.resolve(segment_folder)
                (self.out_dir / "segments").mkdir(exist_ok=True)
                target = Path(tempfile.mkdtemp(prefix="segment-", dir=self.out_dir / "segments")) / "poses.npz"
                poses_path = str(video_shard_poses(folder, target, key=segment_key))
            except (PathRefused, GenerateInputError, ShardReadError, SchemaError, OSError) as error:
                raise gr.Error(_message(error)) from None
        inputs = GenerateInputs(image=_path_of(photo), mask=_path_of(mask), smpl=_path_of(smpl),
                                camera=_path_of(camera), poses=poses_path if mode_name == "pose" else None)
        request = GenerationRequest(inputs, mode=mode_name, num_views=int(num_views), steps=int(steps),
                                    seed=int(seed), guidance=float(guidance))
        try:
            config = request.config(self.settings.config)
            check_uploads(inputs, config, self.max_bytes)
            self._check_estimators(inputs)
            job = self.worker.submit(request)
        except (UploadRefused, ValueError) as error:
            raise gr.Error(_message(error)) from None
        while not job.future.done():
            fraction, text = job.describe()
            progress(fraction, desc=text)
            time.sleep(0.2)
        try:
            result, archive = job.result()
        except (GenerateInputError, ValueError, FileNotFoundError) as error:
            raise gr.Error(_message(str(error))) from None
        except Exception as error:  # shown in the page without a traceback; logged with one
            logger.exception("generation failed")
            raise gr.Error(f"generation failed: {type(error).__name__}: {error}") from None
        seconds = result.seconds.get("total", 0.0) if result.seconds else 0.0
        status = (f"**Done:** {result.num_frames} frames in {seconds:.1f} s "
                  f"({result.seconds_per_frame:.2f} s per frame) -> `{result.out_dir}`")
        return str(result.video), str(result.strip), str(archive), status

    def _check_estimators(self, inputs: GenerateInputs) -> None:
        missing = set(missing_estimator_settings(self.settings.config))
        name = Path(inputs.image).name
        if inputs.mask is None and missing & {"estimators.masking.detector_weights", "estimators.masking.sam_checkpoint"}:
            _, alpha = read_image_file(inputs.image)
            if alpha is None:
                raise UploadRefused(f"no mask was uploaded for {name} and it has no alpha channel; segmenting it needs "
                                    "estimators.masking.detector_weights and estimators.masking.sam_checkpoint "
                                    "(gas app --set KEY=FILE), or upload a mask")
        if inputs.smpl is None and "estimators.keypoint_weights" in missing:
            raise UploadRefused(f"no SMPL and camera files were uploaded for {name}; the monocular fit needs "
                                "estimators.keypoint_weights (gas app --set estimators.keypoint_weights=FILE), "
                                "or upload SMPL and camera JSON files")

    # ------------------------------------------------------------------ Shards
    def _rows(self, location: str) -> list[SampleRow]:
        if location not in self._samples:
            self._samples[location] = list_samples(location)
        return self._samples[location]

    def _location(self, folder: str) -> str:
        try:
            return self.roots.resolve(folder)
        except PathRefused as error:
            raise gr.Error(str(error)) from None

    def inspect(self, folder: str) -> tuple[str, dict[str, Any], Any, list[list[str]], Any]:
        location = self._location(folder)
        try:
            report = inspect_location(location)
            self._samples.pop(location, None)
            rows = self._rows(location)
        except (ShardReadError, SchemaError, ValueError, OSError) as error:
            raise gr.Error(f"{folder}: {error}") from None
        values: dict[str, list[float]] = {}
        for row in rows:
            for name, value in row.quality.items():
                values.setdefault(name, []).append(value)
        lines = [f"**{report['samples']} samples** in {len(report['shards'])} shards, "
                 f"{report['size_bytes'] / 2**20:.1f} MiB; schema {report['schema']} (from {report['from']})",
                 "datasets: " + (", ".join(f"{k}={v}" for k, v in report["datasets"].items()) or "-")]
        if report.get("modes"):
            lines.append("modes: " + ", ".join(f"{k}={v}" for k, v in report["modes"].items()))
        if report.get("gate_status"):
            lines.append("gates: " + ", ".join(f"{k}={v}" for k, v in report["gate_status"].items()))
        for name, row in report.get("quality", {}).items():
            lines.append(f"quality `{name}`: median {row['median']:.4g} (p05 {row['p05']:.4g}, p95 {row['p95']:.4g}), "
                         f"{len(row['outliers'])} outliers")
        histogram = histogram_image(values) if values else None
        table = [[getattr(row, column) for column in _SAMPLE_COLUMNS] for row in rows]
        keys = [row.key for row in rows]
        choice = gr.update(choices=keys, value=keys[0] if keys else None)
        return "\n".join(f"- {line}" for line in lines), report, histogram, table, choice

    def search(self, folder: str, query: str) -> tuple[list[list[str]], Any]:
        location = self._location(folder)
        try:
            rows = [row for row in self._rows(location) if row.matches(query or "")]
        except (ShardReadError, ValueError, OSError) as error:
            raise gr.Error(f"{folder}: {error}") from None
        keys = [row.key for row in rows]
        return ([[getattr(row, column) for column in _SAMPLE_COLUMNS] for row in rows],
                gr.update(choices=keys, value=keys[0] if keys else None))

    def show(self, folder: str, key: str | None) -> tuple[str | None, dict[str, Any] | None]:
        if not key:
            return None, None
        location = self._location(folder)
        try:
            path, meta = sample_sheet(location, key, self.out_dir / "sheets")
        except KeyError:
            raise gr.Error(f"{folder} holds no sample {key}") from None
        except (ShardReadError, SchemaError, ValueError, OSError) as error:
            raise gr.Error(f"{folder} sample {key}: {error}") from None
        return str(path), meta

    def pick(self, evt: gr.SelectData) -> Any:
        row = evt.row_value if evt.row_value else None
        return gr.update(value=row[0]) if row else gr.update()

    def verify(self, folder: str) -> tuple[str, str]:
        location = self._location(folder)
        try:
            good, text = verify_location(location)
        except (ShardReadError, ValueError, OSError) as error:
            raise gr.Error(f"{folder}: {error}") from None
        return ("**All good.**" if good else "**Problems found** (below)."), text


def build_app(settings: AppSettings) -> gr.Blocks:
    """The Blocks of the app (not yet launched); :func:`launch_app` serves it."""
    app = _App(settings)
    config = settings.config
    folders = app.roots.shard_folders()
    with gr.Blocks(title="GAS") as blocks:
        blocks.gas_app = app  # the handlers' state, for launch_app and tests
        gr.Markdown("# GAS: avatars from one image\nData roots: " + (", ".join(f"`{r}`" for r in app.roots.all) or
                                                                     "none (`--data-root DIR`)")
                    + f"; outputs in `{app.out_dir}`.")
        with gr.Tab("Generate", elem_id="tab-generate"):
            gr.Markdown(app.setup_note(), elem_id="setup-note")
            with gr.Row():
                with gr.Column(scale=1):
                    photo = gr.File(label="Photo (PNG/JPEG)", file_types=list(IMAGE_SUFFIXES), elem_id="photo")
                    preview = gr.Image(label="Photo", interactive=False, height=180, elem_id="photo-preview")
                    with gr.Accordion("Optional: mask, SMPL and camera", open=True):
                        mask = gr.File(label="Mask (same size as the photo)", file_types=list(IMAGE_SUFFIXES),
                                       elem_id="mask")
                        smpl = gr.File(label="SMPL JSON", file_types=[".json"], elem_id="smpl")
                        camera = gr.File(label="Camera JSON", file_types=[".json"], elem_id="camera")
                    mode = gr.Radio(list(_MODES), value="novel views", label="Mode", elem_id="mode")
                    num_views = gr.Slider(2, 60, value=config.num_views, step=1, label="Views (novel views)")
                    with gr.Accordion("Driving poses (novel poses)", open=False):
                        poses = gr.File(label="Pose file (JSON/NPZ) or video (MP4)", file_types=list(POSE_SUFFIXES),
                                        elem_id="poses")
                        segment_folder = gr.Dropdown(app.video_folders(), value=None, allow_custom_value=True,
                                                     label="...or a video shard folder under a data root")
                        segment_key = gr.Dropdown([], value=None, allow_custom_value=True, label="Video segment")
                    with gr.Row():
                        steps = gr.Slider(1, 50, value=config.sampling.steps, step=1, label="Steps")
                        seed = gr.Number(value=config.sampling.seed, precision=0, label="Seed")
                    guidance = gr.Slider(0.0, 5.0, value=config.guidance.view_max, step=0.1,
                                         label="Guidance (peak scale)")
                    run = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Column(scale=2):
                    status = gr.Markdown(elem_id="status")
                    video = gr.Video(label="Result", elem_id="result-video", autoplay=True, loop=True, height=360)
                    strip = gr.Image(label="Strip: NeRF, normal maps, output", elem_id="strip", type="filepath",
                                     interactive=False)
                    download = gr.File(label="Frames + generation.json (ZIP)", elem_id="download")
            photo.change(app.preview, photo, preview, api_name=False)
            segment_folder.change(app.segments, segment_folder, segment_key, api_name=False)
            run.click(app.generate, [photo, mask, smpl, camera, mode, num_views, poses, segment_folder, segment_key,
                                     steps, seed, guidance], [video, strip, download, status], api_name="generate",
                      concurrency_limit=1, concurrency_id=f"generate-{config.device}")
        with gr.Tab("Shards", elem_id="tab-shards"):
            with gr.Row():
                folder = gr.Dropdown(folders, value=folders[0] if folders else None, allow_custom_value=True,
                                     label="Shard folder (under a data root, or s3://...)", scale=4, elem_id="folder")
                inspect = gr.Button("Inspect", variant="primary", scale=1, elem_id="inspect-button")
                verify = gr.Button("Verify", scale=1, elem_id="verify-button")
            with gr.Row():
                summary = gr.Markdown(elem_id="summary")
                histogram = gr.Image(label="Quality values", interactive=False, height=260)
            verdict = gr.Markdown()
            with gr.Row():
                with gr.Column(scale=2):
                    query = gr.Textbox(label="Search samples (key, dataset, subject, mode, shard)", elem_id="search")
                    table = gr.Dataframe(headers=_SAMPLE_COLUMNS, interactive=False, label="Samples", max_height=320)
                    key = gr.Dropdown([], value=None, allow_custom_value=True, label="Sample", elem_id="sample")
                with gr.Column(scale=3):
                    sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False, elem_id="sheet")
                    meta = gr.JSON(label="meta.json", max_height=240)
            with gr.Accordion("Full reports", open=False):
                report = gr.JSON(label="gas-shards inspect", max_height=400)
                verify_text = gr.Textbox(label="gas-shards verify", lines=6, interactive=False)
            inspect.click(app.inspect, folder, [summary, report, histogram, table, key], api_name="inspect")
            verify.click(app.verify, folder, [verdict, verify_text], api_name="verify")
            query.submit(app.search, [folder, query], [table, key], api_name="search")
            key.change(app.show, [folder, key], [sheet, meta], api_name="show_sample")
            table.select(app.pick, None, key, api_name=False)
    return blocks


def launch_app(settings: AppSettings) -> tuple[gr.Blocks, str]:
    """Serve :func:`build_app` on ``settings.host:port`` from a background thread; returns (the Blocks, its
    URL). ``blocks.block_thread()`` waits on it; :func:`close_app` stops it."""
    blocks = build_app(settings)
    app: _App = blocks.gas_app
    allowed = [str(root) for root in app.roots.local] + [str(app.out_dir)]
    blocks.queue(default_concurrency_limit=4)
    _, url, _ = blocks.launch(server_name=settings.host, server_port=settings.port, prevent_thread_lock=True,
                              allowed_paths=allowed, max_file_size=f"{int(settings.max_upload_mb)}mb",
                              show_error=False, quiet=True, footer_links=["api"], ssr_mode=False)
    logger.info("GAS app on %s (data roots: %s; outputs: %s)", url, app.roots.describe(), app.out_dir)
    return blocks, url


def close_app(blocks: gr.Blocks) -> None:
    """Stop the server of :func:`launch_app` and release the generation models."""
    blocks.close()
    app: _App | None = getattr(blocks, "gas_app", None)
    if app is not None and app.worker is not None:
        app.worker.close()
