"""Robust multi-view triangulation of 2D keypoints.

Every keypoint is triangulated independently (vectorised over keypoints):

1. **Hypotheses**: a direct linear transform (DLT) from every pair of views that both see the point
   (at most ``max_pairs`` pairs, chosen at random when there are more). The hypothesis with the
   largest robust consensus (sum over views of confidence times a Geman-McClure weight of its
   reprojection error) wins. This makes the start independent of gross outliers, which a single
   all-view DLT is not.
2. **Iteratively reweighted DLT**: each view's two DLT rows are weighted by
   ``confidence x GM(reprojection error) / depth`` (dividing by the depth of the current estimate makes
   the algebraic DLT error approximate the pixel error), and the weighted system is solved again.

The result carries, per keypoint, the 3D point, the number of inlier views, a confidence and the
mean reprojection error over inlier views in pixels.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gas_core.cameras import Camera

__all__ = ["TriangulationResult", "triangulate_keypoints", "projection_matrices", "dlt_triangulate"]


@dataclass(frozen=True)
class TriangulationResult:
    """Robust triangulation output for K keypoints seen in N views.

    Attributes:
        points: (K, 3) world points in metres; NaN where fewer than ``min_views`` views agree.
        confidence: (K,) in [0, 1]: mean input confidence of the inlier views, 0 for failed points.
        reprojection_error_px: (K,) confidence-weighted mean pixel error over inlier views (NaN if failed).
        inlier_views: (K,) number of views whose reprojection error is within the inlier threshold.
        view_weights: (N, K) final weights (confidence x robust weight) used by the last solve.
    """

    points: np.ndarray
    confidence: np.ndarray
    reprojection_error_px: np.ndarray
    inlier_views: np.ndarray
    view_weights: np.ndarray


def projection_matrices(cameras: Sequence[Camera]) -> np.ndarray:
    """(N, 3, 4) projection matrices ``K [R | t]`` of N cameras."""
    if len(cameras) == 0:
        raise ValueError("cameras must hold at least one Camera")
    for index, camera in enumerate(cameras):
        if not isinstance(camera, Camera):
            raise ValueError(f"cameras[{index}] must be a gas_core.cameras.Camera, got {type(camera).__name__}")
    return np.stack([camera.projection_matrix for camera in cameras])


def dlt_triangulate(projections: np.ndarray, uv: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted DLT for a batch of points.

    Args:
        projections: (..., N, 3, 4) projection matrices (broadcast against the batch of ``uv``).
        uv: (..., N, 2) pixel coordinates of each point in each view.
        weights: (..., N) non-negative weight of each view (0 excludes it).

    Returns:
        (..., 3) points; NaN where the weighted system is degenerate (fewer than two views).
    """
    # Rows u * P3 - P1 and v * P3 - P2, each scaled by the view weight.
    rows_u = uv[..., 0:1] * projections[..., 2, :] - projections[..., 0, :]
    rows_v = uv[..., 1:2] * projections[..., 2, :] - projections[..., 1, :]
    rows = np.concatenate([rows_u, rows_v], axis=-2) * np.concatenate([weights, weights], axis=-1)[..., None]
    _, _, vh = np.linalg.svd(rows)
    homogeneous = vh[..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        points = homogeneous[..., :3] / homogeneous[..., 3:4]
    enough = (weights > 0).sum(axis=-1) >= 2
    return np.where(enough[..., None] & np.isfinite(points).all(axis=-1, keepdims=True), points, np.nan)


def _reproject(projections: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, K, 2) and depths (N, K) of points (K, 3) in N views; behind-camera depth <= 0."""
    homogeneous = np.concatenate([points, np.ones_like(points[:, :1])], axis=-1)  # (K, 4)
    projected = np.einsum("nij,kj->nki", projections, homogeneous)
    depth = projected[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = projected[..., :2] / depth[..., None]
    return uv, depth


def _reprojection_errors(projections: np.ndarray, points: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uv, depth = _reproject(projections, points)
    error = np.linalg.norm(uv - observed, axis=-1)
    error = np.where((depth > 1e-6) & np.isfinite(error), error, np.inf)
    return error, depth


def _geman_mcclure_weight(error: np.ndarray, scale: float) -> np.ndarray:
    """IRLS weight of the Geman-McClure loss ``r^2 / (r^2 + s^2)``: ``(s^2 / (r^2 + s^2))^2``."""
    squared_scale = scale * scale
    with np.errstate(over="ignore", invalid="ignore"):
        weight = (squared_scale / (error * error + squared_scale)) ** 2
    return np.where(np.isfinite(error), weight, 0.0)


def triangulate_keypoints(
    cameras: Sequence[Camera],
    keypoints2d: np.ndarray,
    *,
    robust_scale_px: float = 8.0,
    iterations: int = 8,
    inlier_threshold_px: float | None = None,
    min_views: int = 2,
    max_pairs: int = 200,
    seed: int = 0,
) -> TriangulationResult:
    """Triangulate K keypoints observed in N calibrated views, robust to outlier views.

    Args:
        cameras: N cameras (OpenCV convention, see :mod:`gas_core.cameras`).
        keypoints2d: (N, K, 3) u, v in pixels and confidence in [0, 1] (0 = not observed).
        robust_scale_px: Geman-McClure scale in pixels: views whose reprojection error is well above
            it lose their influence.
        iterations: iteratively reweighted DLT steps after the pair-hypothesis start.
        inlier_threshold_px: error below which a view counts as an inlier for the reported statistics
            (default ``3 * robust_scale_px``).
        min_views: fewest inlier views for a point to count as triangulated.
        max_pairs: most view pairs tried as starting hypotheses (random subset above it).
        seed: seed of the pair subset choice.

    Returns:
        A :class:`TriangulationResult`.
    """
    from gas_core.body.fit.keypoints import validate_keypoints2d

    projections = projection_matrices(cameras)
    observed_all = validate_keypoints2d(keypoints2d, num_views=len(cameras))
    if robust_scale_px <= 0:
        raise ValueError(f"robust_scale_px must be positive, got {robust_scale_px}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if min_views < 2:
        raise ValueError(f"min_views must be >= 2, got {min_views}")
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    threshold = 3.0 * robust_scale_px if inlier_threshold_px is None else float(inlier_threshold_px)
    if threshold <= 0:
        raise ValueError(f"inlier_threshold_px must be positive, got {inlier_threshold_px}")

    num_views, num_points = observed_all.shape[:2]
    observed = observed_all[..., :2]  # (N, K, 2)
    confidence = observed_all[..., 2]  # (N, K)
    if num_views < 2:
        empty = np.full(num_points, np.nan)
        return TriangulationResult(np.full((num_points, 3), np.nan), np.zeros(num_points), empty,
                                   np.zeros(num_points, dtype=int), np.zeros((num_views, num_points)))

    # 1. Pair hypotheses: (H, K, 3) candidate points from two views each.
    pairs = np.array(list(itertools.combinations(range(num_views), 2)))
    if len(pairs) > max_pairs:
        pairs = pairs[np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)]
    pair_projections = projections[pairs]  # (H, 2, 3, 4)
    pair_uv = observed[pairs].transpose(0, 2, 1, 3)  # (H, K, 2, 2)
    pair_weights = confidence[pairs].transpose(0, 2, 1)  # (H, K, 2)
    hypotheses = dlt_triangulate(pair_projections[:, None], pair_uv, pair_weights)  # (H, K, 3)

    homogeneous = np.concatenate([hypotheses, np.ones_like(hypotheses[..., :1])], axis=-1)
    projected = np.einsum("nij,hkj->hnki", projections, homogeneous)  # (H, N, K, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.linalg.norm(projected[..., :2] / projected[..., 2:3] - observed[None], axis=-1)
    error = np.where((projected[..., 2] > 1e-6) & np.isfinite(error), error, np.inf)
    consensus = (confidence[None] * _geman_mcclure_weight(error, robust_scale_px)).sum(axis=1)  # (H, K)
    consensus = np.where(np.isfinite(hypotheses).all(axis=-1), consensus, -1.0)
    best = np.argmax(consensus, axis=0)  # (K,)
    points = hypotheses[best, np.arange(num_points)]  # (K, 3)

    # 2. Iteratively reweighted DLT on all views.
    weights = np.zeros((num_views, num_points))
    for _ in range(iterations):
        valid = np.isfinite(points).all(axis=-1)
        safe_points = np.where(valid[:, None], points, 0.0)
        error, depth = _reprojection_errors(projections, safe_points, observed)
        weights = confidence * _geman_mcclure_weight(error, robust_scale_px)
        weights = weights / np.clip(np.abs(depth), 1e-3, None)
        weights = np.where(valid[None], weights, 0.0)
        refined = dlt_triangulate(projections[None], observed.transpose(1, 0, 2), weights.T)  # (K, 3)
        points = np.where(np.isfinite(refined).all(axis=-1, keepdims=True), refined, points)

    # Statistics over inlier views.
    valid = np.isfinite(points).all(axis=-1)
    safe_points = np.where(valid[:, None], points, 0.0)
    error, _ = _reprojection_errors(projections, safe_points, observed)
    inlier = (confidence > 0) & (error < threshold) & valid[None]
    inlier_count = inlier.sum(axis=0)
    ok = valid & (inlier_count >= min_views)
    inlier_confidence = np.where(inlier, confidence, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_confidence = inlier_confidence.sum(axis=0) / inlier_count
        mean_error = (inlier_confidence * np.where(inlier, error, 0.0)).sum(axis=0) / inlier_confidence.sum(axis=0)
    if iterations == 0:
        weights = confidence * _geman_mcclure_weight(error, robust_scale_px)
    return TriangulationResult(
        points=np.where(ok[:, None], points, np.nan),
        confidence=np.where(ok, np.nan_to_num(mean_confidence), 0.0),
        reprojection_error_px=np.where(ok, mean_error, np.nan),
        inlier_views=np.where(ok, inlier_count, 0).astype(int),
        view_weights=weights,
    )
