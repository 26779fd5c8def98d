"""Per-subject quality values measured during preprocessing, and the gates a subject must pass to be packed.

A scan that reads cleanly can still be unusable: a fragment of a person, a body half outside the
views, a fit that missed the scan. :func:`measure_quality` measures, after rendering and fitting:

=========================  ==========================================================================
key                        meaning (all in the fitting frame: metres, unless ``target_height`` rescales)
=========================  ==========================================================================
``mask_coverage_min``      smallest fraction of image pixels the scan's mask covers, over the views
``mask_coverage_mean``     mean of that fraction over the views
``visible_view_fraction``  fraction of views that show the whole body: a non-empty mask touching no
                           image border (the default framing moves the cameras back until the whole scan
                           fits with a margin, so it falls below 1 when the cameras are held in place,
                           ``framing.mode=fixed``, or the margin is 0)
``reprojection_px``        confidence-weighted mean distance, pixels, between the fitted body's projected
                           COCO keypoints and the 2D keypoints it was fitted to
``scan_residual_cm``       mean distance, cm, from scan points to the fitted body's surface (includes
                           the clothing's thickness)
``body_to_scan_cm``        median distance, cm, from the fitted body's vertices to the scan surface
                           (large when part of the person is missing from the scan)
``silhouette_iou_min``     smallest intersection-over-union, over the views, of the scan's mask and the
                           fitted body's silhouette
``height_m``               the fitted body's standing height (rest pose), metres
``betas_abs_max``          largest absolute shape coefficient of the fit
=========================  ==========================================================================

:class:`QualityGates` holds a bound for each (None disables it); :func:`evaluate_gates` names every
value outside its bounds. A subject failing a gate is *rejected*: kept aside, not packed, unless the
gates are not enforced or the subject is accepted by id.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np
import trimesh
from scipy.spatial import cKDTree

__all__ = ["QualityValues", "QualityGates", "GateOutcome", "measure_quality", "evaluate_gates", "mask_statistics"]

_SURFACE_SAMPLES = 40000
_SCAN_POINTS = 20000


@dataclass(frozen=True)
class QualityValues:
    """The measured quality of one subject (see the module docstring for each key); NaN when not measured."""

    mask_coverage_min: float
    mask_coverage_mean: float
    visible_view_fraction: float
    reprojection_px: float
    scan_residual_cm: float
    body_to_scan_cm: float
    silhouette_iou_min: float
    height_m: float
    betas_abs_max: float

    def as_dict(self) -> dict[str, float | None]:
        """Flat ``{key: value}`` for ``meta["extra"]["quality"]``; values that could not be measured are None."""
        return {key: (float(value) if math.isfinite(value) else None) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "QualityValues":
        """Inverse of :meth:`as_dict` (None and missing keys become NaN)."""
        return cls(**{f.name: float("nan") if values.get(f.name) is None else float(values[f.name]) for f in fields(cls)})


@dataclass(frozen=True)
class QualityGates:
    """Bounds on :class:`QualityValues` a subject must meet to be packed; None disables a bound.

    Defaults suit the ``paper`` preset (20 views at 1024 px, orbit at least 3 m away and farther for
    subjects that would not fit, 40 degree field of view) and scans of children and adults; a person far
    from these needs other bounds.

    Attributes:
        min_mask_coverage: lower bound of ``mask_coverage_min`` (a 1.6-2.0 m adult covers 7-13% of each
            view; a fragment of a scan covers well under 1%).
        min_visible_view_fraction: lower bound of ``visible_view_fraction``.
        max_reprojection_px: upper bound of ``reprojection_px``.
        max_scan_residual_cm: upper bound of ``scan_residual_cm`` (skirts and loose clothes reach 2-3 cm).
        max_body_to_scan_cm: upper bound of ``body_to_scan_cm``.
        min_silhouette_iou: lower bound of ``silhouette_iou_min``.
        min_height_m, max_height_m: bounds of ``height_m``.
        max_betas_abs: upper bound of ``betas_abs_max``.
        enforce: when False, subjects failing a gate are still packed (the outcome is recorded).
        accept_subjects: subject ids packed even though they fail a gate (after looking at them). Quote
            numeric ids in YAML and ``--set`` (``gates.accept_subjects=['0042']``).
    """

    min_mask_coverage: float | None = 0.01
    min_visible_view_fraction: float | None = 0.9
    max_reprojection_px: float | None = 20.0
    max_scan_residual_cm: float | None = 5.0
    max_body_to_scan_cm: float | None = 4.0
    min_silhouette_iou: float | None = 0.5
    min_height_m: float | None = 0.8
    max_height_m: float | None = 2.3
    max_betas_abs: float | None = 4.0
    enforce: bool = True
    accept_subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith(("min_", "max_")) and value is not None and not (
                    isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{f.name} must be a non-negative number or None, got {value!r}")
        if self.min_height_m is not None and self.max_height_m is not None and self.min_height_m > self.max_height_m:
            raise ValueError(f"min_height_m ({self.min_height_m}) must not exceed max_height_m ({self.max_height_m})")
        if not isinstance(self.enforce, bool):
            raise ValueError(f"enforce must be true or false, got {self.enforce!r}")
        if isinstance(self.accept_subjects, str) or not all(isinstance(s, str) for s in self.accept_subjects):
            raise ValueError(f"accept_subjects must be a list of subject ids as strings, got {self.accept_subjects!r}")
        object.__setattr__(self, "accept_subjects", tuple(self.accept_subjects))

    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """``{quality key: (lower, upper)}`` for every gated value (None: unbounded on that side)."""
        return {
            "mask_coverage_min": (self.min_mask_coverage, None),
            "visible_view_fraction": (self.min_visible_view_fraction, None),
            "reprojection_px": (None, self.max_reprojection_px),
            "scan_residual_cm": (None, self.max_scan_residual_cm),
            "body_to_scan_cm": (None, self.max_body_to_scan_cm),
            "silhouette_iou_min": (self.min_silhouette_iou, None),
            "height_m": (self.min_height_m, self.max_height_m),
            "betas_abs_max": (None, self.max_betas_abs),
        }

    @classmethod
    def tiny(cls) -> "QualityGates":
        """Bounds for the ``tiny`` preset (256 px views: pixel errors are a quarter of ``paper``'s)."""
        return cls(max_reprojection_px=5.0)


@dataclass(frozen=True)
class GateOutcome:
    """Which gates a subject failed and whether it is packed anyway.

    Attributes:
        failed: ``{quality key: value}`` of every value outside its bounds (None: not measured).
        accepted: True when the subject is packed: it passed, or it failed and was accepted
            (``accepted_because`` says how).
        accepted_because: ``""``, ``"gates not enforced"`` or ``"subject accepted by id"``.
        bounds: the bounds the values were judged by.
    """

    failed: dict[str, float | None]
    accepted: bool
    accepted_because: str
    bounds: dict[str, tuple[float | None, float | None]]

    @property
    def passed(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        """e.g. ``"silhouette_iou_min=0.31 (min 0.5); height_m=0.62 (min 0.8)"``; empty when passed."""
        parts = []
        for key, value in self.failed.items():
            low, high = self.bounds[key]
            limits = ", ".join(text for text in (f"min {low:g}" if low is not None else "",
                                                 f"max {high:g}" if high is not None else "") if text)
            parts.append(f"{key}={'not measured' if value is None else f'{value:.3g}'} ({limits})")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record for ``meta["extra"]["gates"]``."""
        return {
            "passed": self.passed,
            "accepted": self.accepted,
            "accepted_because": self.accepted_because,
            "failed": dict(self.failed),
            "bounds": {key: [low, high] for key, (low, high) in self.bounds.items()},
        }


def evaluate_gates(values: QualityValues, gates: QualityGates, subject_id: str) -> GateOutcome:
    """Judge ``values`` by ``gates``; a value that could not be measured (NaN) fails its gate."""
    record = values.as_dict()
    bounds = gates.bounds()
    failed: dict[str, float | None] = {}
    for key, (low, high) in bounds.items():
        if low is None and high is None:
            continue
        value = record[key]
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            failed[key] = value
    because = ""
    if failed and not gates.enforce:
        because = "gates not enforced"
    elif failed and subject_id in gates.accept_subjects:
        because = "subject accepted by id"
    return GateOutcome(failed=failed, accepted=not failed or bool(because), accepted_because=because, bounds=bounds)


def mask_statistics(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per view: (fraction of pixels in the mask (N,), whole body in view (N,) bool).

    ``masks``: (N, H, W) uint8 or bool, non-zero inside. A view shows the whole body when its mask is
    non-empty and touches none of the image's four borders.
    """
    masks = np.asarray(masks) > 0
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise ValueError(f"masks must be (N, H, W) with N >= 1, got {masks.shape}")
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    border = masks[:, 0, :].any(1) | masks[:, -1, :].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
    return coverage, (coverage > 0) & ~border


def _surface_points(vertices: np.ndarray, faces: np.ndarray, samples: int, seed: int) -> np.ndarray:
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, _ = trimesh.sample.sample_surface(mesh, samples, seed=seed)
    return np.vstack([points, vertices])


def measure_quality(
    *,
    scan_masks: np.ndarray,
    body_masks: np.ndarray,
    reprojection_px: float,
    scan_vertices: np.ndarray,
    scan_faces: np.ndarray,
    body_vertices: np.ndarray,
    body_faces: np.ndarray,
    rest_body_vertices: np.ndarray,
    betas: np.ndarray,
    seed: int = 0,
) -> QualityValues:
    """Measure a subject's :class:`QualityValues`.

    Args:
        scan_masks: (N, H, W) the rendered scan's masks, non-zero inside.
        body_masks: (N, H, W) the fitted body's silhouettes in the same views, non-zero inside.
        reprojection_px: the fit's keypoint reprojection error, pixels.
        scan_vertices: (M, 3) scan vertices, metres, in the fitting frame; ``scan_faces`` (F, 3).
        body_vertices: (V, 3) the fitted body, same frame; ``body_faces`` (F', 3).
        rest_body_vertices: (V, 3) the fitted body in its rest pose (shape and scale applied), for the height.
        betas: (10,) or (1, 10) the fitted shape coefficients.
        seed: seeds the surface sampling.

    Returns:
        :class:`QualityValues`.
    """
    scan_masks, body_masks = np.asarray(scan_masks) > 0, np.asarray(body_masks) > 0
    if scan_masks.shape != body_masks.shape:
        raise ValueError(f"scan_masks {scan_masks.shape} and body_masks {body_masks.shape} must have one shape")
    coverage, whole = mask_statistics(scan_masks)
    union = (scan_masks | body_masks).reshape(len(scan_masks), -1).sum(1)
    intersection = (scan_masks & body_masks).reshape(len(scan_masks), -1).sum(1)
    iou = np.where(union > 0, intersection / np.maximum(union, 1), 0.0)

    scan_vertices = np.asarray(scan_vertices, dtype=np.float64)
    body_vertices = np.asarray(body_vertices, dtype=np.float64)
    rng = np.random.default_rng(seed)
    scan_points = scan_vertices if len(scan_vertices) <= _SCAN_POINTS else scan_vertices[
        rng.choice(len(scan_vertices), _SCAN_POINTS, replace=False)]
    body_surface = _surface_points(body_vertices, np.asarray(body_faces), _SURFACE_SAMPLES, seed)
    scan_surface = _surface_points(scan_vertices, np.asarray(scan_faces), _SURFACE_SAMPLES, seed)
    scan_residual = float(cKDTree(body_surface).query(scan_points)[0].mean())
    body_to_scan = float(np.median(cKDTree(scan_surface).query(body_vertices)[0]))
    rest = np.asarray(rest_body_vertices, dtype=np.float64)
    return QualityValues(
        mask_coverage_min=float(coverage.min()),
        mask_coverage_mean=float(coverage.mean()),
        visible_view_fraction=float(whole.mean()),
        reprojection_px=float(reprojection_px),
        scan_residual_cm=100.0 * scan_residual,
        body_to_scan_cm=100.0 * body_to_scan,
        silhouette_iou_min=float(iou.min()),
        height_m=float(rest[:, 1].max() - rest[:, 1].min()),
        betas_abs_max=float(np.abs(np.asarray(betas)).max()),
    )
