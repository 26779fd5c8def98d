"""Optional back end: EasyMocap's multi-view SMPL fitting (zju3dv/EasyMocap), when it is installed.

The GAS paper fits SMPL to its scans with an off-the-shelf multi-view method. EasyMocap is the usual
choice; it is not on PyPI, so it is never a hard dependency: :func:`is_available` says whether it can
be imported, and :func:`fit_with_easymocap` raises :class:`EasyMocapUnavailableError` (a
``RuntimeError``) with install instructions when it cannot. The built-in fitter
(:func:`gas_core.body.fit.fitter.fit_smpl_multiview`) is the default everywhere.

What the adapter translates
---------------------------
* **Keypoints.** EasyMocap's SMPL pipeline works on OpenPose BODY-25. COCO-17 maps onto it directly
  for 17 of the 25 points; ``neck`` and ``mid_hip`` are the midpoints of the shoulders and hips (their
  confidence is the smaller of the two), and the six foot points get confidence 0
  (:func:`coco17_to_body25`).
* **Cameras.** Per view the (3, 4) projection matrix ``K [R | t]`` (our OpenCV convention is
  EasyMocap's too) and a person box from the visible keypoints (:func:`keypoint_boxes`).
* **Parameters out.** EasyMocap returns ``poses`` (1, 72) with the root rotation in ``Rh`` (1, 3)
  and translation ``Th`` (1, 3), applied to the posed mesh **about the model origin**:
  ``v = R(Rh) v_model + Th``. SMPL's ``global_orient`` rotates about the rest-pose root joint
  ``J0(betas)``: ``v = R (v_model - J0) + J0 + transl``. So ``global_orient = Rh`` (composed with
  ``poses[:3]`` when that is non-zero) and ``transl = Th + R J0 - J0`` (:func:`easymocap_to_smpl_params`).

Install: ``git clone https://github.com/zju3dv/EasyMocap && pip install -e EasyMocap`` plus its model
folder (``data/smplx/smpl/SMPL_NEUTRAL.pkl`` and ``J_regressor_body25.npy``), then pass that folder as
``model_path``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from gas_core.body.fit.keypoints import validate_keypoints2d
from gas_core.body.fit.triangulate import projection_matrices, triangulate_keypoints
from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import Camera

__all__ = [
    "EasyMocapUnavailableError",
    "INSTALL_HINT",
    "BODY25_FROM_COCO17",
    "is_available",
    "coco17_to_body25",
    "keypoint_boxes",
    "easymocap_to_smpl_params",
    "fit_with_easymocap",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "EasyMocap is not installed (it is not on PyPI): git clone https://github.com/zju3dv/EasyMocap, "
    "pip install -e EasyMocap, and download its SMPL model folder (smpl/SMPL_NEUTRAL.pkl, "
    "J_regressor_body25.npy); or use the built-in fitter gas_core.body.fit.fit_smpl_multiview"
)

#: BODY-25 index -> COCO-17 index for the points both skeletons share (others are derived or unseen).
BODY25_FROM_COCO17: dict[int, int] = {
    0: 0,  # nose
    2: 6, 3: 8, 4: 10,  # right shoulder, elbow, wrist
    5: 5, 6: 7, 7: 9,  # left shoulder, elbow, wrist
    9: 12, 10: 14, 11: 16,  # right hip, knee, ankle
    12: 11, 13: 13, 14: 15,  # left hip, knee, ankle
    15: 2, 16: 1, 17: 4, 18: 3,  # right eye, left eye, right ear, left ear
}
_BODY25_NECK, _BODY25_MID_HIP = 1, 8


class EasyMocapUnavailableError(RuntimeError):
    """EasyMocap was selected but cannot be imported."""


def is_available() -> bool:
    """Whether the ``easymocap`` package can be imported here."""
    return importlib.util.find_spec("easymocap") is not None


def coco17_to_body25(keypoints: np.ndarray) -> np.ndarray:
    """COCO-17 keypoints (..., 17, C) -> OpenPose BODY-25 (..., 25, C); C is 3 (2D + conf) or 4 (3D + conf).

    Neck and mid-hip are midpoints (confidence: the smaller of the pair); feet get confidence 0.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim < 2 or keypoints.shape[-2] != 17 or keypoints.shape[-1] not in (3, 4):
        raise ValueError(f"keypoints must have shape (..., 17, 3 or 4), got {keypoints.shape}")
    output = np.zeros(keypoints.shape[:-2] + (25, keypoints.shape[-1]))
    for body25, coco in BODY25_FROM_COCO17.items():
        output[..., body25, :] = keypoints[..., coco, :]
    for target, (a, b) in ((_BODY25_NECK, (5, 6)), (_BODY25_MID_HIP, (11, 12))):
        output[..., target, :-1] = 0.5 * (keypoints[..., a, :-1] + keypoints[..., b, :-1])
        output[..., target, -1] = np.minimum(keypoints[..., a, -1], keypoints[..., b, -1])
    return output


