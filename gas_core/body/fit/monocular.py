"""Per-frame SMPL of a monocular video: one body shape per clip, pose and translation per frame.

The paper (section 4.1.1) takes the SMPL of its monocular training videos from 4DHumans (HMR2.0).
HMR2.0 is optional here (:mod:`gas_core.body.fit.hmr2_adapter`); :func:`fit_smpl_monocular` is the
built-in route and can also refine HMR2.0's output (pass it as ``init``). It fits the body model to
COCO-17 keypoints detected in every frame, seen by one fixed perspective camera:

a. **Camera.** Given, or the OpenCV camera at the world origin looking along +z (world = camera
   frame) with a focal length given in pixels or derived from an assumed field of view over the
   larger image side (:attr:`MonocularFitConfig.fov_deg`, 55 degrees by default).
b. **Frames kept.** A frame needs ``min_keypoints`` keypoints with confidence >= ``min_confidence``,
   three of them on the torso (shoulders, hips); other frames carry no data term, are filled in from
   their neighbours (spherical interpolation of every joint rotation, linear translation) and flagged
   in :attr:`MonocularFitResult.interpolated`.
c. **Initialisation** (without ``init``): depth from the torso's pixel height against the mean body's
   torso height (``z = f * L_3d / L_2d``; from the shoulder width instead when that puts the body much
   nearer, i.e. the torso is seen end-on), position by back-projecting the torso centre. Then a
   multi-hypothesis start (:data:`START_HYPOTHESES`: standing, crouching, arms overhead, lying across
   the image or along the line of sight), each with the heading (rotation about the body's vertical
   axis) picked per frame from 16 candidates by the torso and face reprojection error; every start is
   fitted to each frame alone in one batch, and one start per frame is chosen by dynamic programming
   over the clip (:func:`_hypothesis_search`). ``hypothesis_iterations=0`` keeps the single upright start.
d. **Optimisation**, one Adam run over the whole clip (every frame in one batch, so one step costs
   O(T)): first orientation and translation alone on the torso and face keypoints, then everything.
   The loss, per frame and averaged over the clip:

   * Geman-McClure reprojection error in pixels squared (``s^2 r^2 / (r^2 + s^2)``, scale ``s``
     annealed from wide to ``keypoint_robust_scale_px``), weighted by confidence;
   * pose prior: soft joint limits from clinical ranges of motion
     (:data:`gas_core.body.limits.ANATOMICAL_LIMITS_DEGREES`, so arms overhead, deep squats and jumps
     are reachable; :func:`gas_core.body.limits.body_pose_limit_violation`) and a
     small L2 pull to :data:`RELAXED_BODY_POSE` (standing, arms down; also the starting pose), which
     makes the depth-ambiguous solutions (a thigh tilted towards or away from the camera projects
     alike) prefer the everyday one; shape prior: L2 on the clip's one set of betas;
   * temporal smoothness: squared second differences of the joint rotations (radians), of the 24
     joint positions (metres; optionally robust, :attr:`MonocularFitConfig.smooth_robust_scale_m`)
     and of the translation (metres);
   * depth prior: squared log-ratio of each frame's depth to the smoothed torso-based estimate (a
     monocular fit cannot tell a large far body from a small near one; this and the shape prior fix it).

Body-model keypoints come from :class:`gas_core.body.fit.fitter.CocoRegressor`. Under linear blend
skinning the regressed keypoints are an exact linear function of the 24 joint transforms (with
coefficients linear in betas, and in the rotation features when the model has pose correctives, as
licensed SMPL does); :class:`_KeypointModel` precomputes them once, so a step never poses the full
mesh (checked against the full mesh in the tests).

**Long clips.** Memory and time grow linearly with T, but the temporal terms assume one continuous
shot and one person; fit a long video clip by clip (40-120 frames at 25-30 fps, cut at shot changes),
e.g. with overlapping windows whose overlaps are discarded.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy.ndimage import median_filter
from scipy.spatial.transform import Rotation, Slerp

from gas_core.body.fit.fitter import CocoRegressor, _geman_mcclure
from gas_core.body.fit.keypoints import NUM_COCO_KEYPOINTS, ProjectedKeypoints, UltralyticsPoseDetector, validate_keypoints2d
from gas_core.body.joints import COCO17_NAMES, NUM_SMPL_JOINTS
from gas_core.body.limits import ANATOMICAL_LIMITS_DEGREES, body_pose_limit_violation
from gas_core.body.smpl import MAX_BETAS, NUM_BODY_JOINTS, BodyModel, SMPLParams
from gas_core.cameras import Camera
from gas_core.presets import PaperDefaults

__all__ = [
    "MonocularFitConfig",
    "MonocularFitResult",
    "fit_smpl_monocular",
    "monocular_camera",
    "RELAXED_BODY_POSE",
    "START_HYPOTHESES",
    "StartHypothesis",
    "project_video_keypoints",
    "detect_video_keypoints",
]

logger = logging.getLogger(__name__)

_TORSO = tuple(COCO17_NAMES.index(name) for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
_FACE = tuple(COCO17_NAMES.index(name) for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
_HEADING_CANDIDATES = 16
#: Fixed cost (pixels squared) of changing start between consecutive frames, on top of the joint motion's,
#: so that starts that converged to the same body do not alternate.
_SWITCH_COST_PX2 = 5.0
#: The shoulder width gives the depth instead of the torso's height when it puts the body nearer than
#: this fraction of the torso's estimate (a torso seen end-on); otherwise the torso's height does, as
#: both are about equally good on an upright body.
_FORESHORTENED_RATIO = 0.7
#: In-image roll of the torso (radians) from which the rolled start follows it.
_ROLL_FOLLOWED_RAD = math.radians(45.0)
#: Per-frame handicap (pixels squared) of every start but the first (standing): another start must
#: explain the keypoints clearly better to be chosen, so detector noise on everyday motion keeps the
#: standing start.
_UNUSUAL_START_COST_PX2 = 5.0


def _relaxed_body_pose() -> np.ndarray:
    """(23, 3) axis-angle, radians: standing with slightly flexed hips and knees, arms hanging ~60 degrees down,
    elbows slightly bent (sign conventions of :mod:`gas_core.body.limits`; the right side mirrors the left).
    """
    from gas_core.body.joints import SMPL_JOINT_NAMES

    pose = np.zeros((NUM_BODY_JOINTS, 3))
    left = {"left_hip": (-0.15, 0.0, 0.0), "left_knee": (0.25, 0.0, 0.0), "left_shoulder": (0.0, 0.0, -1.05),
            "left_elbow": (0.0, -0.3, 0.0)}
    for name, (rx, ry, rz) in left.items():
        pose[SMPL_JOINT_NAMES.index(name) - 1] = (rx, ry, rz)
        pose[SMPL_JOINT_NAMES.index(name.replace("left_", "right_")) - 1] = (rx, -ry, -rz)
    return pose


#: Start and prior mean of the body pose (a natural standing pose rather than the T-pose).
RELAXED_BODY_POSE = _relaxed_body_pose()


def _symmetric_pose(left: dict[str, tuple[float, float, float]], central: dict[str, tuple[float, float, float]] | None = None
                    ) -> np.ndarray:
    """(23, 3) axis-angle radians from left-side and central joint angles in degrees (right side mirrored)."""
    from gas_core.body.joints import SMPL_JOINT_NAMES

    pose = RELAXED_BODY_POSE.copy()
    for name, angles in (central or {}).items():
        pose[SMPL_JOINT_NAMES.index(name) - 1] = np.radians(angles)
    for name, (rx, ry, rz) in left.items():
        pose[SMPL_JOINT_NAMES.index(name) - 1] = np.radians((rx, ry, rz))
        pose[SMPL_JOINT_NAMES.index(name.replace("left_", "right_")) - 1] = np.radians((rx, -ry, -rz))
    return pose


@dataclass(frozen=True)
class StartHypothesis:
    """One start of the multi-hypothesis initialisation (:attr:`MonocularFitConfig.hypothesis_iterations`).

    Attributes:
        name: what the start stands for, in words (logs only).
        body_pose: (23, 3) axis-angle radians, the starting body pose.
        tilt_deg: rotation vector (degrees, camera frame: x right, y down, z forward) applied to the
            upright body before the heading search; (-90, 0, 0) tips the head away from the camera
            (lying along the line of sight), (0, 0, 90) lays the body across the image.
        follow_image_roll: also roll the body about the line of sight so that its torso follows the
            hip-to-shoulder direction seen in the image (bodies leaning or lying across the image).
    """

    name: str
    body_pose: np.ndarray
    tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    follow_image_roll: bool = False


_CROUCH_POSE = _symmetric_pose({"left_hip": (-100.0, 0.0, 10.0), "left_knee": (120.0, 0.0, 0.0),
                                "left_ankle": (-20.0, 0.0, 0.0), "left_shoulder": (0.0, -60.0, -40.0)},
                               {"spine2": (10.0, 0.0, 0.0)})
_ARMS_UP_POSE = _symmetric_pose({"left_shoulder": (0.0, -10.0, 80.0), "left_collar": (0.0, 0.0, 20.0),
                                 "left_elbow": (0.0, -10.0, 0.0)})

#: The starts tried per frame: standing as seen, crouched, arms overhead, rolled to the image's torso
#: direction when it lies more than 45 degrees off upright (lying across the image), lying along the
#: line of sight (head away or towards the camera).
START_HYPOTHESES: tuple[StartHypothesis, ...] = (
    StartHypothesis("standing", RELAXED_BODY_POSE),
    StartHypothesis("crouching", _CROUCH_POSE),
    StartHypothesis("arms overhead", _ARMS_UP_POSE),
    StartHypothesis("lying across the image", RELAXED_BODY_POSE, follow_image_roll=True),
    StartHypothesis("lying, head away", RELAXED_BODY_POSE, tilt_deg=(-90.0, 0.0, 0.0)),
    StartHypothesis("lying, head towards the camera", RELAXED_BODY_POSE, tilt_deg=(90.0, 0.0, 0.0)),
)


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MonocularFitConfig(PaperDefaults):
    """Settings of :func:`fit_smpl_monocular`. Weights multiply terms in pixels squared (data), radians
    squared (pose), metres squared (joints, translation) and squared log depth ratios.

    Attributes:
        fov_deg: assumed field of view over the larger image side when no camera or focal length is given.
        focal_length_px: focal length in pixels; overrides ``fov_deg`` when set.
        global_iterations: Adam steps on orientation and translation only (torso and face keypoints).
        iterations: Adam steps on everything.
        learning_rate: Adam step size (decays to 10 % over each stage, cosine).
        keypoint_robust_scale_px: Geman-McClure scale of the reprojection term, pixels.
        robust_anneal_start: the robust scale starts this many times wider and shrinks to 1x (wide
            enough, 300 px at the default scale, that limbs far from the start pose, such as arms
            overhead, are pulled to their keypoints rather than discarded as outliers).
        robust_anneal_fraction: fraction of the main stage over which it shrinks.
        min_confidence: a keypoint counts as seen from this confidence on.
        min_keypoints: seen keypoints a frame needs (three of them on the torso) to be fitted rather
            than interpolated.
        pose_limit_weight: soft joint-limit penalty (squared radians outside the limits).
        pose_rest_weight: L2 pull of ``body_pose`` towards :data:`RELAXED_BODY_POSE` (also the start).
        shape_weight: L2 prior on the clip's betas.
        smooth_pose_weight: squared second differences of global orientation and body pose (radians).
        smooth_joints_weight: second differences of the 24 joint positions (metres), squared up to
            ``smooth_robust_scale_m`` and growing linearly beyond it (see below).
        smooth_robust_scale_m: scale ``s`` of the joints' smoothness penalty
            ``2 s^2 (sqrt(1 + |a|^2 / s^2) - 1)`` of each joint's acceleration ``a`` (metres per frame
            squared): quadratic (``|a|^2``) for small accelerations, so jitter is removed, and linear for
            large ones, so a jump's take-off or a fast arm swing is not flattened; 0 (the default) keeps
            it quadratic. Measured on the stress set, a robust scale of 5-10 mm/frame^2 brings a jump's
            fitted acceleration to the truth's but lets keypoint jitter through on turns (heading flips),
            so it is off by default.
        smooth_transl_weight: squared second differences of the translation (metres).
        depth_weight: squared log-ratio of depth to the torso-based estimate.
        hypothesis_iterations: Adam steps of the multi-hypothesis start (:data:`START_HYPOTHESES`, all
            frames and starts in one batch, no temporal terms; a third as many again on orientation and
            translation first); the main fit then starts from the best start per frame and skips its
            global stage. 0 keeps the single upright start and the global stage.
        hypothesis_switch_weight: cost of a change of start between consecutive frames, per squared
            metre of mean root-relative joint motion, against the per-frame cost in pixels squared.
        num_betas: shape coefficients fitted (at most the model's and 10).
        device: torch device of the optimisation (the body model may live anywhere; its arrays are copied).
        cpu_threads: torch threads during a CPU optimisation (restored afterwards); its tensors are
            small (T x 17 x 24), so one thread avoids the thread-synchronisation cost that dominates
            with more (7x faster measured on a loaded 2-core machine); None leaves torch's setting.
    """

    fov_deg: float = 55.0
    focal_length_px: float | None = None
    global_iterations: int = 60
    iterations: int = 300
    learning_rate: float = 0.03
    keypoint_robust_scale_px: float = 12.0
    robust_anneal_start: float = 25.0
    robust_anneal_fraction: float = 0.4
    min_confidence: float = 0.3
    min_keypoints: int = 6
    pose_limit_weight: float = 1000.0
    pose_rest_weight: float = 1.0
    shape_weight: float = 5.0
    smooth_pose_weight: float = 30.0
    smooth_joints_weight: float = 1000.0
    smooth_robust_scale_m: float = 0.0
    smooth_transl_weight: float = 1000.0
    depth_weight: float = 30.0
    hypothesis_iterations: int = 60
    hypothesis_switch_weight: float = 2000.0
    num_betas: int = MAX_BETAS
    device: str = "cpu"
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        if not 1.0 <= self.fov_deg <= 170.0:
            raise ValueError(f"fov_deg must be in [1, 170], got {self.fov_deg}")
        if self.focal_length_px is not None and not self.focal_length_px > 0:
            raise ValueError(f"focal_length_px must be positive or None, got {self.focal_length_px}")
        for name in ("global_iterations", "iterations"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("learning_rate", "keypoint_robust_scale_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.robust_anneal_start < 1.0:
            raise ValueError(f"robust_anneal_start must be >= 1, got {self.robust_anneal_start}")
        if not 0.0 < self.robust_anneal_fraction <= 1.0:
            raise ValueError(f"robust_anneal_fraction must be in (0, 1], got {self.robust_anneal_fraction}")
        if not 0.0 < self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in (0, 1], got {self.min_confidence}")
        if not 3 <= self.min_keypoints <= NUM_COCO_KEYPOINTS:
            raise ValueError(f"min_keypoints must be in [3, {NUM_COCO_KEYPOINTS}], got {self.min_keypoints}")
        if self.hypothesis_iterations < 0:
            raise ValueError(f"hypothesis_iterations must be >= 0, got {self.hypothesis_iterations}")
        for name in ("pose_limit_weight", "pose_rest_weight", "shape_weight", "smooth_pose_weight", "smooth_robust_scale_m",
                     "hypothesis_switch_weight",
                     "smooth_joints_weight", "smooth_transl_weight", "depth_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.num_betas <= MAX_BETAS:
            raise ValueError(f"num_betas must be in [0, {MAX_BETAS}], got {self.num_betas}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1 or None, got {self.cpu_threads}")

    @classmethod
    def tiny(cls) -> "MonocularFitConfig":
        """Short optimisation for tests and the demo."""
        return cls(global_iterations=20, iterations=80, learning_rate=0.05, hypothesis_iterations=30)

    def without_smoothing(self) -> "MonocularFitConfig":
        """The same settings with every temporal smoothness weight at 0 (per-frame fits)."""
        from dataclasses import replace

        return replace(self, smooth_pose_weight=0.0, smooth_joints_weight=0.0, smooth_transl_weight=0.0)


@dataclass
class MonocularFitResult:
    """Output of :func:`fit_smpl_monocular` for a clip of T frames.

    Attributes:
        params: :class:`SMPLParams` with batch T in the world frame (identical ``betas`` rows, scale 1);
            vertices on demand: ``body(result.params).vertices`` (T, V, 3) metres.
        camera: the fixed camera (OpenCV); world = camera frame unless a camera was given.
        joints: (T, 24, 3) SMPL joints, metres, world frame.
        keypoints3d: (T, 17, 3) the body's COCO-17 keypoints, metres, world frame.
        reprojection_error_px: (T,) confidence-weighted mean pixel distance of the projected COCO
            keypoints to the detected ones (NaN where a frame has none).
        interpolated: (T,) True where a frame had too few confident keypoints and was filled in.
        losses: total loss per Adam step, both stages.
        timings: seconds per stage (``initialise``, ``global``, ``full``, ``total``).
    """

    params: SMPLParams
    camera: Camera
    joints: np.ndarray
    keypoints3d: np.ndarray
    reprojection_error_px: np.ndarray
    interpolated: np.ndarray
    losses: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def betas(self) -> torch.Tensor:
        """(K,) the clip's one shape."""
        return self.params.betas[0]


def monocular_camera(image_size: tuple[int, int], config: MonocularFitConfig = MonocularFitConfig()) -> Camera:
    """The default camera: at the world origin, looking along +z (OpenCV), principal point at the centre.

    Args:
        image_size: (W, H) pixels.
        config: gives ``focal_length_px`` or ``fov_deg`` (over ``max(W, H)``).
    """
    width, height = check_image_size(image_size)
    focal = config.focal_length_px
    if focal is None:
        focal = 0.5 * max(width, height) / math.tan(math.radians(config.fov_deg) / 2.0)
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=np.eye(3), t=np.zeros(3), width=width, height=height)


