"""Multi-view body-model fitting to 2D keypoints, with priors and an optional scan-surface refinement.

Stages of :func:`fit_smpl_multiview`:

a. **Initialise** from the robustly triangulated torso (shoulders and hips,
   :func:`gas_core.body.fit.triangulate.triangulate_keypoints`): a similarity transform (rotation,
   uniform scale, translation; Umeyama's closed form) takes the rest body's torso keypoints onto the
   triangulated ones and gives ``global_orient``, ``scale`` and ``transl``.
b. **Keypoints**: Adam over pose, shape, global orientation, translation and log-scale. The loss is a
   Geman-McClure robust reprojection error of the body's COCO-17 keypoints in every view, weighted by
   detection confidence, plus a robust 3D term towards the triangulated keypoints (it speeds up the
   start), the pose prior (soft joint limits from :mod:`gas_core.body.limits` and a small L2 pull
   towards the rest pose), the shape prior (L2 on betas) and a size prior (L2 on the log-scale: the shape
   space already spans children to very tall adults, so stature and proportions are taken from the betas
   and the global scale only absorbs what they cannot express; without it, tall or extreme bodies were
   fitted as an enlarged average body, with ankles and spine off by 2-7 cm). The robust scales start
   wide and shrink during the first part of the stage (graduated non-convexity), which keeps limbs out
   of poor local minima such as an arm stuck on the wrong side of the body.
c. **Scan surface** (when scan vertices are given): the scan may wear clothes, so body vertices must
   lie inside or on it: a bounded (Geman-McClure) penalty on how far body vertices lie outside the scan
   along its outward normal (given, or estimated by local PCA and oriented by the fitted body), a
   robust pull of body vertices onto the scan, and a robust scan-to-body term; the small robust scales
   make loose clothing count little and tight regions (skin, tight garments) count fully, and every
   term being bounded keeps a few wrong correspondences from dragging the fit. Nearest neighbours come
   from scipy's cKDTree on subsampled points; the keypoint terms and priors stay on.

Body-model joints are not COCO keypoints (no nose/eyes/ears; SMPL's hip joints sit inside the pelvis),
so the body's COCO-17 keypoints are regressed from its vertices by a :class:`CocoRegressor`, a (17, V)
matrix of vertex weights that belongs to one mesh topology:

* the open body model's vertices are Anny's vertices (:mod:`gas_core.body.open_model`), so its regressor
  is Anny's own COCO regressor mapped onto them (:meth:`CocoRegressor.for_open_body_model`); the
  synthetic subjects' ground-truth keypoints come from the same regressor, so nothing is approximated;
* for licensed SMPL (6,890 vertices) the usual approach is a vertex per face keypoint (nose, eyes,
  ears; smplx's ``vertex_ids``) and SMPL's own joints for the limbs:
  :meth:`CocoRegressor.from_smpl_joint_regressor` does this, with SMPL's hip joints standing in for
  COCO's hips (they sit higher and more medial, so hips get a lower weight in the fit); a better
  regressor file (e.g. one learnt on COCO-annotated fits) can be loaded with
  :meth:`CocoRegressor.load`.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from gas_core.body.fit.keypoints import NUM_COCO_KEYPOINTS, validate_keypoints2d
from gas_core.body.fit.triangulate import TriangulationResult, projection_matrices, triangulate_keypoints
from gas_core.body.geometry import matrix_to_axis_angle
from gas_core.body.joints import COCO17_NAMES
from gas_core.body.limits import body_pose_limit_violation
from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import Camera

__all__ = [
    "CocoRegressor",
    "FitConfig",
    "FitResult",
    "fit_smpl_multiview",
    "similarity_transform",
    "SMPL_FACE_VERTEX_IDS",
]

logger = logging.getLogger(__name__)

#: COCO indices of the torso keypoints used to initialise the global transform.
_TORSO = (COCO17_NAMES.index("left_shoulder"), COCO17_NAMES.index("right_shoulder"),
          COCO17_NAMES.index("left_hip"), COCO17_NAMES.index("right_hip"))

#: Licensed SMPL's (6,890-vertex topology) vertex per COCO face keypoint, as listed by smplx's vertex_ids.
SMPL_FACE_VERTEX_IDS: dict[str, int] = {
    "nose": 332, "left_eye": 2800, "right_eye": 6260, "left_ear": 583, "right_ear": 4071,
}
#: SMPL joint index (gas_core.body.joints.SMPL_JOINT_NAMES) standing in for each COCO limb keypoint.
_SMPL_JOINT_FOR_COCO: dict[str, int] = {
    "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19,
    "left_wrist": 20, "right_wrist": 21, "left_hip": 1, "right_hip": 2,
    "left_knee": 4, "right_knee": 5, "left_ankle": 7, "right_ankle": 8,
}


# --------------------------------------------------------------------------------------------- regressor
@dataclass(frozen=True)
class CocoRegressor:
    """COCO-17 keypoints as fixed linear combinations of body-model vertices.

    Attributes:
        weights: (17, V) float64 vertex weights; each row sums to 1 (an affine combination, so the
            keypoints follow any rigid motion and scale of the mesh).
        keypoint_weights: (17,) how much the fit trusts each regressed keypoint (1 = exact
            correspondence, lower where the regressor is an approximation).
        source: where the weights came from, for logs and reports.
    """

    weights: np.ndarray
    keypoint_weights: np.ndarray
    source: str

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[0] != NUM_COCO_KEYPOINTS:
            raise ValueError(f"weights must have shape ({NUM_COCO_KEYPOINTS}, V), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or not np.allclose(weights.sum(1), 1.0, atol=1e-3):
            raise ValueError("weights rows must be finite and sum to 1")
        keypoint_weights = np.asarray(self.keypoint_weights, dtype=np.float64)
        if keypoint_weights.shape != (NUM_COCO_KEYPOINTS,) or np.any(keypoint_weights < 0):
            raise ValueError(f"keypoint_weights must be ({NUM_COCO_KEYPOINTS},) and non-negative")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "keypoint_weights", keypoint_weights)

    @property
    def num_vertices(self) -> int:
        return int(self.weights.shape[1])

    def regress(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, 17, 3) keypoints (same units)."""
        if vertices.shape[-2] != self.num_vertices:
            raise ValueError(f"vertices have {vertices.shape[-2]} points but the regressor expects {self.num_vertices}")
        matrix = torch.as_tensor(self.weights, dtype=vertices.dtype, device=vertices.device)
        return torch.einsum("kv,bvc->bkc", matrix, vertices)

    # ---------------------------------------------------------------------------------- constructors
    @classmethod
    def for_open_body_model(cls) -> "CocoRegressor":
        """Anny's COCO-17 regressor on the open body model's vertices (which are Anny's vertices)."""
        import anny.paths

        from gas_core.body.anny_model import load_anny

        model = load_anny()
        table = torch.load(anny.paths.get_anny_root_dir() / "data" / "keypoints" / "coco.pth",
                           weights_only=True, map_location="cpu")
        base_indices = model.base_mesh_vertex_indices.cpu().numpy()
        weights = np.stack([table[name].double().numpy()[base_indices] for name in COCO17_NAMES])
        return cls(weights=weights / weights.sum(1, keepdims=True), keypoint_weights=np.ones(NUM_COCO_KEYPOINTS),
                   source=f"Anny {_anny_version()} COCO regressor on the open body model's vertices")

    @classmethod
    def from_smpl_joint_regressor(cls, joint_regressor: np.ndarray, face_vertex_ids: dict[str, int] | None = None,
                                  hip_weight: float = 0.5) -> "CocoRegressor":
        """Approximate regressor for SMPL's topology: face keypoints at single vertices, limbs at joints.

        Args:
            joint_regressor: (24, V) the body model's joint regressor (``J_regressor``).
            face_vertex_ids: vertex index per face keypoint (default :data:`SMPL_FACE_VERTEX_IDS`).
            hip_weight: fit weight of the hips, whose SMPL joints only approximate COCO's hips.
        """
        joint_regressor = np.asarray(joint_regressor, dtype=np.float64)
        if joint_regressor.ndim != 2 or joint_regressor.shape[0] != 24:
            raise ValueError(f"joint_regressor must have shape (24, V), got {joint_regressor.shape}")
        face_vertex_ids = SMPL_FACE_VERTEX_IDS if face_vertex_ids is None else face_vertex_ids
        num_vertices = joint_regressor.shape[1]
        weights = np.zeros((NUM_COCO_KEYPOINTS, num_vertices))
        keypoint_weights = np.ones(NUM_COCO_KEYPOINTS)
        for index, name in enumerate(COCO17_NAMES):
            if name in _SMPL_JOINT_FOR_COCO:
                row = joint_regressor[_SMPL_JOINT_FOR_COCO[name]]
                weights[index] = row / row.sum()
                if name.endswith("_hip"):
                    keypoint_weights[index] = hip_weight
            else:
                if name not in face_vertex_ids:
                    raise ValueError(f"face_vertex_ids has no vertex for {name!r}")
                vertex = int(face_vertex_ids[name])
                if not 0 <= vertex < num_vertices:
                    raise ValueError(f"face_vertex_ids[{name!r}]={vertex} is outside the {num_vertices} vertices")
                weights[index, vertex] = 1.0
        return cls(weights=weights, keypoint_weights=keypoint_weights,
                   source="SMPL joints + face vertex ids (approximate COCO hips)")

    @classmethod
    def load(cls, path: Path | str) -> "CocoRegressor":
        """Read a regressor saved by :meth:`save` (``.npz`` with ``weights`` (17, V), ``keypoint_weights``)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"COCO regressor file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                weights = data["weights"]
                keypoint_weights = data["keypoint_weights"] if "keypoint_weights" in data else np.ones(NUM_COCO_KEYPOINTS)
                source = str(data["source"]) if "source" in data else str(path)
        except (KeyError, ValueError, OSError) as error:
            raise ValueError(f"{path} is not a COCO regressor file (.npz with 'weights' (17, V)): {error}") from error
        return cls(weights=weights, keypoint_weights=keypoint_weights, source=source)

    def save(self, path: Path | str) -> Path:
        """Write ``.npz`` (weights, keypoint_weights, source) atomically; returns the path."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
        os.close(handle)
        try:
            np.savez(temp_name, weights=self.weights, keypoint_weights=self.keypoint_weights, source=self.source)
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def for_body_model(cls, body: BodyModel, path: Path | str | None = None) -> "CocoRegressor":
        """The regressor for ``body``: a file when ``path`` is given, else derived from the model.

        Open body model -> :meth:`for_open_body_model`; SMPL topology (6,890 vertices) ->
        :meth:`from_smpl_joint_regressor`; anything else needs a file.
        """
        if path is not None:
            regressor = cls.load(path)
        else:
            from gas_core.body.open_model import OPEN_BODY_MODEL_LABEL

            num_vertices = _num_vertices(body)
            if getattr(body, "label", None) == OPEN_BODY_MODEL_LABEL:
                regressor = cls.for_open_body_model()
            elif num_vertices == 6890:
                regressor = cls.from_smpl_joint_regressor(_joint_regressor(body))
            else:
                raise ValueError(
                    f"no COCO regressor known for a {num_vertices}-vertex body model ({getattr(body, 'label', '?')}): "
                    "pass coco_regressor=CocoRegressor.load(<file>)"
                )
        if regressor.num_vertices != _num_vertices(body):
            raise ValueError(f"COCO regressor ({regressor.source}) has {regressor.num_vertices} vertices, "
                             f"the body model {_num_vertices(body)}")
        return regressor


