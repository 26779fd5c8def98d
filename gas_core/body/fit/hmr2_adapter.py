"""Optional back end: HMR2.0 (4DHumans, ``shubham-goel/4D-Humans``, package ``hmr2``), SMPL per frame.

The GAS paper takes the SMPL of its monocular videos from 4DHumans. HMR2.0 is not on PyPI and needs
licensed SMPL plus its own checkpoint, so it is never a hard dependency: :func:`is_available` says
whether ``hmr2`` imports, and :func:`run_hmr2` raises :class:`Hmr2UnavailableError` (a
``RuntimeError``) naming how to install it when it does not. The built-in route,
:func:`gas_core.body.fit.monocular.fit_smpl_monocular`, works without it and can refine HMR2.0's
output (pass :attr:`Hmr2Output.params` as its ``init``).

What the adapter converts (pure functions, tested on numbers):

* **Rotations.** HMR2.0 predicts rotation matrices, ``global_orient`` (N, 1, 3, 3) and ``body_pose``
  (N, 23, 3, 3); :class:`SMPLParams` holds axis-angle vectors (:func:`hmr2_to_smpl_params`).
  HMR2.0's camera frame is OpenCV's (x right, y down, z forward), like :class:`gas_core.cameras.Camera`.
* **Camera.** Per person crop HMR2.0 predicts a weak-perspective camera ``(s, tx, ty)``: a body point
  ``X`` lands at normalised crop coordinates ``s (X_xy + (tx, ty))`` in [-1, 1] over a square box of
  side ``b`` pixels centred at ``c``. A pinhole of focal length ``f`` centred in the W x H frame sees the
  same point at ``f (X_xy + T_xy) / T_z + (W/2, H/2)`` when the body sits at translation ``T``.
  Matching scale and offset gives ``T_z = 2 f / (s b)`` and ``T_xy = (tx, ty) + 2 (c - (W/2, H/2)) / (s b)``
  (:func:`weak_perspective_to_translation`). HMR2.0 poses SMPL without translation, so ``T`` is
  exactly :attr:`SMPLParams.transl`.
* **Focal length.** HMR2.0 is trained with a focal length of 5000 px for its 256 px crops; on a full
  frame its demo scales it to ``5000 / 256 * max(W, H)`` (:func:`hmr2_focal_length`), used by default.

The betas are SMPL's: with the open body model (not SMPL) the shape coefficients mean something
else, so use HMR2.0 with the licensed SMPL model (``GAS_BODY_MODEL_PATH``).

Install: ``git clone https://github.com/shubham-goel/4D-Humans && pip install -e 4D-Humans`` (it pulls
detectron2 and pytorch-lightning), place SMPL's ``SMPL_NEUTRAL.pkl`` where its config expects it and
download its checkpoint (``hmr2/logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt``)
to a local path; nothing here downloads.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from gas_core.body.fit.monocular import check_image_size
from gas_core.body.smpl import MAX_BETAS, NUM_BODY_JOINTS, SMPLParams
from gas_core.cameras import Camera

__all__ = [
    "Hmr2UnavailableError",
    "Hmr2Output",
    "INSTALL_HINT",
    "HMR2_TRAINING_FOCAL_PX",
    "HMR2_CROP_SIZE_PX",
    "is_available",
    "hmr2_focal_length",
    "weak_perspective_to_translation",
    "hmr2_to_smpl_params",
    "run_hmr2",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "HMR2.0 (4DHumans) is not installed (it is not on PyPI): git clone https://github.com/shubham-goel/4D-Humans, "
    "pip install -e 4D-Humans, put licensed SMPL's SMPL_NEUTRAL.pkl where its config expects it and download its "
    "checkpoint to a local file; or use the built-in gas_core.body.fit.monocular.fit_smpl_monocular"
)
#: Focal length HMR2.0 assumes for its crops, pixels.
HMR2_TRAINING_FOCAL_PX = 5000.0
#: Side of HMR2.0's square input crop, pixels.
HMR2_CROP_SIZE_PX = 256


class Hmr2UnavailableError(RuntimeError):
    """HMR2.0 was asked for but the ``hmr2`` package cannot be imported."""


def is_available() -> bool:
    """Whether the ``hmr2`` package (4DHumans) can be imported here."""
    return importlib.util.find_spec("hmr2") is not None


def hmr2_focal_length(image_size: tuple[int, int]) -> float:
    """HMR2.0's full-frame focal length in pixels for a (W, H) frame: ``5000 / 256 * max(W, H)``."""
    width, height = check_image_size(image_size)
    return HMR2_TRAINING_FOCAL_PX / HMR2_CROP_SIZE_PX * max(width, height)


