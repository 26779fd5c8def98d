"""The clip baker: renders one clip spec (NeRF frames, normal maps, resized ground truth) into a clip sample."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import Camera
from gas_core.render.normals import NormalMapRenderer
from pipelines.bake_nerf.checkpoint import CheckpointInfo, describe_checkpoint
from pipelines.bake_nerf.config import BakeConfig, resolve_device
from pipelines.bake_nerf.specs import BakeInputError, ClipSource, ClipSpec, clip_label
from shards.schema import ClipSample

_SMPL_PARAMETER_KEYS = ("betas", "body_pose", "global_orient", "transl", "scale")


def _resize(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> (N, height, width[, C]); area filter when shrinking, linear when enlarging."""
    if images.shape[1:3] == (height, width):
        return images
    shrinking = images.shape[2] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (width, height), interpolation=interpolation) for image in images])


def _resize_masks(masks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Masks uint8 (N, H, W) 0/255 resized and thresholded back to 0/255."""
    if masks.shape[1:3] == (height, width):
        return masks
    return np.where(_resize(masks, width, height) >= 128, 255, 0).astype(np.uint8)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (B, C, H, W) in [0, 1] -> uint8 (B, H, W, C) (C = 1 squeezed)."""
    array = (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _smpl_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """An SMPL dict with JSON-ready values (lists, floats, the body-model label)."""
    output = {key: np.asarray(item[key], dtype=np.float64).tolist() for key in _SMPL_PARAMETER_KEYS if key != "scale"}
    output["scale"] = float(np.asarray(item["scale"], dtype=np.float64).reshape(-1)[0])
    output["body_model"] = str(item["body_model"])
    return output


def _same_camera(a: Camera, b: Camera) -> bool:
    return a is b or (a.width == b.width and a.height == b.height and np.array_equal(a.K, b.K)
                      and np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t))


def _same_smpl(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a is b or all(np.array_equal(np.asarray(a[key]), np.asarray(b[key])) for key in _SMPL_PARAMETER_KEYS)


@dataclass
class BakeTimings:
    """Accumulated seconds per part of the bake and frames baked (for reports and benchmarks)."""

    frames: int = 0
    clips: int = 0
    nerf_s: float = 0.0
    normals_s: float = 0.0
    other_s: float = 0.0
    normals_reused: int = 0
    mlp_queries: int = 0


class ClipBaker:
    """Bakes :class:`ClipSpec` s of :class:`ClipSource` s into :class:`shards.schema.ClipSample` s.

    Holds the NeRF (on ``device``), the body model the subjects were fitted with, and one
    :class:`NormalMapRenderer` of the clip size (created on first use). Use as a context manager or call
    :meth:`close`. One baker serves one thread.

    Args:
        model: a :class:`gas_core.nerf.GeneralizableHumanNeRF`.
        body_model: the body model of the subjects' SMPL fits.
        config: sizes and render settings.
        checkpoint: recorded in every clip's ``meta["extra"]``.
        device: where the NeRF and the body model run.
    """

    def __init__(self, model: torch.nn.Module, body_model: BodyModel, config: BakeConfig, checkpoint: CheckpointInfo,
                 device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.body_model = body_model.to(device)
        self.config = config
        self.checkpoint = checkpoint
        self.device = device
        self.timings = BakeTimings()
        self._faces = body_model.faces.detach().cpu().numpy().astype(np.int64)
        self._normal_renderer: NormalMapRenderer | None = None

    @classmethod
    def open(cls, checkpoint: str | os.PathLike[str] | CheckpointInfo, config: BakeConfig) -> "ClipBaker":
        """Load the NeRF checkpoint (``render.bf16`` applied) and the body model; device resolved here."""
        from gas_core.nerf import GeneralizableHumanNeRF

        info = checkpoint if isinstance(checkpoint, CheckpointInfo) else describe_checkpoint(checkpoint)
        device = resolve_device(config.render.device)
        model = GeneralizableHumanNeRF.from_pretrained(info.model_dir, use_bf16=bool(config.render.bf16), low_cpu_mem_usage=False)
        return cls(model, BodyModel(config.body_model_path), config, info, device)

    def close(self) -> None:
        if self._normal_renderer is not None:
            self._normal_renderer.close()
            self._normal_renderer = None

    def __enter__(self) -> "ClipBaker":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ checks
    def check_source(self, source: ClipSource) -> None:
        """Raise :class:`BakeInputError` when ``source`` cannot be baked at this config's clip size."""
        name = f"subject {source.dataset}/{source.subject_id}"
        labels = {str(item.get("body_model", "")) for item in source.smpl}
        if labels != {self.body_model.label}:
            raise BakeInputError(f"{name} was fitted with body model {sorted(labels)}, but the bake loads "
                                 f"{self.body_model.label!r} ({self.body_model.path}); set body_model_path to the "
                                 "model the subject shards were made with")
        width, height = source.size
        clip = self.config.clip
        if width * clip.height != height * clip.width:
            raise BakeInputError(f"{name}: views are {width}x{height} but clips are {clip.width}x{clip.height}; "
                                 "the aspect ratios must match (set clip.width / clip.height)")

    # ------------------------------------------------------------------ baking
    def bake(self, source: ClipSource, spec: ClipSpec) -> ClipSample:
        """Render one clip: NeRF frames from the reference image, normal maps, resized ground truth.

        Returns a :class:`ClipSample` of ``len(spec.frame_indices)`` frames at the clip size; raises
        :class:`BakeInputError` for sources that cannot be baked (see :meth:`check_source`).
        """
        self.check_source(source)
        clip = self.config.clip
        width, height = clip.width, clip.height
        factor = width / source.size[0]
        started = time.perf_counter()
        reference_camera = source.cameras[spec.reference_index].scaled(factor)
        target_cameras = [camera.scaled(factor) for camera in spec.cameras]
        for camera in (reference_camera, *target_cameras):
            if (camera.width, camera.height) != (width, height):
                raise BakeInputError(f"subject {source.dataset}/{source.subject_id}: a camera scales to "
                                     f"{camera.width}x{camera.height}, not the clip's {width}x{height}")
        indices = np.asarray(spec.frame_indices)
        frames = _resize(source.images[indices], width, height)
        masks = _resize_masks(source.masks[indices], width, height)
        reference = _resize(source.images[spec.reference_index][None], width, height)
        reference_mask = _resize_masks(source.masks[spec.reference_index][None], width, height)
        self.timings.other_s += time.perf_counter() - started

        reference_params = SMPLParams.from_records([source.smpl[spec.reference_index]], device=self.device)
        target_params = SMPLParams.from_records(spec.smpl, device=self.device)
        started = time.perf_counter()
        nerf, opacity = self._render_nerf(source, spec.reference_index, reference_params, target_cameras, target_params)
        self.timings.nerf_s += time.perf_counter() - started
        normals = self.normal_maps(source, spec)

        self.timings.frames += len(indices)
        self.timings.clips += 1
        meta = {
            "dataset": source.dataset,
            "subject_id": source.subject_id,
            **({"clip_id": spec.clip_id(source)} if spec.clip_id(source) != clip_label(spec.mode, spec.reference_index) else {}),
            "mode": spec.mode,
            "reference_index": int(spec.reference_index),
            "frame_indices": [int(i) for i in spec.frame_indices],
            "source": dict(source.origin),
            "extra": {**self.checkpoint.clip_extra(), "clip_size": [width, height],
                      **({"reference_frame": source.source_frames[spec.reference_index % source.frames_per_camera],
                          "frames": [source.source_frames[i % source.frames_per_camera] for i in spec.frame_indices]}
                         if source.source_frames is not None else {})},
        }
        return ClipSample(
            frames=frames, nerf=nerf, normals=normals, masks=masks,
            reference=reference[0], reference_mask=reference_mask[0],
            cameras=[camera.to_dict() for camera in target_cameras], reference_camera=reference_camera.to_dict(),
            smpl=[_smpl_json(item) for item in spec.smpl], reference_smpl=_smpl_json(source.smpl[spec.reference_index]),
            meta=meta, nerf_masks=opacity if self.config.render.store_opacity else None,
        )

    def _reference_size(self) -> int:
        """Pixels of the reference given to the NeRF: ``render.reference_size``, else the model's training size."""
        size = self.config.render.reference_size
        return int(size if size is not None else self.model.config.image_size)

    @torch.no_grad()
    def _render_nerf(self, source: ClipSource, reference_index: int, reference_params: SMPLParams,
                     target_cameras: Sequence[Camera], target_params: SMPLParams) -> tuple[np.ndarray, np.ndarray]:
        """NeRF frames uint8 (N, H, W, 3) and opacities uint8 (N, H, W) of the targets, from one reference.

        The reference is resized to the NeRF's reference size and encoded once for all frames.
        """
        from gas_core.nerf import CameraBatch, PosedBody, ReferenceView

        device = self.device
        factor = self._reference_size() / source.size[0]
        camera = source.cameras[reference_index].scaled(factor)
        image = _resize(source.images[reference_index][None], camera.width, camera.height)
        mask = _resize_masks(source.masks[reference_index][None], camera.width, camera.height)
        view = ReferenceView(
            image=torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(0, 3, 1, 2).float().div_(255.0),
            mask=torch.from_numpy(np.ascontiguousarray(mask)).to(device)[:, None].float().div_(255.0),
            camera=CameraBatch.from_cameras([camera], device=device),
            body=PosedBody.from_body_model(self.body_model, reference_params))
        cameras = CameraBatch.from_cameras(target_cameras, device=device)
        bodies = PosedBody.from_body_model(self.body_model, target_params)
        batch = int(self.config.render.frames_per_batch)
        rgb_parts, opacity_parts = [], []
        encoding = self.model.encode_reference(view)
        for start in range(0, cameras.batch_size, batch):
            rows = slice(start, min(start + batch, cameras.batch_size))
            render = self.model.render(encoding, cameras.index(rows), bodies.index(rows),
                                       chunk_rays=self.config.render.chunk_rays)
            self.timings.mlp_queries += int(render.mlp_queries)
            rgb_parts.append(_to_uint8(render.rgb))
            opacity_parts.append(_to_uint8(render.opacity))
        return np.concatenate(rgb_parts), np.concatenate(opacity_parts)

    def normal_maps(self, source: ClipSource, spec: ClipSpec) -> np.ndarray:
        """The fitted body's normal maps of ``spec``'s frames at the clip size, uint8 (N, H, W, 3), official
        GAS encoding: the source's own maps when they have the clip size and the spec's cameras and SMPL are
        the source's, else rendered with :class:`NormalMapRenderer` from the posed body model."""
        clip = self.config.clip
        started = time.perf_counter()
        try:
            if (source.normals is not None and source.size == (clip.width, clip.height)
                    and all(_same_camera(spec.cameras[i], source.cameras[index])
                            and _same_smpl(spec.smpl[i], source.smpl[index]) for i, index in enumerate(spec.frame_indices))):
                self.timings.normals_reused += len(spec.frame_indices)
                return source.normals[np.asarray(spec.frame_indices)]
            cameras = [camera.scaled(clip.width / camera.width) for camera in spec.cameras]
            if self._normal_renderer is None:
                self._normal_renderer = NormalMapRenderer(width=clip.width, height=clip.height)
            if all(_same_smpl(item, spec.smpl[0]) for item in spec.smpl):  # one pose: pose and upload the mesh once
                with torch.no_grad():
                    vertices = self.body_model(SMPLParams.from_records(spec.smpl[:1], device=self.device)).vertices
                return self._normal_renderer.render_views(vertices[0].cpu().double().numpy(), self._faces, cameras)
            with torch.no_grad():
                vertices = self.body_model(SMPLParams.from_records(spec.smpl, device=self.device)).vertices
            return self._normal_renderer.render_frames(vertices.cpu().double().numpy(), self._faces, cameras)
        finally:
            self.timings.normals_s += time.perf_counter() - started
