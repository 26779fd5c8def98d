"""3D joint errors of body fits: MPJPE (plain, root-aligned, Procrustes-aligned) and acceleration error.

Units: every function returns the unit of its inputs. The project works in **metres**, so the
results are metres (multiply by 1000 for the millimetres papers report). Joint arrays are
``(T, J, 3)``: T frames (or bodies), J joints, xyz.

* :func:`mpjpe` — mean Euclidean distance over frames and joints, no alignment;
* :func:`root_aligned_mpjpe` — both skeletons translated so their root (one joint, or the mean of
  several, e.g. the two hips of COCO-17) is at the origin, per frame;
* :func:`procrustes_aligned_mpjpe` (PA-MPJPE) — per frame, the prediction is mapped onto the ground
  truth by the least-squares similarity transform (rotation, uniform scale, translation);
* :func:`acceleration_error` — the HMR/VIBE definition: accelerations are second differences
  ``a_t = x_{t+1} - 2 x_t + x_{t-1}`` (units per frame squared), and the error is the mean over the
  T - 2 inner frames and the joints of ``|a_pred - a_gt|``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "mpjpe",
    "root_aligned_mpjpe",
    "procrustes_align",
    "procrustes_aligned_mpjpe",
    "acceleration",
    "acceleration_error",
]


def _check_pair(predicted, ground_truth, *, min_frames: int = 1, min_joints: int = 1) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, dtype=np.float64)
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    for name, array in (("predicted", predicted), ("ground_truth", ground_truth)):
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (T, J, 3), got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite")
    if predicted.shape != ground_truth.shape:
        raise ValueError(f"predicted {predicted.shape} and ground_truth {ground_truth.shape} must have the same shape")
    if predicted.shape[0] < min_frames:
        raise ValueError(f"predicted must hold at least {min_frames} frames, got {predicted.shape[0]}")
    if predicted.shape[1] < min_joints:
        raise ValueError(f"predicted must hold at least {min_joints} joints, got {predicted.shape[1]}")
    return predicted, ground_truth


def _root(joints: np.ndarray, root_index: int | Sequence[int]) -> np.ndarray:
    indices = np.atleast_1d(np.asarray(root_index))
    if indices.size == 0 or indices.dtype.kind not in "iu" or np.any(indices < 0) or np.any(indices >= joints.shape[1]):
        raise ValueError(f"root_index must be a joint index or indices in [0, {joints.shape[1]}), got {root_index!r}")
    return joints[:, indices].mean(axis=1, keepdims=True)


def mpjpe(predicted: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean per-joint position error without alignment.

    Args:
        predicted, ground_truth: (T, J, 3) joint positions (metres in this project).

    Returns:
        Mean over T and J of the Euclidean distance, in the inputs' unit.
    """
    predicted, ground_truth = _check_pair(predicted, ground_truth)
    return float(np.linalg.norm(predicted - ground_truth, axis=-1).mean())


def root_aligned_mpjpe(predicted: np.ndarray, ground_truth: np.ndarray, root_index: int | Sequence[int] = 0) -> float:
    """MPJPE after moving each frame's root to the origin in both skeletons.

    Args:
        predicted, ground_truth: (T, J, 3) joint positions.
        root_index: the root joint (SMPL's pelvis is 0) or several joints whose mean is the root
            (COCO-17 hips: ``(11, 12)``).

    Returns:
        Mean distance in the inputs' unit.
    """
    predicted, ground_truth = _check_pair(predicted, ground_truth)
    return mpjpe(predicted - _root(predicted, root_index), ground_truth - _root(ground_truth, root_index))


def procrustes_align(predicted: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Per frame, the similarity transform (s, R, t) of ``predicted`` closest to ``ground_truth``.

    Args:
        predicted, ground_truth: (T, J, 3) with J >= 3.

    Returns:
        (T, J, 3) the aligned prediction ``s R x + t`` (proper rotations only, no reflection).
    """
    predicted, ground_truth = _check_pair(predicted, ground_truth, min_joints=3)
    mean_predicted = predicted.mean(axis=1, keepdims=True)
    mean_truth = ground_truth.mean(axis=1, keepdims=True)
    centred_predicted, centred_truth = predicted - mean_predicted, ground_truth - mean_truth
    covariance = np.einsum("tji,tjk->tik", centred_truth, centred_predicted)  # (T, 3, 3)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    correction = np.ones((len(predicted), 3))
    correction[:, 2] = sign
    rotation = u @ (correction[:, :, None] * vt)
    variance = (centred_predicted**2).sum(axis=(1, 2))
    scale = (singular * correction).sum(1) / np.clip(variance, 1e-300, None)
    aligned = scale[:, None, None] * np.einsum("tik,tjk->tji", rotation, centred_predicted)
    return aligned + mean_truth


def procrustes_aligned_mpjpe(predicted: np.ndarray, ground_truth: np.ndarray) -> float:
    """PA-MPJPE: MPJPE after per-frame Procrustes (similarity) alignment, in the inputs' unit.

    Args:
        predicted, ground_truth: (T, J, 3) with J >= 3.
    """
    aligned = procrustes_align(predicted, ground_truth)
    return mpjpe(aligned, np.asarray(ground_truth, dtype=np.float64))


def acceleration(joints: np.ndarray) -> np.ndarray:
    """Second differences over time: (T, J, 3) -> (T - 2, J, 3), units per frame squared."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[0] < 3:
        raise ValueError(f"joints must have shape (T, J, 3) with T >= 3, got {joints.shape}")
    return joints[2:] - 2.0 * joints[1:-1] + joints[:-2]


def acceleration_error(predicted: np.ndarray, ground_truth: np.ndarray,
                       root_index: int | Sequence[int] | None = None) -> float:
    """Mean acceleration error (HMR/VIBE): mean over inner frames and joints of ``|a_pred - a_gt|``.

    Args:
        predicted, ground_truth: (T, J, 3) joint positions of one continuous clip, T >= 3.
        root_index: when given, both skeletons are root-aligned per frame first (as VIBE evaluates);
            None compares them as they are.

    Returns:
        The error in the inputs' unit per frame squared (metres / frame^2 here; x1000 for mm / frame^2).
    """
    predicted, ground_truth = _check_pair(predicted, ground_truth, min_frames=3)
    if root_index is not None:
        predicted = predicted - _root(predicted, root_index)
        ground_truth = ground_truth - _root(ground_truth, root_index)
    return float(np.linalg.norm(acceleration(predicted) - acceleration(ground_truth), axis=-1).mean())