def weak_perspective_to_translation(crop_camera: np.ndarray, box_center: np.ndarray, box_size: np.ndarray,
                                    image_size: tuple[int, int], focal_length_px: float) -> np.ndarray:
    """Full-frame translation of bodies from HMR2.0's per-crop weak-perspective cameras.

    Args:
        crop_camera: (N, 3) ``(s, tx, ty)``: scale (normalised crop units per metre) and offsets in metres.
        box_center: (N, 2) crop centres in frame pixels.
        box_size: (N,) side of the square crops in frame pixels.
        image_size: (W, H) of the frame, pixels.
        focal_length_px: the full frame's focal length, pixels (principal point at the frame centre).

    Returns:
        (N, 3) translation in metres, camera frame (OpenCV): ``T_z = 2 f / (s b)``,
        ``T_xy = (tx, ty) + 2 (c - (W/2, H/2)) / (s b)``.
    """
    crop_camera = np.asarray(crop_camera, dtype=np.float64)
    if crop_camera.ndim != 2 or crop_camera.shape[1] != 3:
        raise ValueError(f"crop_camera must have shape (N, 3), got {crop_camera.shape}")
    count = crop_camera.shape[0]
    box_center = np.asarray(box_center, dtype=np.float64)
    if box_center.shape != (count, 2):
        raise ValueError(f"box_center must have shape ({count}, 2), got {box_center.shape}")
    box_size = np.asarray(box_size, dtype=np.float64).reshape(-1)
    if box_size.shape != (count,):
        raise ValueError(f"box_size must have shape ({count},), got {box_size.shape}")
    width, height = check_image_size(image_size)
    if not focal_length_px > 0:
        raise ValueError(f"focal_length_px must be positive, got {focal_length_px}")
    for name, array in (("crop_camera", crop_camera), ("box_center", box_center), ("box_size", box_size)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite")
    if np.any(crop_camera[:, 0] <= 0):
        raise ValueError("crop_camera scales (first column) must be positive")
    if np.any(box_size <= 0):
        raise ValueError("box_size must be positive")
    pixels_per_metre = crop_camera[:, 0] * box_size  # s * b: twice the pixel size of one metre at depth T_z
    depth = 2.0 * focal_length_px / pixels_per_metre
    offset = 2.0 * (box_center - np.array([width / 2.0, height / 2.0])) / pixels_per_metre[:, None]
    return np.concatenate([crop_camera[:, 1:] + offset, depth[:, None]], axis=1)


def _rotation_matrices(name: str, value, joints: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 3 and joints == 1:
        array = array[:, None]
    if array.ndim != 4 or array.shape[1:] != (joints, 3, 3):
        raise ValueError(f"{name} must have shape (N, {joints}, 3, 3), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def hmr2_to_smpl_params(global_orient: np.ndarray, body_pose: np.ndarray, betas: np.ndarray, transl: np.ndarray,
                        *, dtype: torch.dtype = torch.float32) -> SMPLParams:
    """HMR2.0's SMPL output (rotation matrices) -> :class:`SMPLParams` (axis-angle), camera frame.

    Args:
        global_orient: (N, 1, 3, 3) or (N, 3, 3) root rotations.
        body_pose: (N, 23, 3, 3) joint rotations relative to their parents.
        betas: (N, K) SMPL shape coefficients, K <= 10.
        transl: (N, 3) translation, metres (from :func:`weak_perspective_to_translation`).
        dtype: floating dtype of the result.

    Returns:
        :class:`SMPLParams` with batch N and scale 1. Nearly orthonormal matrices (network outputs)
        are projected onto the closest rotation.
    """
    orient = _rotation_matrices("global_orient", global_orient, 1)
    pose = _rotation_matrices("body_pose", body_pose, NUM_BODY_JOINTS)
    count = orient.shape[0]
    if pose.shape[0] != count:
        raise ValueError(f"body_pose has {pose.shape[0]} rows, global_orient {count}")
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 2 or betas.shape[0] != count or betas.shape[1] > MAX_BETAS:
        raise ValueError(f"betas must have shape ({count}, K) with K <= {MAX_BETAS}, got {betas.shape}")
    transl = np.asarray(transl, dtype=np.float64)
    if transl.shape != (count, 3):
        raise ValueError(f"transl must have shape ({count}, 3), got {transl.shape}")
    # from_matrix orthonormalises each matrix (closest rotation) before converting.
    orient_vectors = Rotation.from_matrix(orient.reshape(-1, 3, 3)).as_rotvec().reshape(count, 3)
    pose_vectors = Rotation.from_matrix(pose.reshape(-1, 3, 3)).as_rotvec().reshape(count, NUM_BODY_JOINTS, 3)
    return SMPLParams(
        betas=torch.as_tensor(betas, dtype=dtype),
        body_pose=torch.as_tensor(pose_vectors, dtype=dtype),
        global_orient=torch.as_tensor(orient_vectors, dtype=dtype),
        transl=torch.as_tensor(transl, dtype=dtype),
        scale=torch.ones(count, dtype=dtype),
    )


@dataclass
class Hmr2Output:
    """HMR2.0's per-frame SMPL for one tracked person.

    Attributes:
        params: :class:`SMPLParams` with batch T, camera frame (world = camera), one row per frame.
        camera: the full-frame camera the translations refer to (OpenCV, at the origin).
        crop_camera: (T, 3) the raw weak-perspective cameras ``(s, tx, ty)``.
    """

    params: SMPLParams
    camera: Camera
    crop_camera: np.ndarray


def run_hmr2(frames: Sequence[np.ndarray], boxes: np.ndarray, *, checkpoint: Path | str, device: str = "cpu",
             focal_length_px: float | None = None, batch_size: int = 16) -> Hmr2Output:
    """Run HMR2.0 on one person per frame and convert its output.

    Args:
        frames: T RGB frames, (H, W, 3) uint8, all the same size.
        boxes: (T, 4) ``x0, y0, x1, y1`` pixel boxes of the person (e.g. from the person tracker).
        checkpoint: local path of HMR2.0's checkpoint (nothing is downloaded).
        device: torch device string.
        focal_length_px: the frame's focal length; default :func:`hmr2_focal_length`.
        batch_size: crops per forward pass.

    Returns:
        :class:`Hmr2Output`.

    Raises:
        Hmr2UnavailableError: when the ``hmr2`` package cannot be imported.
        ValueError: for bad arguments.
    """
    if not is_available():
        raise Hmr2UnavailableError(INSTALL_HINT)
    frames = [np.asarray(frame) for frame in frames]
    if not frames:
        raise ValueError("frames must hold at least one frame")
    shape = frames[0].shape
    for index, frame in enumerate(frames):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or frame.shape != shape:
            raise ValueError(f"frames[{index}] must be an (H, W, 3) uint8 RGB array of size {shape}")
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (len(frames), 4) or not np.all(np.isfinite(boxes)):
        raise ValueError(f"boxes must be a finite ({len(frames)}, 4) array, got {boxes.shape}")
    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint {checkpoint} is not a file: download HMR2.0's checkpoint and pass its path")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    height, width = shape[:2]
    focal = hmr2_focal_length((width, height)) if focal_length_px is None else float(focal_length_px)

    from hmr2.datasets.vitdet_dataset import ViTDetDataset
    from hmr2.models import load_hmr2

    model, model_cfg = load_hmr2(str(checkpoint))
    model = model.to(device).eval()
    orient, pose, betas, crop_camera, centers, sizes = [], [], [], [], [], []
    for first in range(0, len(frames), batch_size):
        # ViTDetDataset reads OpenCV (BGR) images and crops/normalises each box itself; one frame, one box each.
        chunk = torch.utils.data.ConcatDataset([
            ViTDetDataset(model_cfg, np.ascontiguousarray(frames[index][..., ::-1]), boxes[index:index + 1])
            for index in range(first, min(first + batch_size, len(frames)))
        ])
        for batch in torch.utils.data.DataLoader(chunk, batch_size=batch_size, shuffle=False):
            batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
            with torch.no_grad():
                output = model(batch)
            smpl = output["pred_smpl_params"]
            orient.append(smpl["global_orient"].cpu().numpy())
            pose.append(smpl["body_pose"].cpu().numpy())
            betas.append(smpl["betas"].cpu().numpy())
            crop_camera.append(output["pred_cam"].cpu().numpy())
            centers.append(batch["box_center"].cpu().numpy())
            sizes.append(batch["box_size"].cpu().numpy())
    crop = np.concatenate(crop_camera)
    transl = weak_perspective_to_translation(crop, np.concatenate(centers), np.concatenate(sizes), (width, height), focal)
    params = hmr2_to_smpl_params(np.concatenate(orient), np.concatenate(pose), np.concatenate(betas), transl)
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    camera = Camera(K=K, R=np.eye(3), t=np.zeros(3), width=width, height=height)
    logger.info("HMR2.0: %d frames", len(frames))
    return Hmr2Output(params=params, camera=camera, crop_camera=crop)
