"""The app's generation queue: one :class:`GenerationWorker` per device runs one generation at a time on
its own thread, which loads the models once and keeps them (the NeRF's GL context stays on that thread)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from pipelines.generate import (
    GenerateConfig,
    GenerateInputs,
    GenerateResult,
    SingleImageGenerator,
    driving_video_poses,
    is_driving_video,
)

__all__ = ["GenerationJob", "GenerationRequest", "GenerationWorker", "STAGES", "stage_fraction"]

logger = logging.getLogger(__name__)

#: The stages of one generation, in order, as :data:`pipelines.generate.ProgressCallback` names them.
STAGES = ("nerf", "encoding", "sampling", "decoding")
_LABELS = {"queued": "waiting for the device", "loading": "loading the models", "nerf": "NeRF + normal maps",
           "encoding": "encoding", "sampling": "sampling step", "decoding": "decoding", "writing": "writing"}


def stage_fraction(stage: str, done: int, total: int) -> float:
    """Overall progress in [0, 1]: each of :data:`STAGES` counts a quarter; before them 0, after them 1."""
    if stage in STAGES:
        return (STAGES.index(stage) + (done / total if total else 0.0)) / len(STAGES)
    return 1.0 if stage == "writing" else 0.0


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: the checked input files and the settings the page offers.

    ``mode``: "view" or "pose". ``num_views``: views of the orbit (view mode). ``steps`` / ``seed``: sampling.
    ``guidance``: the peak classifier-free guidance (view mode: the back view's, rising from 1 at the
    reference; pose mode: every frame's).
    """

    inputs: GenerateInputs
    mode: str = "view"
    num_views: int = 8
    steps: int = 3
    seed: int = 0
    guidance: float = 2.0

    def config(self, base: GenerateConfig) -> GenerateConfig:
        """``base`` with this request's settings (validated by :class:`GenerateConfig`: ValueError naming the field)."""
        return replace(base, mode=self.mode, num_views=int(self.num_views),
                       sampling=replace(base.sampling, steps=int(self.steps), seed=int(self.seed)),
                       guidance=replace(base.guidance, view_max=float(self.guidance), pose_scale=float(self.guidance)))


class GenerationJob:
    """A submitted generation: its output folder, its progress (stage, done, total) and its future."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.future: Future[tuple[GenerateResult, Path]] = Future()
        self._lock = threading.Lock()
        self._progress: tuple[str, int, int] = ("queued", 0, 1)
        #: when the worker began and ended this job (``time.time()`` seconds; None before)
        self.started_at: float | None = None
        self.finished_at: float | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._progress = (stage, int(done), int(total))

    @property
    def progress(self) -> tuple[str, int, int]:
        with self._lock:
            return self._progress

    def describe(self) -> tuple[float, str]:
        """(overall fraction in [0, 1], a line such as "sampling step 2/3")."""
        stage, done, total = self.progress
        label = _LABELS.get(stage, stage)
        detail = f" {done}/{total}" if stage in STAGES and total > 1 else ""
        return stage_fraction(stage, done, total), label + detail

    def result(self, timeout: float | None = None) -> tuple[GenerateResult, Path]:
        """(the generation's result, the ZIP of its frames and ``generation.json``); re-raises its error."""
        return self.future.result(timeout)


class GenerationWorker:
    """Runs generations one at a time on one thread, with the models loaded once.

    Args:
        nerf_checkpoint, diffusion_checkpoint: what :meth:`SingleImageGenerator.open` loads.
        config: the base config (preset, device, size, estimator weights); each request sets mode,
            views, steps, seed and guidance on it.
        out_dir: each generation writes into a new folder ``out_dir/<time>-<id>``; a failed one is removed.
    """

    def __init__(self, nerf_checkpoint: str | Path, diffusion_checkpoint: str | Path, config: GenerateConfig,
                 out_dir: str | Path) -> None:
        self.nerf_checkpoint = Path(nerf_checkpoint)
        self.diffusion_checkpoint = Path(diffusion_checkpoint)
        self.config = config
        self.out_dir = Path(out_dir)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gas-generate")
        self._generator: SingleImageGenerator | None = None

    def submit(self, request: GenerationRequest) -> GenerationJob:
        """Queue ``request``; the job's future holds the result or the error (nothing is left on disk then)."""
        config = request.config(self.config)  # bad settings fail here, before queueing
        folder = self.out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        job = GenerationJob(folder)
        inner = self._executor.submit(self._run, request, config, job)
        inner.add_done_callback(lambda done: _copy_outcome(done, job.future))
        return job

    def _run(self, request: GenerationRequest, config: GenerateConfig, job: GenerationJob) -> tuple[GenerateResult, Path]:
        job.started_at = time.time()
        try:
            if self._generator is None:
                job.update("loading", 0, 1)
                self._generator = SingleImageGenerator.open(self.nerf_checkpoint, self.diffusion_checkpoint, self.config)
            generator = self._generator
            generator.config = config
            inputs = request.inputs
            if config.mode == "pose" and inputs.poses is not None and is_driving_video(inputs.poses):
                job.update("loading", 0, 1)
                inputs = replace(inputs, poses=driving_video_poses(inputs.poses, job.out_dir / "driver", config))
            result = generator.generate(inputs, job.out_dir, progress=False, on_progress=job.update)
            job.update("writing", 0, 1)
            archive = _zip_outputs(result)
            job.update("writing", 1, 1)
            return result, archive
        except BaseException:
            shutil.rmtree(job.out_dir, ignore_errors=True)
            raise
        finally:
            job.finished_at = time.time()

    def close(self) -> None:
        """Finish the queued generations, then release the models (on the worker's thread, which owns them)."""
        def release() -> None:
            if self._generator is not None:
                generator, self._generator = self._generator, None
                generator.close()

        self._executor.submit(release)
        self._executor.shutdown(wait=True)


def _copy_outcome(done: Future, target: Future) -> None:
    if done.cancelled():
        target.cancel()
    elif done.exception() is not None:
        target.set_exception(done.exception())
    else:
        target.set_result(done.result())


def _zip_outputs(result: GenerateResult) -> Path:
    """``frames.zip`` next to the outputs: every frame PNG and ``generation.json`` (through a temp name)."""
    target = result.out_dir / "frames.zip"
    staging = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(staging, "w", compression=zipfile.ZIP_STORED) as archive:
        for frame in sorted(result.frames_dir.glob("*.png")):
            archive.write(frame, f"frames/{frame.name}")
        archive.write(result.out_dir / "generation.json", "generation.json")
    staging.replace(target)
    return target