def check_image_size(image_size) -> tuple[int, int]:
    """``image_size`` as ``(W, H)`` positive pixel ints; ValueError naming it otherwise."""
    try:
        width, height = (int(value) for value in image_size)
    except (TypeError, ValueError) as error:
        raise ValueError(f"image_size must be (W, H) in pixels, got {image_size!r}") from error
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return width, height


# ------------------------------------------------------------------------------- fast COCO keypoints
class _KeypointModel:
    """COCO-17 keypoints and SMPL joints of posed bodies without posing the mesh.

    With linear blend skinning, keypoint ``k = sum_v w_kv sum_j W_vj G_j [x_v; 1]`` where ``G_j`` are the
    24 relative joint transforms and ``x_v`` the shaped (and pose-corrected) rest vertex. Swapping the
    sums gives ``k = sum_j G_j b_kj`` with ``b_kj`` linear in betas (and in the pose features), which is
    precomputed here: a step costs O(T * 17 * 24) instead of O(T * V).
    """

    def __init__(self, body: BodyModel, regressor: CocoRegressor, num_betas: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        model = body.smplx_model
        lbs_weights = model.lbs_weights.detach().double().cpu()  # (V, 24)
        weights = torch.as_tensor(regressor.weights, dtype=torch.float64)  # (17, V)
        template = model.v_template.detach().double().cpu()  # (V, 3)
        shapedirs = model.shapedirs.detach().double().cpu()[..., :num_betas]  # (V, 3, K)
        joint_regressor = model.J_regressor.detach().double().cpu()  # (24, V)
        combined = weights[:, :, None] * lbs_weights[None]  # (17, V, 24)
        options = {"dtype": dtype, "device": device}
        self.base = torch.einsum("kvj,vc->kjc", combined, template).to(**options)
        self.homogeneous = combined.sum(1).to(**options)  # (17, 24)
        self.shape = torch.einsum("kvj,vcb->kjcb", combined, shapedirs).to(**options)
        posedirs = model.posedirs.detach().double().cpu()
        self.posedirs = None
        if bool(posedirs.abs().max() > 0):
            posedirs = posedirs.reshape(posedirs.shape[0], -1, 3)  # (207, V, 3)
            self.posedirs = torch.einsum("kvj,pvc->kjcp", combined, posedirs).to(**options)
        self.joint_base = (joint_regressor @ template).to(**options)  # (24, 3)
        self.joint_shape = torch.einsum("jv,vcb->jcb", joint_regressor, shapedirs).to(**options)
        self.parents = model.parents.detach().cpu().to(device)
        self.dtype = dtype

    def rest_root(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 3) rest-pose root joint of (B, K) betas."""
        return self.joint_base[0] + torch.einsum("cb,tb->tc", self.joint_shape[0], betas)

    def __call__(self, betas: torch.Tensor, full_pose: torch.Tensor, transl: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 or T, K) betas, (T, 24, 3) axis-angle, (T, 3) metres -> COCO (T, 17, 3), joints (T, 24, 3)."""
        from smplx.lbs import batch_rigid_transform, batch_rodrigues

        frames = full_pose.shape[0]
        rotations = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(frames, NUM_SMPL_JOINTS, 3, 3)
        betas = betas.expand(frames, -1)
        rest_joints = self.joint_base + torch.einsum("jcb,tb->tjc", self.joint_shape, betas)
        posed_joints, relative = batch_rigid_transform(rotations, rest_joints, self.parents, dtype=self.dtype)
        points = self.base + torch.einsum("kjcb,tb->tkjc", self.shape, betas)  # (T, 17, 24, 3)
        if self.posedirs is not None:
            identity = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
            feature = (rotations[:, 1:] - identity).reshape(frames, -1)
            points = points + torch.einsum("kjcp,tp->tkjc", self.posedirs, feature)
        coco = (torch.einsum("tjab,tkjb->tka", relative[..., :3, :3], points)
                + torch.einsum("tja,kj->tka", relative[..., :3, 3], self.homogeneous))
        return coco + transl[:, None], posed_joints + transl[:, None]


# --------------------------------------------------------------------------------------------- helpers
def _valid_frames(keypoints2d: np.ndarray, config: MonocularFitConfig) -> np.ndarray:
    seen = keypoints2d[..., 2] >= config.min_confidence
    return (seen.sum(1) >= config.min_keypoints) & (seen[:, list(_TORSO)].sum(1) >= 3)


def _fill_linear(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, ...) values with the invalid frames linearly interpolated (edges held) from valid ones."""
    frames = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    filled = np.stack([np.interp(frames, frames[valid], column[valid]) for column in flat.T], axis=1)
    return filled.reshape(values.shape)


def _fill_rotations(rotvecs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, J, 3) axis-angle with invalid frames slerped (edges held) from the valid ones."""
    if valid.all():
        return rotvecs
    frames = np.arange(len(rotvecs))
    known = frames[valid]
    filled = rotvecs.copy()
    if len(known) == 1:
        filled[:] = rotvecs[known[0]]
        return filled
    times = np.clip(frames, known[0], known[-1])
    for joint in range(rotvecs.shape[1]):
        slerp = Slerp(known, Rotation.from_rotvec(rotvecs[known, joint]))
        filled[~valid, joint] = slerp(times[~valid]).as_rotvec()
    return filled


@dataclass
class _Placement:
    """Per-frame placement of the mean body from the torso keypoints, camera frame: torso centre (T, 3)
    metres, torso depth (T,) metres, in-image roll of the hip-to-shoulder direction (T,) radians (0 when
    the shoulders are straight above the hips), and the frames it was measured on (T,) bool."""

    centre: np.ndarray
    depth: np.ndarray
    roll: np.ndarray
    measured: np.ndarray


def _initial_placement(keypoints2d: np.ndarray, valid: np.ndarray, camera: Camera, rest_coco: np.ndarray,
                       config: MonocularFitConfig) -> _Placement:
    """Where the mean body stands in each frame (see :class:`_Placement`).

    Depth is ``f * L_3d / L_2d`` of the torso's height, or of the shoulder width where that puts the
    body much nearer (:data:`_FORESHORTENED_RATIO`): foreshortening only shortens a segment in the image,
    so each estimate can only err far, and a torso seen end-on (lying along the line of sight) still
    shows its shoulder width. ``rest_coco`` (17, 3) belongs to the rest-pose mean body.
    """
    focal = float(0.5 * (camera.K[0, 0] + camera.K[1, 1]))
    principal = camera.K[:2, 2]
    ls, rs, lh, rh = _TORSO
    rest_torso_height = 0.5 * (np.linalg.norm(rest_coco[ls] - rest_coco[lh]) + np.linalg.norm(rest_coco[rs] - rest_coco[rh]))
    rest_shoulder_width = np.linalg.norm(rest_coco[ls] - rest_coco[rs])
    points, confidence = keypoints2d[..., :2], keypoints2d[..., 2]
    seen = confidence >= config.min_confidence
    # Torso pixel height from whichever shoulder-hip pairs are seen (a frame is valid with three torso points).
    left = np.linalg.norm(points[:, ls] - points[:, lh], axis=-1)
    right = np.linalg.norm(points[:, rs] - points[:, rh], axis=-1)
    left_ok, right_ok = seen[:, ls] & seen[:, lh], seen[:, rs] & seen[:, rh]
    pixel_height = np.where(left_ok & right_ok, 0.5 * (left + right), np.where(left_ok, left, right))
    pixel_height = np.where(left_ok | right_ok, pixel_height, np.nan)
    ok = valid & np.isfinite(pixel_height) & (pixel_height > 1.0)
    if not ok.any():
        raise ValueError("keypoints2d: no frame shows a shoulder-hip pair, so the body's depth cannot be estimated")
    depth = np.full(len(keypoints2d), np.nan)
    depth[ok] = focal * rest_torso_height / pixel_height[ok]
    shoulders_ok = ok & seen[:, ls] & seen[:, rs]
    shoulder_px = np.linalg.norm(points[:, ls] - points[:, rs], axis=-1)
    shoulders_ok &= shoulder_px > 1.0
    shoulder_depth = np.where(shoulders_ok, focal * rest_shoulder_width / np.clip(shoulder_px, 1.0, None), np.inf)
    nearer = shoulders_ok & (shoulder_depth < _FORESHORTENED_RATIO * depth)
    depth[nearer] = shoulder_depth[nearer]
    depth = _fill_linear(np.nan_to_num(depth), ok)
    depth = median_filter(depth, size=min(9, 2 * (len(depth) // 2) + 1), mode="nearest")
    # Torso centre in pixels -> camera-frame position of the torso centre.
    torso = list(_TORSO)
    weights = np.where(seen[:, torso], confidence[:, torso], 0.0)
    centre_px = (points[:, torso] * weights[..., None]).sum(1) / np.clip(weights.sum(1, keepdims=True), 1e-9, None)
    centre_px = _fill_linear(centre_px, ok)
    centre = np.concatenate([(centre_px - principal) / focal * depth[:, None], depth[:, None]], axis=1)
    # In-image direction from the hips' to the shoulders' midpoint; upright (pointing to -v) is roll 0.
    shoulder_mid = np.where(seen[:, [ls]] & seen[:, [rs]], 0.5 * (points[:, ls] + points[:, rs]),
                            np.where(seen[:, [ls]], points[:, ls], points[:, rs]))
    hip_mid = np.where(seen[:, [lh]] & seen[:, [rh]], 0.5 * (points[:, lh] + points[:, rh]),
                       np.where(seen[:, [lh]], points[:, lh], points[:, rh]))
    up = shoulder_mid - hip_mid
    roll = np.unwrap(np.where(ok, np.arctan2(up[:, 0], -up[:, 1]), 0.0))
    roll = median_filter(_fill_linear(roll, ok), size=min(5, 2 * (len(roll) // 2) + 1), mode="nearest")
    return _Placement(centre=centre, depth=depth, roll=roll, measured=ok)


def _oriented_start(keypoints2d: np.ndarray, placement: _Placement, camera: Camera, rest_coco: np.ndarray,
                    rest_root: np.ndarray, config: MonocularFitConfig, hypothesis: StartHypothesis
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame orientation (T, 3) axis-angle and translation (T, 3) metres of the mean body under
    ``hypothesis``: its tilt (and the image's roll when it follows it), then the turn about the body's
    own vertical axis that best explains the torso and face keypoints (16 candidates per frame,
    median-filtered over time). SMPL rotates about the rest root; the torso centre lands on the
    placement's. ``rest_coco`` (17, 3) and ``rest_root`` (3,): the rest-pose mean body (SMPL frame, y up).
    """
    focal = float(0.5 * (camera.K[0, 0] + camera.K[1, 1]))
    principal = camera.K[:2, 2]
    points, confidence = keypoints2d[..., :2], keypoints2d[..., 2]
    seen = confidence >= config.min_confidence
    frames = len(keypoints2d)
    # Upright in the camera (SMPL y up -> camera y down is a half turn about x), tilted, then rolled.
    upright = Rotation.from_rotvec([math.pi, 0.0, 0.0])
    tilt = Rotation.from_rotvec(np.radians(hypothesis.tilt_deg))
    roll = np.zeros(frames)
    if hypothesis.follow_image_roll:  # only bodies clearly leaning or lying across the image; upright stays upright
        roll = np.where(np.abs(placement.roll) > _ROLL_FOLLOWED_RAD, placement.roll, 0.0)
    base = Rotation.from_rotvec(np.outer(roll, [0.0, 0.0, 1.0])) * tilt * upright  # (T,)
    candidates = np.linspace(0.0, 2.0 * math.pi, _HEADING_CANDIDATES, endpoint=False)
    torso = list(_TORSO)
    used = torso + list(_FACE)
    body_points = rest_coco[used] - rest_root
    torso_mean = rest_coco[torso].mean(0) - rest_root
    weights = np.where(seen[:, used], confidence[:, used], 0.0)
    errors = np.zeros((frames, len(candidates)))
    for index, heading in enumerate(candidates):
        rotation = base * Rotation.from_rotvec([0.0, heading, 0.0])
        rotated = np.einsum("tab,kb->tka", rotation.as_matrix(), body_points - torso_mean)
        placed = rotated + placement.centre[:, None]
        uv = placed[..., :2] / np.clip(placed[..., 2:3], 1e-3, None) * focal + principal
        residual = np.linalg.norm(uv - points[:, used], axis=-1)
        errors[:, index] = (weights * np.minimum(residual, 200.0)).sum(1)
    best = np.argmin(errors, axis=1)
    heading = np.unwrap(candidates[best])
    heading = _fill_linear(heading, placement.measured)
    heading = median_filter(heading, size=min(5, 2 * (len(heading) // 2) + 1), mode="nearest")
    orientation = base * Rotation.from_rotvec(np.outer(heading, [0.0, 1.0, 0.0]))
    transl = placement.centre - orientation.apply(torso_mean) - rest_root
    return orientation.as_rotvec(), transl


def _hypothesis_search(model: "_KeypointModel", starts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                       keypoints2d: np.ndarray, valid: np.ndarray, camera: Camera, depth: np.ndarray,
                       config: MonocularFitConfig, regressor: CocoRegressor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best start per frame among ``starts`` (K tuples of world-frame orientation (T, 3), body pose
    (T, 23, 3) and translation (T, 3)): every start is fitted to its frame alone (the mean shape, no
    temporal terms; orientation and translation on the torso and face, then everything), each frame's
    result is scored by its reprojection and pose priors, and one start per frame is chosen by dynamic
    programming, where switching costs ``hypothesis_switch_weight`` times the mean squared change of the
    root-relative joints (metres) between consecutive frames, so a choice does not flicker.

    Returns world-frame orientation (T, 3), body pose (T, 23, 3) and translation (T, 3).
    """
    count, frames = len(starts), len(keypoints2d)
    options = {"dtype": model.dtype, "device": model.base.device}
    orient = torch.nn.Parameter(torch.as_tensor(np.concatenate([start[0] for start in starts]), **options))
    pose = torch.nn.Parameter(torch.as_tensor(np.concatenate([start[1] for start in starts]), **options))
    transl = torch.nn.Parameter(torch.as_tensor(np.concatenate([start[2] for start in starts]), **options))
    betas = torch.zeros(1, model.shape.shape[-1], **options)
    projection = torch.as_tensor(camera.projection_matrix, **options)
    observed = torch.as_tensor(np.tile(keypoints2d[..., :2], (count, 1, 1)), **options)
    confidence_np = np.where(keypoints2d[..., 2] >= config.min_confidence, keypoints2d[..., 2], 0.0)
    confidence_np = confidence_np * valid[:, None] * regressor.keypoint_weights[None]
    confidence = torch.as_tensor(np.tile(confidence_np, (count, 1)), **options)
    global_mask = np.zeros(NUM_COCO_KEYPOINTS)
    global_mask[list(_TORSO) + list(_FACE)] = 1.0
    global_confidence = confidence * torch.as_tensor(global_mask, **options)
    log_depth = torch.as_tensor(np.tile(np.log(depth), count), **options)
    pose_mean = torch.as_tensor(RELAXED_BODY_POSE, **options)
    depth_axis = projection.new_tensor(camera.R[2])

    def per_frame(weights: torch.Tensor, scale_px: float, with_body: bool) -> tuple[torch.Tensor, torch.Tensor]:
        coco, joints = model(betas, torch.cat([orient[:, None], pose], dim=1), transl)
        projected = torch.cat([coco, torch.ones_like(coco[..., :1])], dim=-1) @ projection.T
        uv = projected[..., :2] / projected[..., 2:3].clamp_min(1e-3)
        squared = ((uv - observed) ** 2).sum(-1)
        robust = scale_px * scale_px * _geman_mcclure(squared, scale_px)
        cost = (weights * robust).sum(1) / weights.sum(1).clamp_min(1e-6)
        if with_body:
            cost = cost + config.pose_limit_weight * body_pose_limit_violation(pose, ANATOMICAL_LIMITS_DEGREES)
            cost = cost + config.pose_rest_weight * ((pose - pose_mean) ** 2).sum((1, 2))
        return cost, joints

    def run(parameters, iterations: int, weights: torch.Tensor, with_body: bool) -> None:
        optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
        annealed = max(1, int(config.robust_anneal_fraction * iterations))
        for step in range(iterations):
            widen = config.robust_anneal_start ** max(0.0, 1.0 - step / annealed)
            optimizer.zero_grad(set_to_none=True)
            cost, joints = per_frame(weights, widen * config.keypoint_robust_scale_px, with_body)
            root_depth = (joints[:, 0] @ depth_axis + float(camera.t[2])).clamp_min(1e-3)
            loss = (cost + config.depth_weight * (root_depth.log() - log_depth) ** 2).mean()
            loss.backward()
            optimizer.step()

    run([orient, transl], max(1, config.hypothesis_iterations // 3), global_confidence, False)
    run([orient, pose, transl], config.hypothesis_iterations, confidence, True)
    with torch.no_grad():  # scored on the keypoints and the joint limits: the pull to standing is the handicap's job
        cost, joints = per_frame(confidence, config.keypoint_robust_scale_px, False)
        cost = cost + config.pose_limit_weight * body_pose_limit_violation(pose, ANATOMICAL_LIMITS_DEGREES)
    cost = cost.double().cpu().numpy().reshape(count, frames)
    cost[1:] += _UNUSUAL_START_COST_PX2
    relative = joints - joints[:, :1]
    relative = relative.double().cpu().numpy().reshape(count, frames, NUM_SMPL_JOINTS, 3)
    # Viterbi over the K starts: unary cost per frame, switching cost between consecutive frames.
    total = cost[:, 0].copy()
    back = np.zeros((count, frames), dtype=np.int64)
    for t in range(1, frames):
        change = ((relative[:, None, t - 1] - relative[None, :, t]) ** 2).sum(-1).mean(-1)  # (from, to)
        step = total[:, None] + config.hypothesis_switch_weight * change + _SWITCH_COST_PX2 * (1.0 - np.eye(count))
        back[:, t] = np.argmin(step, axis=0)
        total = step[back[:, t], np.arange(count)] + cost[:, t]
    chosen = np.zeros(frames, dtype=np.int64)
    chosen[-1] = int(np.argmin(total))
    for t in range(frames - 1, 0, -1):
        chosen[t - 1] = back[chosen[t], t]
    logger.debug("monocular fit: starts chosen per frame %s", chosen.tolist())
    rows = chosen * frames + np.arange(frames)
    return tuple(np.concatenate([start[index] for start in starts])[rows] for index in range(3))


def _second_difference(values: torch.Tensor) -> torch.Tensor:
    return values[2:] - 2.0 * values[1:-1] + values[:-2]


def _reprojection_error_px(projected: np.ndarray, keypoints2d: np.ndarray) -> np.ndarray:
    """(T,) confidence-weighted mean pixel distance over keypoints with confidence > 0 (NaN if none)."""
    distance = np.linalg.norm(projected - keypoints2d[..., :2], axis=-1)
    weight = np.where(keypoints2d[..., 2] > 0, keypoints2d[..., 2], 0.0)
    total = weight.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.nan_to_num(distance) * weight).sum(1) / total, np.nan)


# --------------------------------------------------------------------------------------------- the fit
def fit_smpl_monocular(
    body: BodyModel,
    keypoints2d: np.ndarray,
    image_size: tuple[int, int],
    config: MonocularFitConfig = MonocularFitConfig(),
    *,
    camera: Camera | None = None,
    init: SMPLParams | None = None,
    coco_regressor: CocoRegressor | None = None,
) -> MonocularFitResult:
    """Fit one body shape and per-frame pose, orientation and translation to a monocular clip.

    Args:
        body: a :class:`gas_core.body.smpl.BodyModel`.
        keypoints2d: (T, 17, 3) COCO-17 keypoints per frame: u, v in pixels and confidence in [0, 1].
        image_size: (W, H) of the frames, pixels.
        config: :class:`MonocularFitConfig`.
        camera: the fixed camera (OpenCV, world-to-camera); default :func:`monocular_camera`, i.e.
            world = camera frame. Its size must equal ``image_size``.
        init: optional starting parameters with batch T in the world frame (e.g. HMR2.0's, converted by
            :mod:`gas_core.body.fit.hmr2_adapter`); betas are averaged over the frames. Without it the
            torso-based initialisation is used.
        coco_regressor: the body's COCO regressor (default :meth:`CocoRegressor.for_body_model`).

    Returns:
        :class:`MonocularFitResult` (T frames).

    Raises:
        ValueError: naming the bad argument; also when no frame has enough confident keypoints.
    """
    if not isinstance(body, BodyModel):
        raise ValueError(f"body must be a BodyModel, got {type(body).__name__}")
    if not isinstance(config, MonocularFitConfig):
        raise ValueError(f"config must be a MonocularFitConfig, got {type(config).__name__}")
    width, height = check_image_size(image_size)
    keypoints2d = validate_keypoints2d(keypoints2d)
    if keypoints2d.shape[1] != NUM_COCO_KEYPOINTS:
        raise ValueError(f"keypoints2d must hold {NUM_COCO_KEYPOINTS} COCO keypoints per frame, got {keypoints2d.shape[1]}")
    frames = keypoints2d.shape[0]
    if frames < 1:
        raise ValueError("keypoints2d must hold at least one frame")
    if camera is None:
        camera = monocular_camera((width, height), config)
    elif not isinstance(camera, Camera):
        raise ValueError(f"camera must be a gas_core.cameras.Camera or None, got {type(camera).__name__}")
    elif (camera.width, camera.height) != (width, height):
        raise ValueError(f"camera is {camera.width}x{camera.height} but image_size is {width}x{height}")
    if init is not None:
        if not isinstance(init, SMPLParams):
            raise ValueError(f"init must be SMPLParams or None, got {type(init).__name__}")
        if init.batch_size != frames:
            raise ValueError(f"init has {init.batch_size} frames, keypoints2d {frames}")
    regressor = CocoRegressor.for_body_model(body) if coco_regressor is None else coco_regressor
    if regressor.num_vertices != body.num_vertices:
        raise ValueError(f"coco_regressor has {regressor.num_vertices} vertices, the body model {body.num_vertices}")
    valid = _valid_frames(keypoints2d, config)
    if not valid.any():
        raise ValueError(
            f"keypoints2d: no frame has {config.min_keypoints} keypoints with confidence >= {config.min_confidence} "
            "including three torso keypoints"
        )

    previous_threads = torch.get_num_threads()
    if config.cpu_threads is not None and torch.device(config.device).type == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        return _fit(body, keypoints2d, camera, config, init, regressor, valid)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(body: BodyModel, keypoints2d: np.ndarray, camera: Camera, config: MonocularFitConfig,
         init: SMPLParams | None, regressor: CocoRegressor, valid: np.ndarray) -> MonocularFitResult:
    """The fit itself, on checked arguments (see :func:`fit_smpl_monocular`)."""
    frames = keypoints2d.shape[0]
    device = torch.device(config.device)
    dtype = torch.float32
    options = {"dtype": dtype, "device": device}
    num_betas = min(config.num_betas, body.num_betas)
    timings: dict[str, float] = {}

    # ------------------------------------------------------------------ initialise
    start = time.perf_counter()
    model = _KeypointModel(body, regressor, num_betas, dtype, device)
    zero_betas = torch.zeros(1, num_betas, **options)
    with torch.no_grad():
        rest_coco, _ = model(zero_betas, torch.zeros(1, NUM_SMPL_JOINTS, 3, **options), torch.zeros(1, 3, **options))
        rest_root = model.rest_root(zero_betas)[0].double().cpu().numpy()
    rest_coco = rest_coco[0].double().cpu().numpy()
    placement = _initial_placement(keypoints2d, valid, camera, rest_coco, config)
    torso_depth = placement.depth
    # Camera frame -> world frame: x_w = R^T (x_c - t); the root stays the rotation centre.
    camera_rotation = Rotation.from_matrix(camera.R)

    def to_world(orient_cam: np.ndarray, transl_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        orient = (camera_rotation.inv() * Rotation.from_rotvec(orient_cam)).as_rotvec()
        return orient, camera_rotation.inv().apply(transl_cam + rest_root - camera.t) - rest_root

    searched = init is None and config.hypothesis_iterations > 0
    if init is None:
        starts = []
        for hypothesis in START_HYPOTHESES if searched else START_HYPOTHESES[:1]:
            orient, transl_h = to_world(*_oriented_start(keypoints2d, placement, camera, rest_coco, rest_root, config,
                                                         hypothesis))
            starts.append((orient, np.repeat(hypothesis.body_pose[None], frames, axis=0), transl_h))
        if searched:
            orient0, pose0, transl0 = _hypothesis_search(model, starts, keypoints2d, valid, camera, torso_depth,
                                                         config, regressor)
        else:
            orient0, pose0, transl0 = starts[0]
        betas0 = np.zeros((1, num_betas))
    else:
        orient0 = init.global_orient.detach().double().cpu().numpy()
        transl0 = init.transl.detach().double().cpu().numpy()
        pose0 = init.body_pose.detach().double().cpu().numpy()
        given = init.betas.detach().double().cpu().numpy().mean(0, keepdims=True)
        betas0 = np.zeros((1, num_betas))
        betas0[:, : min(num_betas, given.shape[1])] = given[:, :num_betas]
    full0 = _fill_rotations(np.concatenate([orient0[:, None], pose0], axis=1), valid)
    transl0 = _fill_linear(transl0, valid)
    timings["initialise"] = time.perf_counter() - start

    betas = torch.nn.Parameter(torch.as_tensor(betas0, **options))
    global_orient = torch.nn.Parameter(torch.as_tensor(full0[:, 0], **options))
    body_pose = torch.nn.Parameter(torch.as_tensor(full0[:, 1:], **options))
    transl = torch.nn.Parameter(torch.as_tensor(transl0, **options))

    # ------------------------------------------------------------------ fixed tensors
    projection = torch.as_tensor(camera.projection_matrix, **options)  # (3, 4)
    observed = torch.as_tensor(keypoints2d[..., :2], **options)
    confidence_np = np.where(keypoints2d[..., 2] >= config.min_confidence, keypoints2d[..., 2], 0.0)
    confidence_np = confidence_np * valid[:, None] * regressor.keypoint_weights[None]
    confidence = torch.as_tensor(confidence_np, **options)
    global_mask = np.zeros(NUM_COCO_KEYPOINTS)
    global_mask[list(_TORSO) + list(_FACE)] = 1.0
    global_confidence = confidence * torch.as_tensor(global_mask, **options)
    log_depth_prior = torch.as_tensor(np.log(torso_depth), **options)
    pose_mean = torch.as_tensor(RELAXED_BODY_POSE, **options)

    def data_term(coco: torch.Tensor, weights: torch.Tensor, scale_px: float) -> torch.Tensor:
        homogeneous = torch.cat([coco, torch.ones_like(coco[..., :1])], dim=-1)
        projected = homogeneous @ projection.T
        uv = projected[..., :2] / projected[..., 2:3].clamp_min(1e-3)
        squared = ((uv - observed) ** 2).sum(-1)
        robust = scale_px * scale_px * _geman_mcclure(squared, scale_px)
        return (weights * robust).sum() / weights.sum().clamp_min(1e-6)

    def depth_of_root(joints: torch.Tensor) -> torch.Tensor:
        return (joints[:, 0] @ projection.new_tensor(camera.R[2]) + float(camera.t[2])).clamp_min(1e-3)

    def loss_terms(coco, joints, weights, scale_px, with_body: bool) -> torch.Tensor:
        loss = data_term(coco, weights, scale_px)
        if config.depth_weight > 0:
            loss = loss + config.depth_weight * ((depth_of_root(joints).log() - log_depth_prior) ** 2).mean()
        if with_body:
            loss = loss + config.pose_limit_weight * body_pose_limit_violation(body_pose, ANATOMICAL_LIMITS_DEGREES).mean()
            loss = loss + config.pose_rest_weight * ((body_pose - pose_mean) ** 2).sum((1, 2)).mean()
            loss = loss + config.shape_weight * (betas**2).sum()
        if frames >= 3:
            if config.smooth_transl_weight > 0:
                loss = loss + config.smooth_transl_weight * (_second_difference(transl) ** 2).sum(-1).mean()
            if config.smooth_joints_weight > 0 and with_body:
                squared = (_second_difference(joints) ** 2).sum(-1)
                scale = config.smooth_robust_scale_m
                if scale > 0:
                    squared = 2.0 * scale * scale * (torch.sqrt(1.0 + squared / (scale * scale)) - 1.0)
                loss = loss + config.smooth_joints_weight * squared.sum(1).mean()
            if config.smooth_pose_weight > 0:
                rotations = torch.cat([global_orient[:, None], body_pose], dim=1) if with_body else global_orient[:, None]
                loss = loss + config.smooth_pose_weight * (_second_difference(rotations) ** 2).sum((1, 2)).mean()
        return loss

    def run_stage(parameters, iterations: int, with_body: bool, weights: torch.Tensor) -> list[float]:
        if iterations == 0:
            return []
        optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(iterations, 1))))
        annealed = max(1, int(config.robust_anneal_fraction * iterations))
        history = []
        for step in range(iterations):
            widen = config.robust_anneal_start ** max(0.0, 1.0 - step / annealed)
            optimizer.zero_grad(set_to_none=True)
            coco, joints = model(betas, torch.cat([global_orient[:, None], body_pose], dim=1), transl)
            loss = loss_terms(coco, joints, weights, widen * config.keypoint_robust_scale_px, with_body)
            loss.backward()
            optimizer.step()
            schedule.step()
            history.append(float(loss.detach()))
        return history

    start = time.perf_counter()
    global_iterations = 0 if init is not None else config.global_iterations
    losses = run_stage([global_orient, transl], global_iterations, False, global_confidence)
    timings["global"] = time.perf_counter() - start
    start = time.perf_counter()
    losses += run_stage([betas, global_orient, body_pose, transl], config.iterations, True, confidence)
    timings["full"] = time.perf_counter() - start

    # ------------------------------------------------------------------ fill the flagged frames, report
    full = torch.cat([global_orient[:, None], body_pose], dim=1).detach().double().cpu().numpy()
    full = _fill_rotations(full, valid)
    transl_np = _fill_linear(transl.detach().double().cpu().numpy(), valid)
    betas_np = betas.detach().double().cpu().numpy()
    params = SMPLParams(
        betas=torch.as_tensor(np.repeat(betas_np, frames, axis=0), dtype=dtype),
        body_pose=torch.as_tensor(full[:, 1:], dtype=dtype),
        global_orient=torch.as_tensor(full[:, 0], dtype=dtype),
        transl=torch.as_tensor(transl_np, dtype=dtype),
        scale=torch.ones(frames, dtype=dtype),
    )
    with torch.no_grad():
        coco, joints = model(params.betas[:1].to(device), torch.cat([params.global_orient[:, None], params.body_pose], 1).to(device),
                             params.transl.to(device))
    coco_np = coco.double().cpu().numpy()
    error_px = _reprojection_error_px(camera.project(coco_np), keypoints2d)
    timings["total"] = sum(timings.values())
    logger.info("monocular fit: %d frames (%d interpolated), %.2f px median keypoint error, %.1f s",
                frames, int((~valid).sum()), float(np.nanmedian(error_px)) if np.isfinite(error_px).any() else float("nan"),
                timings["total"])
    return MonocularFitResult(
        params=params,
        camera=camera,
        joints=joints.double().cpu().numpy(),
        keypoints3d=coco_np,
        reprojection_error_px=error_px,
        interpolated=~valid,
        losses=losses,
        timings=timings,
    )


# ---------------------------------------------------------------------------------- keypoint sources
def project_video_keypoints(points3d: np.ndarray, camera: Camera, *, noise_px: float = 0.0, drop_prob: float = 0.0,
                            outlier_prob: float = 0.0, seed: int = 0) -> np.ndarray:
    """Ground-truth stand-in for a detector on video: known 3D COCO keypoints seen by one camera.

    Each frame goes through :class:`gas_core.body.fit.keypoints.ProjectedKeypoints` (Gaussian pixel
    noise, dropped points, gross outliers; points behind the camera or outside the image get
    confidence 0), with per-frame seeds drawn from ``seed``.

    Args:
        points3d: (T, 17, 3) world points, metres, COCO-17 order.
        camera: the video's camera.
        noise_px, drop_prob, outlier_prob: as in :class:`ProjectedKeypoints`.
        seed: seed of the whole clip's corruption.

    Returns:
        (T, 17, 3) u, v pixels and confidence.
    """
    points3d = np.asarray(points3d, dtype=np.float64)
    if points3d.ndim != 3 or points3d.shape[1:] != (NUM_COCO_KEYPOINTS, 3) or len(points3d) == 0:
        raise ValueError(f"points3d must have shape (T, {NUM_COCO_KEYPOINTS}, 3) with T >= 1, got {points3d.shape}")
    if not isinstance(camera, Camera):
        raise ValueError(f"camera must be a gas_core.cameras.Camera, got {type(camera).__name__}")
    seeds = np.random.SeedSequence(seed).generate_state(len(points3d))
    return np.concatenate([
        ProjectedKeypoints(frame_points, noise_px=noise_px, drop_prob=drop_prob, outlier_prob=outlier_prob,
                           seed=int(frame_seed)).detect(None, [camera])
        for frame_points, frame_seed in zip(points3d, seeds)
    ])


def detect_video_keypoints(detector_weights: Path | str, frames: Sequence[np.ndarray], boxes: np.ndarray | None = None,
                           *, device: str = "cpu", image_size: int = 640, min_box_confidence: float = 0.25,
                           box_margin: float = 0.15) -> np.ndarray:
    """COCO-17 keypoints per video frame with an ultralytics pose model (local weights, no download).

    Args:
        detector_weights: path of an ultralytics pose checkpoint (:class:`UltralyticsPoseDetector`).
        frames: T RGB frames, each (H, W, 3) uint8, all the same size.
        boxes: optional (T, 4) ``x0, y0, x1, y1`` pixel boxes of the tracked person (e.g. from the
            person tracker); each frame is then cropped to its box grown by ``box_margin`` of its size
            per side, so the detector sees the tracked person, and keypoints are mapped back to the
            frame. Rows with a non-finite or empty box give confidence 0. Without boxes the detector
            keeps its most prominent person per frame.
        device, image_size, min_box_confidence: passed to :class:`UltralyticsPoseDetector`.
        box_margin: relative margin added around each box.

    Returns:
        (T, 17, 3) u, v in frame pixels and confidence in [0, 1].
    """
    frames = list(frames)
    if len(frames) == 0:
        raise ValueError("frames must hold at least one frame")
    shape = np.asarray(frames[0]).shape
    for index, frame in enumerate(frames):
        array = np.asarray(frame)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or array.shape != shape:
            raise ValueError(f"frames[{index}] must be an (H, W, 3) uint8 RGB array of the first frame's size {shape}, "
                             f"got {array.shape} {array.dtype}")
    if box_margin < 0:
        raise ValueError(f"box_margin must be >= 0, got {box_margin}")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (len(frames), 4):
            raise ValueError(f"boxes must have shape ({len(frames)}, 4), got {boxes.shape}")
    detector = UltralyticsPoseDetector(detector_weights, device=device, image_size=image_size,
                                       min_box_confidence=min_box_confidence)
    height, width = shape[:2]
    output = np.zeros((len(frames), NUM_COCO_KEYPOINTS, 3))
    crops, offsets, rows = [], [], []
    for index, frame in enumerate(frames):
        if boxes is None:
            crops.append(np.asarray(frame))
            offsets.append(np.zeros(2))
            rows.append(index)
            continue
        x0, y0, x1, y1 = boxes[index]
        if not np.all(np.isfinite(boxes[index])) or x1 <= x0 or y1 <= y0:
            continue
        pad_x, pad_y = box_margin * (x1 - x0), box_margin * (y1 - y0)
        left, top = int(max(0, math.floor(x0 - pad_x))), int(max(0, math.floor(y0 - pad_y)))
        right, bottom = int(min(width, math.ceil(x1 + pad_x))), int(min(height, math.ceil(y1 + pad_y)))
        if right - left < 2 or bottom - top < 2:
            continue
        crops.append(np.ascontiguousarray(np.asarray(frame)[top:bottom, left:right]))
        offsets.append(np.array([left, top], dtype=np.float64))
        rows.append(index)
    for first in range(0, len(crops), 16):
        batch = crops[first:first + 16]
        crop_cameras = [Camera(K=Camera.intrinsics_from_fov(50.0, crop.shape[1], crop.shape[0]), R=np.eye(3),
                               t=np.zeros(3), width=crop.shape[1], height=crop.shape[0]) for crop in batch]
        detected = detector.detect(batch, crop_cameras)  # the detector ignores the cameras' geometry
        for keypoints, offset, row in zip(detected, offsets[first:first + 16], rows[first:first + 16]):
            seen = keypoints[:, 2] > 0
            keypoints[seen, :2] += offset
            output[row] = keypoints
    return output
