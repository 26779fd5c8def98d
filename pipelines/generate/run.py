"""One generation from files (:func:`generate`): check every input file, preprocess a driving video, load, generate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipelines.generate.config import GenerateConfig
from pipelines.generate.driving import driving_video_poses, is_driving_video
from pipelines.generate.files import GenerateInputError, GenerateInputs, read_pose_sequence
from pipelines.generate.generator import ProgressCallback, SingleImageGenerator
from pipelines.generate.outputs import GenerateResult
from pipelines.generate.reference import check_input_files


def generate(inputs: GenerateInputs, out_dir: str | Path, *, nerf_checkpoint: str | Path,
             diffusion_checkpoint: str | Path, config: GenerateConfig = GenerateConfig(),
             progress: bool | None = None, on_progress: ProgressCallback | None = None) -> GenerateResult:
    """One generation from files: load the models (:meth:`SingleImageGenerator.open`), generate, clean up.

    Every input file is read and checked first (:func:`check_input_files`), and the checkpoints must
    exist, before a driving video is preprocessed or any model loads: a bad file fails in about a
    second with :class:`GenerateInputError` naming it. ``on_progress(stage, done, total)`` follows the
    stages (:data:`pipelines.generate.generator.ProgressCallback`).
    """
    check_input_files(inputs, config)
    for path, what in ((nerf_checkpoint, "NeRF checkpoint"), (diffusion_checkpoint, "diffusion checkpoint")):
        if not Path(path).exists():
            raise GenerateInputError(f"{what} {path} does not exist")
    if config.mode == "pose" and is_driving_video(inputs.poses):
        inputs = replace(inputs, poses=driving_video_poses(inputs.poses, Path(out_dir) / "driver", config))
        read_pose_sequence(inputs.poses)
    with SingleImageGenerator.open(nerf_checkpoint, diffusion_checkpoint, config) as generator:
        result = generator.generate(inputs, out_dir, progress=progress, on_progress=on_progress)
    return result