def keypoint_boxes(keypoints2d: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Person boxes (N, 5) ``x0, y0, x1, y1, score`` around the visible keypoints (N, K, 3) of N views.

    The box grows by ``margin`` of its size on each side; ``score`` is the mean visible confidence
    (0 and a zero box when nothing is visible).
    """
    keypoints2d = validate_keypoints2d(keypoints2d)
    boxes = np.zeros((keypoints2d.shape[0], 5))
    for view, points in enumerate(keypoints2d):
        visible = points[:, 2] > 0
        if not np.any(visible):
            continue
        low, high = points[visible, :2].min(0), points[visible, :2].max(0)
        pad = margin * (high - low)
        boxes[view, :2], boxes[view, 2:4] = low - pad, high + pad
        boxes[view, 4] = points[visible, 2].mean()
    return boxes


def easymocap_to_smpl_params(result: dict, body: BodyModel) -> SMPLParams:
    """Convert EasyMocap's ``{'poses', 'shapes', 'Rh', 'Th'}`` (first frame) to our ``SMPLParams``.

    Args:
        result: EasyMocap's parameter dict: ``poses`` (F, 72), ``shapes`` (1 or F, 10), ``Rh``, ``Th`` (F, 3).
        body: the :class:`gas_core.body.smpl.BodyModel` the parameters are for (gives ``J0(betas)``).

    Returns:
        :class:`SMPLParams` with batch 1 and scale 1.
    """
    for key in ("poses", "shapes", "Rh", "Th"):
        if key not in result:
            raise ValueError(f"result is missing EasyMocap's {key!r} entry")
    poses = np.asarray(result["poses"], dtype=np.float64).reshape(-1, np.asarray(result["poses"]).shape[-1])[0]
    if poses.shape[0] < 72:
        raise ValueError(f"result['poses'] must hold 72 SMPL values per frame, got {poses.shape[0]}")
    betas = np.asarray(result["shapes"], dtype=np.float64).reshape(-1, np.asarray(result["shapes"]).shape[-1])[0][:10]
    betas = np.pad(betas, (0, 10 - betas.shape[0]))
    rh = np.asarray(result["Rh"], dtype=np.float64).reshape(-1, 3)[0]
    th = np.asarray(result["Th"], dtype=np.float64).reshape(-1, 3)[0]
    rotation = Rotation.from_rotvec(rh) * Rotation.from_rotvec(poses[:3])
    dtype = torch.float32
    rest = SMPLParams.zeros(1, dtype=dtype)
    rest = SMPLParams(betas=torch.as_tensor(betas[None], dtype=dtype), body_pose=rest.body_pose,
                      global_orient=rest.global_orient, transl=rest.transl, scale=rest.scale)
    with torch.no_grad():
        root = body(rest).rest_joints[0, 0].double().cpu().numpy()
    transl = th + rotation.as_matrix() @ root - root
    return SMPLParams(
        betas=torch.as_tensor(betas[None], dtype=dtype),
        body_pose=torch.as_tensor(poses[3:72].reshape(1, 23, 3), dtype=dtype),
        global_orient=torch.as_tensor(rotation.as_rotvec()[None], dtype=dtype),
        transl=torch.as_tensor(transl[None], dtype=dtype),
        scale=torch.ones(1, dtype=dtype),
    )


def fit_with_easymocap(
    body: BodyModel,
    cameras: Sequence[Camera],
    keypoints2d: np.ndarray,
    *,
    model_path: Path | str,
    gender: str = "neutral",
    device: str = "cpu",
):
    """Fit SMPL with EasyMocap's ``smpl_from_keypoints3d2d`` and return a ``FitResult``.

    Args:
        body: our :class:`gas_core.body.smpl.BodyModel` (used to convert the output parameters and to
            compute the returned joints/vertices; it should be the same SMPL EasyMocap loads).
        cameras: N cameras.
        keypoints2d: (N, 17, 3) COCO-17 keypoints (u, v pixels, confidence).
        model_path: EasyMocap's model folder (holds ``smpl/`` and ``J_regressor_body25.npy``).
        gender: SMPL gender EasyMocap loads.
        device: torch device for EasyMocap.

    Raises:
        EasyMocapUnavailableError: when ``easymocap`` cannot be imported.
        ValueError: for bad arguments.
    """
    if not is_available():
        raise EasyMocapUnavailableError(INSTALL_HINT)
    from gas_core.body.fit.fitter import FitResult, _body_forward, _coco_reprojection_error

    model_path = Path(model_path).expanduser()
    if not model_path.is_dir():
        raise ValueError(f"model_path {model_path} is not a folder: point it at EasyMocap's data/smplx folder")
    keypoints2d = validate_keypoints2d(keypoints2d, num_views=len(cameras))
    if keypoints2d.shape[1] != 17:
        raise ValueError(f"keypoints2d must hold 17 COCO keypoints per view, got {keypoints2d.shape[1]}")

    from easymocap.dataset import CONFIG
    from easymocap.pipeline import smpl_from_keypoints3d2d
    from easymocap.smplmodel import load_model

    start = time.perf_counter()
    triangulated = triangulate_keypoints(cameras, keypoints2d)
    points = np.nan_to_num(triangulated.points)
    keypoints3d = np.concatenate([points, triangulated.confidence[:, None]], axis=-1)
    body25_3d = coco17_to_body25(keypoints3d)[None]  # (1, 25, 4)
    body25_2d = coco17_to_body25(keypoints2d)[None]  # (1, N, 25, 3)
    boxes = keypoint_boxes(keypoints2d)[None]  # (1, N, 5)
    easymocap_body = load_model(gender=gender, model_type="smpl", skel_type="body25",
                                device=torch.device(device), model_path=str(model_path))
    args = SimpleNamespace(opts={}, verbose=False, model="smpl", robust3d=False)
    result = smpl_from_keypoints3d2d(easymocap_body, body25_3d, body25_2d, boxes,
                                     projection_matrices(cameras), CONFIG["body25"], args)
    params = easymocap_to_smpl_params(result, body)
    output = _body_forward(body, params)
    elapsed = time.perf_counter() - start
    return FitResult(
        params=params,
        joints=output.joints[0].detach().cpu().numpy(),
        vertices=output.vertices[0].detach().cpu().numpy(),
        stage_losses={},
        keypoint_error_px=_coco_reprojection_error(body, params, cameras, keypoints2d),
        timings={"easymocap": elapsed},
    )