def _anny_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("anny")


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit_smpl_multiview`. Pixels for 2D terms, metres for 3D terms.

    Attributes:
        keypoint_iterations: Adam steps of stage (b).
        surface_iterations: Adam steps of stage (c) (skipped without a scan).
        keypoint_learning_rate: Adam step size of stage (b) (decays to 10% by its end).
        surface_learning_rate: Adam step size of stage (c).
        keypoint_robust_scale_px: Geman-McClure scale of the reprojection loss.
        keypoint_3d_weight: weight of the robust term towards triangulated keypoints.
        keypoint_3d_robust_scale_m: its Geman-McClure scale.
        pose_limit_weight: weight of the soft joint-limit penalty (squared radians outside the limits).
        pose_rest_weight: weight of the L2 pull of ``body_pose`` towards the rest pose.
        shape_weight: weight of the L2 prior on betas.
        scale_weight: weight of the L2 pull of the log-scale towards 0 (true size), so that stature and
            proportions come from the shape space and the global scale only absorbs what it cannot fit.
        surface_weight: weight of the scan-surface terms in stage (c).
        surface_outside_weight: weight of the body-outside-the-scan penalty (relative to surface_weight).
        surface_robust_scale_m: Geman-McClure scale of the body<->scan distance terms.
        surface_outside_scale_m: Geman-McClure scale of the body-outside-the-scan penalty (bounded, so
            a few wrong scan normals cannot dominate).
        robust_anneal_start: stage (b) starts with the keypoint robust scales multiplied by this and
            shrinks them geometrically to 1 (graduated non-convexity against poor local minima).
        robust_anneal_fraction: fraction of stage (b) over which the scales shrink.
        surface_body_samples: body vertices used per step of stage (c).
        surface_scan_samples: scan points used in stage (c).
        triangulation_robust_scale_px: robust scale of the triangulation used in stage (a).
        device: torch device of the optimisation (the body model must already be on it).
        seed: seed of the point subsampling.
    """

    keypoint_iterations: int = 250
    surface_iterations: int = 200
    keypoint_learning_rate: float = 0.04
    surface_learning_rate: float = 0.01
    keypoint_robust_scale_px: float = 12.0
    keypoint_3d_weight: float = 1.0
    keypoint_3d_robust_scale_m: float = 0.05
    pose_limit_weight: float = 1.0
    pose_rest_weight: float = 1e-3
    shape_weight: float = 1e-3
    scale_weight: float = 3.0
    surface_weight: float = 1.0
    surface_outside_weight: float = 5.0
    surface_robust_scale_m: float = 0.015
    surface_outside_scale_m: float = 0.03
    robust_anneal_start: float = 8.0
    robust_anneal_fraction: float = 0.5
    surface_body_samples: int = 3000
    surface_scan_samples: int = 6000
    triangulation_robust_scale_px: float = 8.0
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("keypoint_iterations", "surface_iterations"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("keypoint_learning_rate", "surface_learning_rate", "keypoint_robust_scale_px",
                     "keypoint_3d_robust_scale_m", "surface_robust_scale_m", "surface_outside_scale_m",
                     "triangulation_robust_scale_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("keypoint_3d_weight", "pose_limit_weight", "pose_rest_weight", "shape_weight", "scale_weight",
                     "surface_weight", "surface_outside_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.robust_anneal_start < 1.0:
            raise ValueError(f"robust_anneal_start must be >= 1, got {self.robust_anneal_start}")
        if not 0.0 < self.robust_anneal_fraction <= 1.0:
            raise ValueError(f"robust_anneal_fraction must be in (0, 1], got {self.robust_anneal_fraction}")
        for name in ("surface_body_samples", "surface_scan_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class FitResult:
    """Output of a fit.

    Attributes:
        params: fitted :class:`SMPLParams` (batch 1).
        joints: (24, 3) body-model joints, metres, world frame.
        vertices: (V, 3) body vertices, metres, world frame.
        stage_losses: per stage, the total loss at each step.
        keypoint_error_px: confidence-weighted mean reprojection error of the body's COCO keypoints.
        timings: seconds per stage.
        triangulation: the stage (a) triangulation (None for back ends that do their own).
    """

    params: SMPLParams
    joints: np.ndarray
    vertices: np.ndarray
    stage_losses: dict[str, list[float]]
    keypoint_error_px: float
    timings: dict[str, float]
    triangulation: TriangulationResult | None = None


# --------------------------------------------------------------------------------------------- helpers
def _body_forward(body, params):
    return body(params)


def _num_vertices(body) -> int:
    return int(body.num_vertices)


def _joint_regressor(body) -> np.ndarray:
    regressor = body.smplx_model.J_regressor
    return regressor.detach().cpu().double().numpy()


def similarity_transform(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
                         ) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama) with ``target ~ s R source + t``.

    Args:
        source, target: (P, 3) corresponding points.
        weights: (P,) non-negative point weights (default all 1).

    Returns:
        ``(s, R (3, 3), t (3,))``.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f"source and target must both be (P, 3), got {source.shape} and {target.shape}")
    weights = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(source),) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("weights must be (P,), non-negative and not all zero")
    w = weights / weights.sum()
    mu_s, mu_t = w @ source, w @ target
    xs, xt = source - mu_s, target - mu_t
    covariance = (xt * w[:, None]).T @ xs
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    d = np.diag([1.0, 1.0, sign])
    rotation = u @ d @ vt
    variance = (w * (xs**2).sum(1)).sum()
    scale = float(np.trace(np.diag(singular) @ d) / variance)
    return scale, rotation, mu_t - scale * rotation @ mu_s


def _geman_mcclure(squared: torch.Tensor, scale: float) -> torch.Tensor:
    """Unitless robust loss in [0, 1): ``r^2 / (r^2 + s^2)`` from squared residuals."""
    return squared / (squared + scale * scale)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals."""
    triangles = vertices[faces]
    face_normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.clip(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12, None)


def _estimate_scan_normals(points: np.ndarray, tree: cKDTree, body_vertices: np.ndarray, body_normals: np.ndarray,
                           neighbours: int = 12) -> np.ndarray:
    """Unit normals (M, 3) of scan points from local PCA, oriented like the nearest body normal."""
    _, index = tree.query(points, k=min(neighbours, len(points)))
    local = points[index] - points[index].mean(axis=1, keepdims=True)
    covariance = np.einsum("mki,mkj->mij", local, local)
    _, eigenvectors = np.linalg.eigh(covariance)
    normals = eigenvectors[:, :, 0]
    _, nearest_body = cKDTree(body_vertices).query(points)
    flip = (normals * body_normals[nearest_body]).sum(1) < 0
    normals[flip] *= -1
    return normals


class _Parameters(torch.nn.Module):
    """The optimised quantities: betas, body pose, global orientation, translation, log-scale."""

    def __init__(self, betas, body_pose, global_orient, transl, log_scale) -> None:
        super().__init__()
        self.betas = torch.nn.Parameter(betas)
        self.body_pose = torch.nn.Parameter(body_pose)
        self.global_orient = torch.nn.Parameter(global_orient)
        self.transl = torch.nn.Parameter(transl)
        self.log_scale = torch.nn.Parameter(log_scale)

    def as_params(self):
        return SMPLParams(betas=self.betas, body_pose=self.body_pose, global_orient=self.global_orient,
                          transl=self.transl, scale=self.log_scale.exp())


def _coco_reprojection_error(body: BodyModel, params: SMPLParams, cameras: Sequence[Camera], keypoints2d: np.ndarray,
                             regressor: CocoRegressor | None = None) -> float:
    """Confidence-weighted mean pixel distance between the body's projected COCO keypoints and ``keypoints2d``."""
    regressor = CocoRegressor.for_body_model(body) if regressor is None else regressor
    with torch.no_grad():
        points = regressor.regress(_body_forward(body, params).vertices)[0].double().cpu().numpy()
    errors, weights = [], []
    for camera, observed in zip(cameras, keypoints2d):
        uv = camera.project(points)
        error = np.linalg.norm(uv - observed[:, :2], axis=-1)
        seen = (observed[:, 2] > 0) & np.isfinite(error)
        errors.append(np.where(seen, error, 0.0))
        weights.append(np.where(seen, observed[:, 2], 0.0))
    weights_array = np.asarray(weights)
    if weights_array.sum() <= 0:
        return float("nan")
    return float((np.asarray(errors) * weights_array).sum() / weights_array.sum())


# --------------------------------------------------------------------------------------------- the fit
def fit_smpl_multiview(
    body: BodyModel,
    cameras: Sequence[Camera],
    keypoints2d: np.ndarray,
    *,
    scan_vertices: np.ndarray | None = None,
    scan_normals: np.ndarray | None = None,
    coco_regressor: CocoRegressor | None = None,
    config: FitConfig = FitConfig(),
) -> FitResult:
    """Fit the body model to COCO-17 keypoints seen by N calibrated views (and optionally a scan).

    Args:
        body: a :class:`gas_core.body.smpl.BodyModel` on ``config.device``.
        cameras: N cameras (OpenCV convention, world y up).
        keypoints2d: (N, 17, 3) u, v pixels and confidence in [0, 1] per view.
        scan_vertices: (M, 3) scan points in metres in the cameras' world frame, or None to skip stage (c).
        scan_normals: (M, 3) outward unit normals of the scan points; estimated (local PCA oriented
            by the fitted body) when None.
        coco_regressor: the body's COCO regressor (default :meth:`CocoRegressor.for_body_model`).
        config: :class:`FitConfig`.

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: for malformed arguments, or when fewer than three torso keypoints triangulate.
    """
    if not isinstance(config, FitConfig):
        raise ValueError(f"config must be a FitConfig, got {type(config).__name__}")
    projections_np = projection_matrices(cameras)
    keypoints2d = validate_keypoints2d(keypoints2d, num_views=len(cameras))
    if keypoints2d.shape[1] != NUM_COCO_KEYPOINTS:
        raise ValueError(f"keypoints2d must hold {NUM_COCO_KEYPOINTS} COCO keypoints per view, got {keypoints2d.shape[1]}")
    if scan_vertices is not None:
        scan_vertices = np.asarray(scan_vertices, dtype=np.float64)
        if scan_vertices.ndim != 2 or scan_vertices.shape[1] != 3 or len(scan_vertices) < 16:
            raise ValueError(f"scan_vertices must be (M, 3) with M >= 16, got {scan_vertices.shape}")
        if not np.all(np.isfinite(scan_vertices)):
            raise ValueError("scan_vertices must be finite")
        if scan_normals is not None:
            scan_normals = np.asarray(scan_normals, dtype=np.float64)
            if scan_normals.shape != scan_vertices.shape:
                raise ValueError(f"scan_normals must have the shape of scan_vertices {scan_vertices.shape}, got {scan_normals.shape}")
    elif scan_normals is not None:
        raise ValueError("scan_normals was given without scan_vertices")
    regressor = CocoRegressor.for_body_model(body) if coco_regressor is None else coco_regressor
    if regressor.num_vertices != _num_vertices(body):
        raise ValueError(f"coco_regressor has {regressor.num_vertices} vertices, the body model {_num_vertices(body)}")

    device = torch.device(config.device)
    dtype = torch.float32
    timings: dict[str, float] = {}
    losses: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ (a) initialise
    start = time.perf_counter()
    triangulation = triangulate_keypoints(cameras, keypoints2d, robust_scale_px=config.triangulation_robust_scale_px)
    torso = np.array(_TORSO)
    torso_ok = triangulation.confidence[torso] > 0
    if torso_ok.sum() < 3:
        raise ValueError(
            "keypoints2d: fewer than three torso keypoints (shoulders, hips) could be triangulated; "
            "check the cameras and the detections"
        )
    rest = SMPLParams(
        betas=torch.zeros(1, 10, dtype=dtype, device=device),
        body_pose=torch.zeros(1, 23, 3, dtype=dtype, device=device),
        global_orient=torch.zeros(1, 3, dtype=dtype, device=device),
        transl=torch.zeros(1, 3, dtype=dtype, device=device),
        scale=torch.ones(1, dtype=dtype, device=device),
    )
    with torch.no_grad():
        rest_coco = regressor.regress(_body_forward(body, rest).vertices)[0].double().cpu().numpy()
    source = rest_coco[torso][torso_ok]
    target = triangulation.points[torso][torso_ok]
    scale0, rotation0, _ = similarity_transform(source, target)
    scale0 = float(np.clip(scale0, 0.5, 2.0))
    orient0 = torch.as_tensor(matrix_to_axis_angle(rotation0)[None], dtype=dtype, device=device)
    initial = SMPLParams(betas=rest.betas, body_pose=rest.body_pose, global_orient=orient0, transl=rest.transl,
                         scale=torch.full((1,), scale0, dtype=dtype, device=device))
    with torch.no_grad():
        placed = regressor.regress(_body_forward(body, initial).vertices)[0].double().cpu().numpy()
    transl0 = (triangulation.points[torso][torso_ok] - placed[torso][torso_ok]).mean(0)
    state = _Parameters(
        betas=rest.betas.clone(), body_pose=rest.body_pose.clone(), global_orient=orient0.clone(),
        transl=torch.as_tensor(transl0[None], dtype=dtype, device=device),
        log_scale=torch.full((1,), math.log(scale0), dtype=dtype, device=device),
    )
    timings["initialise"] = time.perf_counter() - start

    # Fixed tensors for the keypoint terms.
    projections = torch.as_tensor(projections_np, dtype=dtype, device=device)  # (N, 3, 4)
    observed = torch.as_tensor(keypoints2d[..., :2], dtype=dtype, device=device)  # (N, 17, 2)
    keypoint_weight = torch.as_tensor(regressor.keypoint_weights, dtype=dtype, device=device)
    confidence = torch.as_tensor(keypoints2d[..., 2], dtype=dtype, device=device) * keypoint_weight
    confidence_total = confidence.sum().clamp_min(1e-6)
    triangulated = torch.as_tensor(np.nan_to_num(triangulation.points), dtype=dtype, device=device)
    triangulated_confidence = torch.as_tensor(triangulation.confidence, dtype=dtype, device=device) * keypoint_weight
    triangulated_total = triangulated_confidence.sum().clamp_min(1e-6)

    def keypoint_and_prior_loss(output, widen: float = 1.0) -> torch.Tensor:
        """Robust keypoint terms (scales multiplied by ``widen``) plus the pose and shape priors."""
        coco = regressor.regress(output.vertices)[0]  # (17, 3)
        homogeneous = torch.cat([coco, torch.ones_like(coco[:, :1])], dim=-1)
        projected = torch.einsum("nij,kj->nki", projections, homogeneous)
        depth = projected[..., 2:3].clamp_min(1e-3)
        squared = ((projected[..., :2] / depth - observed) ** 2).sum(-1)
        loss_2d = (confidence * _geman_mcclure(squared, widen * config.keypoint_robust_scale_px)).sum() / confidence_total
        squared_3d = ((coco - triangulated) ** 2).sum(-1)
        loss_3d = (triangulated_confidence * _geman_mcclure(squared_3d, widen * config.keypoint_3d_robust_scale_m)).sum()
        loss_3d = loss_3d / triangulated_total
        prior = (config.pose_limit_weight * body_pose_limit_violation(state.body_pose).sum()
                 + config.pose_rest_weight * (state.body_pose**2).sum()
                 + config.shape_weight * (state.betas**2).sum()
                 + config.scale_weight * (state.log_scale**2).sum())
        return loss_2d + config.keypoint_3d_weight * loss_3d + prior

    # ------------------------------------------------------------------ (b) keypoints
    start = time.perf_counter()
    optimizer = torch.optim.Adam(state.parameters(), lr=config.keypoint_learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(config.keypoint_iterations, 1))))
    history: list[float] = []
    annealed = max(1, int(config.robust_anneal_fraction * config.keypoint_iterations))
    for step in range(config.keypoint_iterations):
        # Graduated non-convexity: wide robust scales first (every keypoint pulls), the set scales later.
        widen = config.robust_anneal_start ** max(0.0, 1.0 - step / annealed)
        optimizer.zero_grad(set_to_none=True)
        loss = keypoint_and_prior_loss(_body_forward(body, state.as_params()), widen)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
    losses["keypoints"] = history
    timings["keypoints"] = time.perf_counter() - start

    # ------------------------------------------------------------------ (c) scan surface
    if scan_vertices is not None and config.surface_iterations > 0:
        start = time.perf_counter()
        rng = np.random.default_rng(config.seed)
        scan_index = rng.choice(len(scan_vertices), size=min(config.surface_scan_samples, len(scan_vertices)),
                                replace=False)
        scan_points = scan_vertices[scan_index]
        scan_tree = cKDTree(scan_points)
        faces = np.asarray(body.faces, dtype=np.int64)
        with torch.no_grad():
            current = _body_forward(body, state.as_params()).vertices[0].double().cpu().numpy()
        if scan_normals is None:
            normals_np = _estimate_scan_normals(scan_points, scan_tree, current, _vertex_normals(current, faces))
        else:
            normals_np = scan_normals[scan_index] / np.clip(
                np.linalg.norm(scan_normals[scan_index], axis=1, keepdims=True), 1e-12, None)
        scan_t = torch.as_tensor(scan_points, dtype=dtype, device=device)
        normals_t = torch.as_tensor(normals_np, dtype=dtype, device=device)
        body_index = torch.as_tensor(
            rng.choice(current.shape[0], size=min(config.surface_body_samples, current.shape[0]), replace=False),
            device=device)
        optimizer = torch.optim.Adam(state.parameters(), lr=config.surface_learning_rate)
        history = []
        for _ in range(config.surface_iterations):
            optimizer.zero_grad(set_to_none=True)
            output = _body_forward(body, state.as_params())
            vertices = output.vertices[0]
            sampled = vertices[body_index]
            sampled_np = sampled.detach().double().cpu().numpy()
            _, nearest_scan = scan_tree.query(sampled_np)
            nearest_scan = torch.as_tensor(nearest_scan, device=device)
            offset = sampled - scan_t[nearest_scan]
            signed = (offset * normals_t[nearest_scan]).sum(-1)
            outside = _geman_mcclure(torch.relu(signed) ** 2, config.surface_outside_scale_m)
            body_to_scan = _geman_mcclure((offset**2).sum(-1), config.surface_robust_scale_m)
            _, nearest_body = cKDTree(sampled_np).query(scan_points)
            nearest_body = torch.as_tensor(nearest_body, device=device)
            scan_to_body = _geman_mcclure(((scan_t - sampled[nearest_body]) ** 2).sum(-1), config.surface_robust_scale_m)
            surface = (config.surface_outside_weight * outside.mean() + body_to_scan.mean() + scan_to_body.mean())
            loss = keypoint_and_prior_loss(output) + config.surface_weight * surface
            loss.backward()
            optimizer.step()
            history.append(float(loss.detach()))
        losses["surface"] = history
        timings["surface"] = time.perf_counter() - start

    final = SMPLParams(
        betas=state.betas.detach().clone(), body_pose=state.body_pose.detach().clone(),
        global_orient=state.global_orient.detach().clone(), transl=state.transl.detach().clone(),
        scale=state.log_scale.detach().exp().clone(),
    )
    with torch.no_grad():
        output = _body_forward(body, final)
    error_px = _coco_reprojection_error(body, final, cameras, keypoints2d, regressor)
    timings["total"] = sum(timings.values())
    logger.info("fit: %.2f px keypoint error, %.1f s", error_px, timings["total"])
    return FitResult(
        params=final,
        joints=output.joints[0].detach().double().cpu().numpy(),
        vertices=output.vertices[0].detach().double().cpu().numpy(),
        stage_losses=losses,
        keypoint_error_px=error_px,
        timings=timings,
        triangulation=triangulation,
    )
