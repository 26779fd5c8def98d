"""The :class:`SingleImageGenerator`: NeRF + normal-map conditions, encoding, sampling, writing one generation."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import Camera
from gas_core.diffusion import GASConditions, GASModel, GenerationMode, sample_latents, svd_added_time_ids
from gas_core.fileio import atomic_directory, atomic_write_bytes
from pipelines.bake_nerf import (
    BakeConfig,
    BakeInputError,
    ClipBaker,
    ClipConfig,
    ClipSource,
    ClipSpec,
    describe_checkpoint,
    resolve_device,
)
from pipelines.generate.config import GenerateConfig, guidance_scales_for, resolve_dtype
from pipelines.generate.estimators import ReferenceEstimator
from pipelines.generate.files import GenerateInputError, GenerateInputs, PoseSequence, read_pose_sequence
from pipelines.generate.models import load_diffusion_model
from pipelines.generate.outputs import (
    _SMPL_KEYS,
    GenerateResult,
    _json_ready,
    _png_bytes,
    _strip_image,
    _to_uint8_frames,
    _write_mp4,
)
from pipelines.generate.reference import ReferenceInputs, prepare_reference, read_generation_inputs
from pipelines.generate.targets import _flip_world_upright, drive_poses, reference_orbit

logger = logging.getLogger(__name__)

#: ``on_progress(stage, done, total)``: called as generation advances through its stages, in order
#: "nerf" (chunks of NeRF frames and normal maps), "encoding" (1 call), "sampling" (Euler steps) and
#: "decoding" (chunks of frames); ``done`` counts up to ``total`` within a stage.
ProgressCallback = Callable[[str, int, int], None]


def _report(on_progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    if on_progress is not None:
        on_progress(stage, done, total)


class SingleImageGenerator:
    """Holds the NeRF (inside a :class:`ClipBaker`), the diffusion model and the body model; generates
    any number of videos. Use as a context manager (it owns a GL context for normal maps).

    Args:
        baker: renders NeRF frames and normal maps (its ``config.clip`` size is replaced per call).
        model: the GAS diffusion model, already on ``device`` in its sampling dtype.
        config: the generation config.
        device: where the diffusion model runs.
        checkpoints: recorded in ``generation.json``.
    """

    def __init__(self, baker: ClipBaker, model: GASModel, config: GenerateConfig, device: torch.device,
                 checkpoints: Mapping[str, str] | None = None, estimator: ReferenceEstimator | None = None) -> None:
        self.baker = baker
        self.model = model
        self.config = config
        self.device = device
        self.checkpoints = dict(checkpoints or {})
        self.estimator = estimator

    @classmethod
    def open(cls, nerf_checkpoint: str | Path, diffusion_checkpoint: str | Path,
             config: GenerateConfig = GenerateConfig()) -> "SingleImageGenerator":
        """Load the NeRF and the diffusion model onto ``config.device``.

        The NeRF (a ``save_pretrained`` folder or a ``train-nerf`` checkpoint, the layouts
        ``gas_core.nerf.load_nerf`` reads) through the bake's :meth:`ClipBaker.open`, which also applies
        ``nerf.bf16``; the diffusion model through :func:`load_diffusion_model`, cast to ``config.dtype``.
        """
        try:
            device = resolve_device(config.device)
        except ValueError as error:
            raise ValueError(str(error).replace("render.device", "device")) from error
        dtype = resolve_dtype(config.dtype, device)
        bake_config = BakeConfig(clip=ClipConfig(width=config.size, height=config.size, num_frames=1, num_references=1),
                                 render=config.nerf.render_config(str(device)), body_model_path=config.body_model_path)
        try:
            info = describe_checkpoint(nerf_checkpoint)
        except (FileNotFoundError, ValueError, OSError) as error:
            raise GenerateInputError(f"NeRF checkpoint {nerf_checkpoint}: {error}") from error
        model = load_diffusion_model(diffusion_checkpoint, prefer_ema=config.prefer_ema,
                                     base_svd_dir=config.model.base_svd_dir)
        if dtype == torch.float32:
            model.to(device)
        else:
            model.to(device, dtype=dtype)
        baker = ClipBaker.open(info, bake_config)
        return cls(baker, model, config, device, {"nerf": str(info.path), "nerf_sha256": info.sha256,
                                                   "diffusion": str(Path(diffusion_checkpoint).absolute())})

    def close(self) -> None:
        self.baker.close()

    def __enter__(self) -> "SingleImageGenerator":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def body_model(self) -> BodyModel:
        return self.baker.body_model

    # ------------------------------------------------------------------ steps
    def targets(self, camera: Camera, smpl: Mapping[str, Any],
                poses: PoseSequence | None) -> tuple[list[Camera], list[dict[str, Any]]]:
        """Cameras and SMPL dicts of every frame (frame 0: the reference), at the output size."""
        config = self.config
        if config.mode == "view":
            vertices = self._vertices([smpl])[0]
            target = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
            cameras = reference_orbit(camera, target, config.num_views)
            return cameras, [dict(smpl) for _ in cameras]
        if poses is None:
            raise ValueError("pose mode needs a pose sequence (GenerateInputs.poses / --poses)")
        driven = drive_poses(smpl, poses, self.body_model, config.pose)
        frames = [dict(smpl), *driven]
        return [camera] * len(frames), frames

    @torch.no_grad()
    def _vertices(self, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.body_model(SMPLParams.from_records(items)).vertices.double().cpu().numpy()

    def render_conditions(self, image: np.ndarray, mask: np.ndarray, camera: Camera, smpl: Mapping[str, Any],
                          cameras: Sequence[Camera], frames_smpl: Sequence[Mapping[str, Any]],
                          progress: bool | None = None,
                          on_progress: ProgressCallback | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """NeRF frames uint8 (F, H, W, 3), their opacity (F, H, W) and normal maps (F, H, W, 3) of the targets.

        Rendered by :meth:`ClipBaker.bake` from a one-frame :class:`ClipSource` (the reference) in chunks of
        ``sampling.window`` frames, so that memory stays bounded for long sequences.
        """
        config = self.config
        source = ClipSource(dataset="generate", subject_id="reference", images=image[None], masks=mask[None],
                            cameras=(camera,), smpl=(smpl,))
        chunk = int(config.sampling.window)
        nerf, opacity, normals = [], [], []
        starts = range(0, len(cameras), chunk)
        _report(on_progress, "nerf", 0, len(starts))
        for done, start in enumerate(tqdm(starts, desc="NeRF + normal maps", unit="chunk", disable=None if progress is None else not progress), 1):
            stop = min(start + chunk, len(cameras))
            spec = ClipSpec(mode=config.mode, reference_index=0, frame_indices=(0,) * (stop - start),
                            cameras=tuple(cameras[start:stop]), smpl=tuple(frames_smpl[start:stop]))
            try:
                clip = self.baker.bake(source, spec)
            except BakeInputError as error:
                raise GenerateInputError(str(error)) from error
            nerf.append(clip.nerf)
            opacity.append(clip.nerf_masks)
            normals.append(clip.normals)
            _report(on_progress, "nerf", done, len(starts))
        return np.concatenate(nerf), np.concatenate(opacity), np.concatenate(normals)

    @torch.no_grad()
    def build_conditions(self, reference: np.ndarray, nerf: np.ndarray, normals: np.ndarray) -> GASConditions:
        """:class:`GASConditions` of one clip of F frames (as :func:`pipelines.train_diffusion.encode_batch`
        builds them for training, without dropout or noise augmentation): reference latent and NeRF
        latents UNSCALED, the CLIP embedding, normal maps in [0, 1], the mode, SVD's added time ids."""
        device, model = self.device, self.model

        def as_tensor(images: np.ndarray) -> torch.Tensor:  # uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]
            return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)

        sampling = self.config.sampling
        reference_pixels = as_tensor(reference[None]) * 2.0 - 1.0
        chunk = sampling.decode_chunk or sampling.window
        nerf_latents = model.encode_latents(as_tensor(nerf) * 2.0 - 1.0, chunk_size=chunk).float()
        mode = GenerationMode.VIEW if self.config.mode == "view" else GenerationMode.POSE
        return GASConditions(
            reference_latent=model.encode_latents(reference_pixels).float(),
            image_embedding=model.encode_image_embedding(reference_pixels).float(),
            nerf_latents=nerf_latents[None],
            normal_maps=as_tensor(normals)[None],
            mode=mode.one_hot(1, device=device),
            added_time_ids=svd_added_time_ids(1, fps=sampling.fps_id, motion_bucket_id=sampling.motion_bucket_id,
                                              device=device),
        )

    @torch.no_grad()
    def sample(self, conditions: GASConditions, progress: bool | None = None,
               guidance_scales: torch.Tensor | None = None, on_progress: ProgressCallback | None = None) -> np.ndarray:
        """Sample and decode: uint8 (F, H, W, 3) frames. Windows of ``sampling.window`` frames when F is larger.

        ``guidance_scales``: float (F,) per frame; None: the config's schedule (:func:`guidance_scales_for`).
        ``on_progress``: see :data:`ProgressCallback` (stages "sampling" and "decoding").
        """
        config = self.config
        sampling = config.sampling
        frames = int(conditions.nerf_latents.shape[1])
        scales = guidance_scales_for(config.mode, frames, config.guidance) if guidance_scales is None else guidance_scales
        if tuple(scales.shape) != (frames,):
            raise ValueError(f"guidance_scales must have shape ({frames},), got {tuple(scales.shape)}")
        generator = torch.Generator(device=self.device).manual_seed(int(sampling.seed))
        latents = sample_latents(self.model, conditions, num_steps=sampling.steps, guidance_scales=scales,
                                 window=sampling.window if frames > sampling.window else None,
                                 overlap=sampling.overlap, window_convention=sampling.window_convention,
                                 tiled_noise=sampling.tiled_noise, generator=generator,
                                 progress=bool(progress) if progress is not None else sys.stderr.isatty(),
                                 step_callback=None if on_progress is None else
                                 lambda done, total: on_progress("sampling", done, total))
        chunk = sampling.decode_chunk or sampling.window
        decoded = []
        starts = range(0, frames, chunk)
        for done, start in enumerate(tqdm(starts, desc="decoding", unit="chunk",
                                          disable=None if progress is None else not progress), 1):
            part = latents[0, start:start + chunk]
            decoded.append(_to_uint8_frames(self.model.decode_latents(part, num_frames=part.shape[0])))
            _report(on_progress, "decoding", done, len(starts))
        return np.concatenate(decoded)

    # ------------------------------------------------------------------ all of it
    def generate(self, inputs: GenerateInputs, out_dir: str | Path, *, progress: bool | None = None,
                 on_progress: ProgressCallback | None = None) -> GenerateResult:
        """Read ``inputs``, render the conditions, sample, write the outputs into ``out_dir`` (see the module docstring).

        ``progress``: tqdm bars (None: when stderr is a terminal); ``on_progress``: a :data:`ProgressCallback`.
        """
        config = self.config
        out_dir = Path(out_dir)
        timings: dict[str, float] = {}
        started = clock = time.perf_counter()
        if config.mode == "pose" and inputs.poses is None:
            raise GenerateInputError("pose mode needs a pose sequence file (--poses)")
        if config.mode == "view" and inputs.poses is not None:
            logger.warning("view mode ignores the pose sequence %s (set mode=pose to use it)", inputs.poses)
        poses = read_pose_sequence(inputs.poses) if config.mode == "pose" else None
        reference = read_generation_inputs(inputs.image, mask_path=inputs.mask, smpl_path=inputs.smpl,
                                           camera_path=inputs.camera, body_model=self.body_model, config=config,
                                           estimator=self.estimator)
        try:
            image, mask, camera = prepare_reference(reference.image, reference.mask, reference.camera, config.size,
                                                    config.reference)
        except ValueError as error:
            raise GenerateInputError(f"image file {inputs.image}: {error}") from error
        smpl = dict(reference.smpl)
        if config.mode == "view" and float(-camera.R[1] @ np.array([0.0, 1.0, 0.0])) < 0:
            logger.info("the reference camera's up points down the world y axis: turning the scene upright for the orbit")
            camera, smpl = _flip_world_upright(camera, smpl, self.body_model)
        try:
            cameras, frames_smpl = self.targets(camera, smpl, poses)
        except ValueError as error:
            raise GenerateInputError(f"{inputs.poses or inputs.camera}: {error}") from error
        timings["inputs"] = time.perf_counter() - clock

        clock = time.perf_counter()
        nerf, opacity, normals = self.render_conditions(image, mask, camera, smpl, cameras, frames_smpl, progress,
                                                       on_progress)
        timings["nerf_and_normals"] = time.perf_counter() - clock
        clock = time.perf_counter()
        _report(on_progress, "encoding", 0, 1)
        conditions = self.build_conditions(image, nerf, normals)
        _report(on_progress, "encoding", 1, 1)
        timings["encode"] = time.perf_counter() - clock
        clock = time.perf_counter()
        scales = guidance_scales_for(config.mode, len(cameras), config.guidance)
        output = self.sample(conditions, progress, guidance_scales=scales, on_progress=on_progress)
        timings["sample_and_decode"] = time.perf_counter() - clock

        keep = slice(1, None) if config.mode == "pose" else slice(None)  # pose mode: frame 0 is the reference pose
        output, nerf, normals = output[keep], nerf[keep], normals[keep]
        cameras, frames_smpl = cameras[keep], frames_smpl[keep]
        guidance = tuple(round(float(value), 6) for value in scales[keep])
        dropped = f"; the dropped reference frame had {float(scales[0]):.3g}" if config.mode == "pose" else ""
        logger.info("guidance scale per written frame (%s mode%s): %s", config.mode, dropped,
                    " ".join(f"{value:.3g}" for value in guidance))
        clock = time.perf_counter()
        result = self._write(out_dir, inputs, reference, output, nerf, normals, cameras, frames_smpl, timings)
        timings["write"] = time.perf_counter() - clock
        timings["total"] = time.perf_counter() - started
        result.seconds = dict(timings)
        result.guidance_scales = guidance
        atomic_write_bytes(out_dir / "generation.json", json.dumps(_json_ready(
            self._record(inputs, reference, len(output), timings, guidance)), indent=2).encode())
        logger.info("generated %d frames into %s in %.1f s (%.2f s per frame)", len(output), out_dir,
                    timings["total"], timings["total"] / max(len(output), 1))
        return result

    def _record(self, inputs: GenerateInputs, reference: ReferenceInputs, frames: int,
                timings: Mapping[str, float], guidance: Sequence[float]) -> dict[str, Any]:
        return {"mode": self.config.mode, "frames": frames, "inputs": {**dict(reference.sources),
                                                                       **({"poses": str(inputs.poses)} if inputs.poses else {})},
                "guidance_scales": list(guidance),
                "checkpoints": self.checkpoints, "body_model": self.body_model.label, "device": str(self.device),
                "dtype": str(next(self.model.denoiser.parameters()).dtype).removeprefix("torch."),
                "config": asdict(self.config), "seconds": dict(timings)}

    def _write(self, out_dir: Path, inputs: GenerateInputs, reference: ReferenceInputs, output: np.ndarray,
               nerf: np.ndarray, normals: np.ndarray, cameras: Sequence[Camera],
               frames_smpl: Sequence[Mapping[str, Any]], timings: Mapping[str, float]) -> GenerateResult:
        config = self.config
        out_dir.mkdir(parents=True, exist_ok=True)
        frames_dir = out_dir / "frames"
        with atomic_directory(frames_dir, replace_existing=True) as staging:
            for index, frame in enumerate(output):
                (staging / f"frame_{index:04d}.png").write_bytes(_png_bytes(frame))
        atomic_write_bytes(out_dir / "cameras.json", json.dumps([c.to_dict() for c in cameras], indent=1).encode())
        smpl_rows = [{key: _json_ready(item[key]) for key in (*_SMPL_KEYS, "body_model")} for item in frames_smpl]
        atomic_write_bytes(out_dir / "smpl.json", json.dumps(smpl_rows).encode())
        video = strip = None
        if config.output.write_strip:
            strip = out_dir / "strip.png"
            atomic_write_bytes(strip, _png_bytes(_strip_image([nerf, normals, output], config.output.strip_frames)))
        if config.output.write_video:
            video = out_dir / "video.mp4"
            _write_mp4(output, video, float(config.output.fps))
        return GenerateResult(out_dir=out_dir, frames_dir=frames_dir, video=video, strip=strip,
                              num_frames=int(len(output)))
