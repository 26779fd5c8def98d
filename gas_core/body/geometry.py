"""Rotation and rigid-body maths on SMPL parameters, in one place.

Conventions (the project's world frame): metres, y up, axis-angle vectors in radians. SMPL rotates
the body about its rest-pose pelvis joint ``J0`` (which depends on ``betas``), so a world point is
``R(global_orient) (x - J0) + J0 + transl``; EasyMocap and MVHumanNet instead rotate about the
origin (``R x + Th``). Both are converted here.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from gas_core.body.smpl import BodyModel, SMPLParams

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rotation_about_y",
    "origin_transl_from_pelvis",
    "pelvis_transl_from_origin",
    "pelvis_positions",
    "turn_bodies",
]


def axis_angle_to_matrix(vectors: np.ndarray | Sequence[float]) -> np.ndarray:
    """Axis-angle vectors (..., 3) radians -> rotation matrices (..., 3, 3), float64."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.shape[-1:] != (3,):
        raise ValueError(f"vectors must be (..., 3), got {vectors.shape}")
    return Rotation.from_rotvec(vectors.reshape(-1, 3)).as_matrix().reshape(*vectors.shape[:-1], 3, 3)


def matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle vectors (..., 3) radians, float64 (angles in [0, pi])."""
    matrices = np.asarray(matrices, dtype=np.float64)
    if matrices.shape[-2:] != (3, 3):
        raise ValueError(f"matrices must be (..., 3, 3), got {matrices.shape}")
    return Rotation.from_matrix(matrices.reshape(-1, 3, 3)).as_rotvec().reshape(*matrices.shape[:-2], 3)


def rotation_about_y(angles: float | np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about the world's +y (up) axis by ``angles`` (...,) radians; a float gives (3, 3).

    Positive angles turn +z towards +x (right-handed).
    """
    angles = np.asarray(angles, dtype=np.float64)
    cosine, sine = np.cos(angles), np.sin(angles)
    zero, one = np.zeros_like(angles), np.ones_like(angles)
    rows = [np.stack([cosine, zero, sine], -1), np.stack([zero, one, zero], -1), np.stack([-sine, zero, cosine], -1)]
    return np.stack(rows, -2)


def origin_transl_from_pelvis(global_orient: np.ndarray, transl: np.ndarray, rest_pelvis: np.ndarray) -> np.ndarray:
    """EasyMocap translation ``Th`` (..., 3) metres (rotation about the origin) from SMPL's ``transl`` (..., 3).

    ``Th = transl + J0 - R(global_orient) J0`` with ``J0`` = ``rest_pelvis`` (3,), the body model's pelvis
    joint for the body's ``betas`` in the rest pose.
    """
    pelvis = np.asarray(rest_pelvis, dtype=np.float64).reshape(3)
    rotated = axis_angle_to_matrix(global_orient) @ pelvis
    return np.asarray(transl, dtype=np.float64) + pelvis - rotated


def pelvis_transl_from_origin(global_orient: np.ndarray, origin_transl: np.ndarray,
                              rest_pelvis: np.ndarray) -> np.ndarray:
    """SMPL's ``transl`` (..., 3) metres (rotation about the pelvis) from EasyMocap's ``Th`` (..., 3).

    The inverse of :func:`origin_transl_from_pelvis`: ``transl = Th - J0 + R(global_orient) J0``.
    """
    pelvis = np.asarray(rest_pelvis, dtype=np.float64).reshape(3)
    rotated = axis_angle_to_matrix(global_orient) @ pelvis
    return np.asarray(origin_transl, dtype=np.float64) - pelvis + rotated


def pelvis_positions(body_model: BodyModel, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """World pelvis positions (N, 3) metres of N SMPL dicts (the body model's joint 0, scale included)."""
    return body_model(SMPLParams.from_records(items)).joints[:, 0].double().cpu().numpy()  # forward moves params


def turn_bodies(body_model: BodyModel, items: Sequence[Mapping[str, Any]], rotation: np.ndarray,
                pivot: np.ndarray | None = None) -> list[dict[str, Any]]:
    """SMPL dicts turned rigidly by ``rotation`` (3, 3): each root is pre-multiplied by it.

    ``pivot`` (3,) world metres: the point the bodies turn about (their pelvis positions turn with them);
    ``None`` turns each body about its own pelvis, which then stays where it was. Other keys are copied.
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    if (rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
            or not math.isclose(float(np.linalg.det(rotation)), 1.0, abs_tol=1e-6)):
        raise ValueError(f"rotation must be a (3, 3) rotation matrix (orthonormal, det 1), got {rotation.tolist()}")
    if not items:
        return []
    pelvis = pelvis_positions(body_model, items)
    if pivot is None:
        wanted = pelvis
    else:
        pivot = np.asarray(pivot, dtype=np.float64).reshape(3)
        wanted = pivot + (pelvis - pivot) @ rotation.T
    roots = rotation[None] @ axis_angle_to_matrix(np.stack([np.asarray(item["global_orient"]).reshape(3)
                                                            for item in items]))
    turned = [dict(item, global_orient=orient) for item, orient in zip(items, matrix_to_axis_angle(roots))]
    moved = pelvis_positions(body_model, turned)  # the root turns about the rest pelvis: correct the translation
    for item, now, target in zip(turned, moved, wanted):
        item["transl"] = np.asarray(item["transl"], dtype=np.float64).reshape(3) + (target - now)
    return turned

