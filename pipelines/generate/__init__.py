"""Single-image generation (paper section 3.5): novel views and novel poses of a person from one image.

``gas generate IMAGE --out DIR`` runs the whole inference path:

1. **Inputs** (:func:`read_generation_inputs`): the reference image, its person mask, the SMPL fit
   (the project's SMPL dict: ``betas`` (10,), ``body_pose`` (23, 3), ``global_orient`` (3,),
   ``transl`` (3,) metres, ``scale``, ``body_model``) and the camera (the project's
   :class:`~gas_core.cameras.Camera` JSON). :func:`generate` first reads every given file
   (:func:`check_input_files`: decodes, sizes, JSON, the driving video's first frame) before any model
   loads; a bad file raises :class:`GenerateInputError` naming it. Without a mask file the person segmenter
   (:mod:`gas_core.segment`) is used, without SMPL and camera files the monocular fitter
   (:func:`gas_core.body.fit.monocular.fit_smpl_monocular`), given their local weight files.
2. **Targets**: view mode (:func:`reference_orbit`) — ``num_views`` cameras evenly spaced in azimuth
   around the body's vertical axis: the reference camera turned about it, so distance, elevation and
   intrinsics are the reference's and view 0 is the reference view; pose mode (:func:`drive_poses`) — a
   driving pose sequence under the reference camera, with the reference's body shape (cross
   re-enactment; ``pose.keep_driver_shape`` takes the driver's) and the driver's root trajectory
   moved to start at the reference's pelvis. In both modes frame 0 is the reference itself
   (the reference view / pose), which every sampling window holds; pose mode drops it from the output.
3. **Conditions**: the NeRF frames and SMPL normal maps of every target, rendered by the bake's
   :class:`pipelines.bake_nerf.ClipBaker` (the code that made the training clips), then the VAE
   latents (UNSCALED) of the NeRF frames and of the reference, the CLIP embedding of the reference.
4. **Sampling**: :func:`gas_core.diffusion.sample_latents` (EDM Euler, ``sampling.steps`` steps) with the
   paper's guidance: view mode triangular 1 -> 2 (back view) -> 1 for any frame count, pose mode a fixed
   2; sequences longer than ``sampling.window`` frames go through overlapping windows that all keep the
   reference frame, so the denoiser never sees more than ``window`` frames; decoding runs in chunks.
   The per-frame guidance scales are logged and recorded in ``generation.json`` (``guidance_scales``).
5. **Outputs** (each written atomically): ``frames/frame_0000.png`` ..., ``video.mp4``, ``strip.png``
   (rows: NeRF frames, normal maps, output), ``generation.json`` (inputs, checkpoints, resolved config,
   timings) and the per-frame ``cameras.json`` / ``smpl.json`` used.

Configuration: :class:`GenerateConfig` (presets :meth:`GenerateConfig.tiny` / :meth:`GenerateConfig.paper`,
YAML + ``--set key.sub=value`` through :func:`load_generate_config`).

Package layout (one job per module): :mod:`~pipelines.generate.config` (:class:`GenerateConfig` and its
parts), :mod:`~pipelines.generate.files` (input files, :class:`GenerateInputError`),
:mod:`~pipelines.generate.driving` (driving videos), :mod:`~pipelines.generate.estimators` (missing mask /
SMPL / camera), :mod:`~pipelines.generate.reference` (the reference read, checked and squared),
:mod:`~pipelines.generate.targets` (orbit and driven poses; the rotation maths is
:mod:`gas_core.body.geometry`), :mod:`~pipelines.generate.models` (diffusion model loading),
:mod:`~pipelines.generate.outputs` (written files), :mod:`~pipelines.generate.generator`
(:class:`SingleImageGenerator`), :mod:`~pipelines.generate.run` (:func:`generate`) and
:mod:`~pipelines.generate.cli` (``gas generate``, ``python -m pipelines.generate``).
"""

from __future__ import annotations

from gas_core.body.geometry import pelvis_positions  # re-exported (was defined here; tests import it from here)
from pipelines.generate.cli import build_parser, config_from_args, main_from_args
from pipelines.generate.config import (
    EstimatorConfig,
    GenerateConfig,
    GuidanceConfig,
    NeRFSettings,
    OutputConfig,
    PoseDriveConfig,
    ReferenceConfig,
    SamplingConfig,
    guidance_scales_for,
    load_generate_config,
    resolve_dtype,
)
from pipelines.generate.driving import driving_video_poses, is_driving_video, video_shard_poses
from pipelines.generate.estimators import ReferenceEstimator
from pipelines.generate.files import (
    GenerateInputError,
    GenerateInputs,
    PoseSequence,
    read_camera_file,
    read_image_file,
    read_mask_file,
    read_pose_sequence,
    read_smpl_file,
)
from pipelines.generate.generator import ProgressCallback, SingleImageGenerator
from pipelines.generate.models import load_diffusion_model
from pipelines.generate.outputs import GenerateResult
from pipelines.generate.reference import ReferenceInputs, check_input_files, prepare_reference, read_generation_inputs
from pipelines.generate.run import generate
from pipelines.generate.targets import drive_poses, reference_orbit

__all__ = [
    "GenerateConfig",
    "GenerateInputError",
    "GenerateInputs",
    "GenerateResult",
    "GuidanceConfig",
    "NeRFSettings",
    "OutputConfig",
    "PoseDriveConfig",
    "PoseSequence",
    "ReferenceConfig",
    "ReferenceEstimator",
    "ReferenceInputs",
    "EstimatorConfig",
    "SamplingConfig",
    "ProgressCallback",
    "SingleImageGenerator",
    "drive_poses",
    "generate",
    "guidance_scales_for",
    "load_diffusion_model",
    "load_generate_config",
    "main_from_args",
    "build_parser",
    "check_input_files",
    "config_from_args",
    "pelvis_positions",
    "prepare_reference",
    "read_camera_file",
    "read_generation_inputs",
    "read_image_file",
    "read_mask_file",
    "read_pose_sequence",
    "is_driving_video",
    "driving_video_poses",
    "video_shard_poses",
    "read_smpl_file",
    "reference_orbit",
    "resolve_dtype",
]
