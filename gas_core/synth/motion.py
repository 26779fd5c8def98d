"""Smooth motions of synthetic subjects (walk, dance, turn) with per-frame ground truth.

A motion is fully described by a :class:`MotionSpec` and the subject's :class:`SubjectSpec`; the same
pair always gives the same arrays. :func:`body_pose_tracks` gives the SMPL body pose per frame (sums of
sinusoids of each axis-angle component, so every track is infinitely differentiable in time, kept
inside :data:`gas_core.body.limits.JOINT_LIMITS_DEGREES` by construction rather than by clipping);
:func:`anny_bone_deltas` turns it into rotations of the Anny bones that own the SMPL joints;
:func:`root_trajectory` gives the whole-body motion (walk moves forward, turn rotates 360 degrees about
the vertical, dance sways); :func:`make_motion` poses and dresses the subject with
:func:`gas_core.synth.humans.pose_subject` (the same posing and clothing as
:func:`gas_core.synth.humans.make_subject`) and places each frame in the world.

World frame: the project's (metres, y up, heading 0 faces +z). Frame ``i`` is at time ``i / fps`` seconds
and is placed by ``p_world = yaw(i) @ p_subject + root(i)``, a rotation about +y then a translation.

Ground truth in the open body model (:class:`gas_core.body.smpl.BodyModel`, SMPL conventions) is derived
from the rig, not fitted: each SMPL joint's world rotation is the rotation of the Anny bone it owns
(first entry of ``owns`` in :data:`gas_core.body.joints.ANNY_JOINT_TABLE`) relative to the open model's
T-pose, ``S_j = yaw C G_b (G_b^T)^-1 C^T`` with ``G_b`` the bone's accumulated local-ref rotation in the
pose, ``G_b^T`` in the open model's rest T-pose (:func:`gas_core.body.open_model.anny_t_pose_parameters`)
and ``C`` = :data:`gas_core.body.anny_model.ANNY_TO_SMPL_ROTATION`; ``body_pose_j = rotvec(S_parent^T S_j)``.
``betas`` are the least-squares projection of the subject's T-posed body onto the model's 10 shape
directions, and ``transl`` puts the model's pelvis joint on the subject's pelvis. Motions only rotate
bones that own an SMPL joint, so the parameters reproduce the unclothed body up to the open model's own
approximation (joint regressor, shape space).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pickle
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from gas_core.body.anny_model import ANNY_TO_SMPL_ROTATION, PHENOTYPE_NAMES, load_anny
from gas_core.body.geometry import axis_angle_to_matrix, matrix_to_axis_angle, rotation_about_y
from gas_core.body.joints import ANNY_JOINT_TABLE, SMPL_JOINT_NAMES, SMPL_PARENTS
from gas_core.body.limits import ANATOMICAL_LIMITS_DEGREES
from gas_core.body.limits import JOINT_LIMITS_DEGREES as BODY_JOINT_LIMITS_DEGREES
from gas_core.body.smpl import NUM_BODY_JOINTS
from gas_core.body.open_model import anny_t_pose_parameters, t_posed_anny
from gas_core.synth.humans import SubjectSpec, SyntheticSubject, make_subject, pose_subject

__all__ = [
    "MOTION_KINDS",
    "STRESS_MOTION_KINDS",
    "root_rotations",
    "MotionSpec",
    "SMPLSequence",
    "SubjectMotion",
    "body_pose_tracks",
    "anny_bone_deltas",
    "root_trajectory",
    "smpl_sequence",
    "make_motion",
]

MotionKind = Literal["walk", "dance", "turn", "jump", "squat", "arms_overhead", "spin", "turn_away", "lie_down"]
#: The project's own motions (everyday ranges, :data:`gas_core.body.limits.JOINT_LIMITS_DEGREES`).
MOTION_KINDS: tuple[str, ...] = ("walk", "dance", "turn")
#: Motions outside the own ones, for stress sets (clinical ranges,
#: :data:`gas_core.body.limits.ANATOMICAL_LIMITS_DEGREES`; see :func:`stress_body_pose`).
STRESS_MOTION_KINDS: tuple[str, ...] = ("jump", "squat", "arms_overhead", "spin", "turn_away", "lie_down")
_ALL_MOTION_KINDS = MOTION_KINDS + STRESS_MOTION_KINDS
#: Motions whose feet stay on the floor while the pelvis moves up and down (:func:`make_motion` plants them).
_PLANTED_KINDS = ("jump", "squat", "lie_down")
#: Gravity for the jump's flight, m/s^2.
GRAVITY = 9.81



@dataclass(frozen=True)
class MotionSpec:
    """One motion.

    Attributes:
        kind: ``"walk"`` (gait cycle, moving forward along the heading), ``"dance"`` (seeded
            sinusoids on arms, legs, spine and head, swaying in place) or ``"turn"`` (relaxed stance
            rotating 360 degrees about the vertical over the sequence); or a stress motion
            (:data:`STRESS_MOTION_KINDS`): ``"jump"`` (crouch, a ballistic flight of 0.45 s with the
            arms swung overhead, landing crouch), ``"squat"`` (one deep squat over the clip, arms
            forward), ``"arms_overhead"`` (both arms raised overhead and lowered, out of phase),
            ``"spin"`` (1.25 fast turns about the vertical, arms out), ``"turn_away"`` (turns its back
            to the camera over the first 40 % of the clip and stays so) or ``"lie_down"`` (crouches,
            lies on its back, gets up again).
        num_frames: T >= 2.
        fps: frames per second (> 0).
        seed: seeds the dance's frequencies and phases and the walk's cadence; >= 0.
        amplitude: in (0, 1], scales every joint oscillation.
        walk_speed: metres per second along the heading (walk only), in [0, 3].
        heading_deg: initial facing, degrees about +y (0 faces +z).
    """

    kind: MotionKind
    num_frames: int = 48
    fps: float = 30.0
    seed: int = 0
    amplitude: float = 1.0
    walk_speed: float = 0.8
    heading_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _ALL_MOTION_KINDS:
            raise ValueError(f"kind must be one of {', '.join(_ALL_MOTION_KINDS)}; got {self.kind!r}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be at least 2, got {self.num_frames}")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not 0.0 < self.amplitude <= 1.0:
            raise ValueError(f"amplitude must be in (0, 1], got {self.amplitude}")
        if not 0.0 <= self.walk_speed <= 3.0:
            raise ValueError(f"walk_speed must be in [0, 3] m/s, got {self.walk_speed}")

    @property
    def times(self) -> np.ndarray:
        """(T,) seconds of each frame."""
        return np.arange(self.num_frames, dtype=np.float64) / self.fps


def _oscillation(times: np.ndarray, centre: float, terms: list[tuple[float, float, float]],
                 limits: tuple[float, float]) -> np.ndarray:
    """``centre + sum a sin(2 pi f t + phase)`` (degrees), amplitudes shrunk so it never leaves ``limits``."""
    low, high = limits
    centre = float(np.clip(centre, low, high))
    room = min(centre - low, high - centre)
    total = sum(abs(a) for a, _, _ in terms)
    shrink = 1.0 if total <= room or total == 0.0 else room / total
    values = np.full_like(times, centre)
    for amplitude, frequency, phase in terms:
        values = values + shrink * amplitude * np.sin(2.0 * math.pi * frequency * times + phase)
    return values


_JOINT_INDEX = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}

# A joint's oscillations per axis: (centre, [(amplitude, frequency Hz, phase rad), ...]) in degrees.
Axis = tuple[float, list[tuple[float, float, float]]]


def _set(pose: np.ndarray, times: np.ndarray, joint: str, axis: int, centre: float,
         terms: list[tuple[float, float, float]]) -> None:
    """Fill ``pose[:, joint, axis]`` (degrees) with an oscillation kept inside the joint's limits."""
    index = _JOINT_INDEX[joint] - 1
    pose[:, index, axis] = _oscillation(times, centre, terms, BODY_JOINT_LIMITS_DEGREES[joint][axis])


def _set_sides(pose: np.ndarray, times: np.ndarray, stem: str, axis: int, centre: float,
               left: list[tuple[float, float, float]], right: list[tuple[float, float, float]]) -> None:
    """Both sides of ``stem``, written as left-side angles; the right side is the mirror image (x kept,
    y and z negated, as in :mod:`gas_core.body.limits`)."""
    _set(pose, times, f"left_{stem}", axis, centre, left)
    sign = 1.0 if axis == 0 else -1.0
    _set(pose, times, f"right_{stem}", axis, sign * centre, [(sign * a, f, ph) for a, f, ph in right])


def _walk_pose(spec: MotionSpec, times: np.ndarray, pose: np.ndarray) -> None:
    cadence = _walk_cadence(spec)
    a, half = spec.amplitude, math.pi
    _set_sides(pose, times, "hip", 0, -6.0, [(22 * a, cadence, half)], [(22 * a, cadence, 0.0)])
    _set_sides(pose, times, "knee", 0, 24.0, [(20 * a, cadence, 0.5 * half)], [(20 * a, cadence, -0.5 * half)])
    _set_sides(pose, times, "ankle", 0, 0.0, [(8 * a, cadence, 0.3)], [(8 * a, cadence, 0.3 + half)])
    _set_sides(pose, times, "shoulder", 2, -70.0, [(3 * a, 2 * cadence, 0.0)], [(3 * a, 2 * cadence, 0.0)])
    _set_sides(pose, times, "shoulder", 1, 0.0, [(18 * a, cadence, 0.0)], [(18 * a, cadence, half)])
    _set_sides(pose, times, "elbow", 1, -20.0, [(8 * a, cadence, 0.3)], [(8 * a, cadence, 0.3 + half)])
    _set(pose, times, "spine2", 1, 0.0, [(5 * a, cadence, half)])
    _set(pose, times, "spine1", 0, 3.0, [(1.5 * a, 2 * cadence, 0.0)])


def _turn_pose(spec: MotionSpec, times: np.ndarray, pose: np.ndarray) -> None:
    rate = float(np.random.default_rng([spec.seed, 0x7123]).uniform(0.3, 0.6))
    a = spec.amplitude
    _set_sides(pose, times, "shoulder", 2, -68.0, [(6 * a, rate, 0.0)], [(6 * a, rate, 1.0)])
    _set_sides(pose, times, "elbow", 1, -15.0, [(6 * a, rate, 0.5)], [(6 * a, rate, 1.5)])
    _set_sides(pose, times, "hip", 0, 0.0, [(4 * a, 2 * rate, 0.0)], [(4 * a, 2 * rate, math.pi)])
    _set_sides(pose, times, "knee", 0, 6.0, [(4 * a, 2 * rate, 0.0)], [(4 * a, 2 * rate, math.pi)])
    _set(pose, times, "head", 1, 0.0, [(10 * a, rate, 0.2)])


# Dance: per joint (left side for sided joints) and axis, (centre, largest total amplitude) in degrees.
_DANCE_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "spine1": ((4.0, 8.0), (0.0, 10.0), (0.0, 8.0)),
    "spine2": ((0.0, 5.0), (0.0, 8.0), (0.0, 6.0)),
    "spine3": ((0.0, 5.0), (0.0, 8.0), (0.0, 6.0)),
    "neck": ((0.0, 10.0), (0.0, 15.0), (0.0, 8.0)),
    "head": ((0.0, 10.0), (0.0, 15.0), (0.0, 10.0)),
    "collar": ((0.0, 5.0), (0.0, 6.0), (5.0, 10.0)),
    "shoulder": ((0.0, 25.0), (-15.0, 35.0), (-35.0, 45.0)),
    "elbow": ((0.0, 20.0), (-55.0, 45.0), (0.0, 4.0)),
    "wrist": ((0.0, 15.0), (0.0, 15.0), (0.0, 20.0)),
    "hip": ((-12.0, 20.0), (0.0, 10.0), (6.0, 8.0)),
    "knee": ((28.0, 24.0), (0.0, 0.0), (0.0, 0.0)),
    "ankle": ((0.0, 10.0), (0.0, 5.0), (0.0, 5.0)),
}
_DANCE_SIDED = {"collar", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"}


def _dance_pose(spec: MotionSpec, times: np.ndarray, pose: np.ndarray) -> None:
    rng = np.random.default_rng([spec.seed, 0xDA7CE])
    beat = float(rng.uniform(0.5, 1.1))  # main rhythm, Hz

    def terms(largest: float) -> list[tuple[float, float, float]]:
        weights = rng.dirichlet(np.ones(3))
        multiples = rng.choice([0.5, 1.0, 1.5, 2.0], size=3)
        phases = rng.uniform(0.0, 2.0 * math.pi, size=3)
        return [(spec.amplitude * largest * w, beat * m, ph) for w, m, ph in zip(weights, multiples, phases)]

    for stem, axes in _DANCE_RANGES.items():
        for axis, (centre, largest) in enumerate(axes):
            if largest == 0.0:
                continue
            if stem in _DANCE_SIDED:
                _set_sides(pose, times, stem, axis, centre, terms(largest), terms(largest))
            else:
                _set(pose, times, stem, axis, centre, terms(largest))


# ------------------------------------------------------------------------------------------ stress motions
def _bump(times: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 window (cos^2, continuous slope) of ``half_width`` seconds around ``centre``."""
    x = np.clip((times - centre) / half_width, -1.0, 1.0)
    return np.cos(0.5 * math.pi * x) ** 2


def _ramp(times: np.ndarray, start: float, end: float) -> np.ndarray:
    """Smooth 0 -> 1 step (half cosine) from ``start`` to ``end`` seconds."""
    u = np.clip((times - start) / max(end - start, 1e-9), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(math.pi * u)


@dataclass(frozen=True)
class _StressProgram:
    """A stress motion before the feet are planted: body pose (T, 23, 3) degrees, root yaw and pitch
    (T,) radians (pitch about +x: positive tips the body forwards), root translation (T, 3) metres
    (the jump's flight only), and how far the body lies (T,) in [0, 1] (``lie_down``)."""

    pose: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    translation: np.ndarray
    lying: np.ndarray


def _put(pose: np.ndarray, joint: str, axis: int, values: np.ndarray) -> None:
    pose[:, _JOINT_INDEX[joint] - 1, axis] = values


def _put_sides(pose: np.ndarray, stem: str, axis: int, left: np.ndarray, right: np.ndarray | None = None) -> None:
    """Left-side angles (degrees) and the mirrored right side (x kept, y and z negated)."""
    sign = 1.0 if axis == 0 else -1.0
    _put(pose, f"left_{stem}", axis, left)
    _put(pose, f"right_{stem}", axis, sign * (left if right is None else right))


def _legs(pose: np.ndarray, pitch_deg: np.ndarray, hip: np.ndarray, knee: np.ndarray) -> None:
    """Hip flexion (negative rx), knee flexion and the ankle angle that keeps the feet level with the
    floor: the foot's pitch is ``pitch + hip + knee + ankle``, so ``ankle = -(pitch + hip + knee)``
    (clipped to the ankle's range)."""
    _put_sides(pose, "hip", 0, hip)
    _put_sides(pose, "knee", 0, knee)
    _put_sides(pose, "ankle", 0, np.clip(-(pitch_deg + hip + knee), -34.0, 48.0))


def _arms(pose: np.ndarray, raise_left: np.ndarray, raise_right: np.ndarray, forward: np.ndarray | float = 0.0,
          elbow: np.ndarray | float = -15.0) -> None:
    """Arm elevation in [0, 1] per side (0 hanging at -75 degrees, 1 straight overhead: the shoulder at
    +90 above the T-pose and the collar at +25), ``forward`` swing (degrees of horizontal flexion) and elbow."""
    for side, lift in (("left", raise_left), ("right", raise_right)):
        sign = 1.0 if side == "left" else -1.0
        _put(pose, f"{side}_shoulder", 2, sign * (-75.0 + 165.0 * lift))
        _put(pose, f"{side}_collar", 2, sign * 25.0 * lift)
        _put(pose, f"{side}_shoulder", 1, sign * -np.broadcast_to(forward, lift.shape))
        _put(pose, f"{side}_elbow", 1, sign * np.broadcast_to(elbow, lift.shape))


def _stress_program(spec: MotionSpec) -> _StressProgram:
    """The stress motion ``spec.kind`` (see :class:`MotionSpec`); every angle inside
    :data:`gas_core.body.limits.ANATOMICAL_LIMITS_DEGREES` (checked)."""
    times = spec.times
    count = len(times)
    duration = count / spec.fps
    rng = np.random.default_rng([spec.seed, 0x57E55])
    a = spec.amplitude
    pose = np.zeros((count, NUM_BODY_JOINTS, 3))
    zeros = np.zeros(count)
    pitch = zeros.copy()
    yaw = np.full(count, math.radians(spec.heading_deg))
    translation = np.zeros((count, 3))
    lying = zeros.copy()
    if spec.kind == "squat":
        depth = a * float(rng.uniform(0.85, 1.0)) * np.sin(math.pi * times / duration) ** 2
        pitch = np.radians(20.0 * depth)
        _legs(pose, 20.0 * depth, -110.0 * depth, 125.0 * depth)
        _put_sides(pose, "hip", 2, 10.0 * depth)  # knees out
        _arms(pose, 0.45 * depth, 0.45 * depth, forward=70.0 * depth, elbow=-10.0 - 10.0 * depth)
        _put(pose, "spine2", 0, 8.0 * depth)
    elif spec.kind == "jump":
        flight = 0.45
        mid = duration * float(rng.uniform(0.45, 0.55))
        take_off, landing = mid - flight / 2, mid + flight / 2
        crouch = a * 0.6 * (_bump(times, take_off - 0.18, 0.25) + _bump(times, landing + 0.18, 0.25))
        pitch_deg = 18.0 * crouch
        pitch = np.radians(pitch_deg)
        point = _bump(times, mid, flight / 2)  # toes pointed in the air
        _legs(pose, pitch_deg, -95.0 * crouch, 115.0 * crouch)
        _put_sides(pose, "ankle", 0, np.clip(-(pitch_deg - 95.0 * crouch + 115.0 * crouch), -34.0, 48.0) + 30.0 * point)
        swing = a * _bump(times, mid, flight / 2 + 0.3)
        _arms(pose, swing, swing, forward=20.0 * swing - 30.0 * crouch * (1 - swing), elbow=-10.0)
        _put(pose, "spine1", 0, -8.0 * swing)
        tau = np.clip(times - take_off, 0.0, flight)
        translation[:, 1] = a * (0.5 * GRAVITY * flight * tau - 0.5 * GRAVITY * tau**2)
    elif spec.kind == "arms_overhead":
        reps = max(1, round(duration / 1.6))
        phase = float(rng.uniform(0.1, 0.6))
        left = a * np.sin(math.pi * reps * times / duration) ** 2
        right = a * np.sin(math.pi * reps * times / duration + phase) ** 2
        _arms(pose, left, right, forward=10.0 * (left + right) / 2, elbow=-5.0 - 20.0 * (1 - left))
        _put(pose, "spine1", 0, -8.0 * (left + right) / 2)
        _put_sides(pose, "knee", 0, 8.0 + zeros)
        _put_sides(pose, "hip", 0, -4.0 + zeros)
    elif spec.kind == "spin":
        turns = 1.25 * a
        u = times / times[-1] if times[-1] > 0 else times
        yaw = yaw + 2.0 * math.pi * turns * (u - np.sin(2.0 * math.pi * u) / (2.0 * math.pi))
        out = 0.3 + 0.1 * np.sin(2.0 * math.pi * 1.5 * times)
        _arms(pose, out, out, forward=15.0, elbow=-30.0)
        _put_sides(pose, "knee", 0, 12.0 + 6.0 * np.sin(2.0 * math.pi * 2.0 * times))
        _put_sides(pose, "hip", 0, -6.0 + zeros)
        _put(pose, "head", 1, 25.0 * np.sin(2.0 * math.pi * 0.8 * times))
    elif spec.kind == "turn_away":
        yaw = yaw + math.pi * a * _ramp(times, 0.0, 0.4 * duration)
        beat = float(rng.uniform(0.6, 1.0))
        left = 0.15 + 0.15 * np.sin(2.0 * math.pi * beat * times)
        right = 0.15 + 0.15 * np.sin(2.0 * math.pi * beat * times + 2.0)
        _arms(pose, left, right, forward=20.0 * np.sin(2.0 * math.pi * 0.5 * beat * times), elbow=-30.0)
        _put(pose, "head", 1, 30.0 * np.sin(2.0 * math.pi * 0.4 * times))
        _put_sides(pose, "knee", 0, 10.0 + 8.0 * np.sin(2.0 * math.pi * beat * times))
    elif spec.kind == "lie_down":
        d = duration
        crouch = _ramp(times, 0.0, 0.2 * d) * (1.0 - _ramp(times, 0.8 * d, d))
        lying = a * _ramp(times, 0.2 * d, 0.45 * d) * (1.0 - _ramp(times, 0.55 * d, 0.8 * d))
        pitch_deg = 15.0 * crouch * (1 - lying) - 90.0 * lying
        pitch = np.radians(pitch_deg)
        hip = (-100.0 * crouch) * (1 - lying) - 5.0 * lying
        knee = 125.0 * crouch * (1 - lying) + 10.0 * lying
        _legs(pose, pitch_deg, hip, knee)
        _arms(pose, 0.3 * crouch * (1 - lying) + 0.1 * lying, 0.3 * crouch * (1 - lying) + 0.1 * lying,
              forward=60.0 * crouch * (1 - lying), elbow=-20.0)
        _put(pose, "neck", 0, 20.0 * lying)  # the head lifts a little off the floor
    else:
        raise ValueError(f"kind {spec.kind!r} is not a stress motion ({', '.join(STRESS_MOTION_KINDS)})")
    low, high = (np.degrees(limit.double().numpy()) for limit in _anatomical_limits())
    if np.any(pose < low - 1e-6) or np.any(pose > high + 1e-6):
        joint = int(np.argwhere((pose < low - 1e-6) | (pose > high + 1e-6))[0, 1])
        raise ValueError(f"stress motion {spec.kind} leaves the clinical range of {SMPL_JOINT_NAMES[joint + 1]}")
    return _StressProgram(pose=pose, yaw=yaw, pitch=pitch, translation=translation, lying=lying)


def _anatomical_limits():
    from gas_core.body.limits import body_pose_limits

    return body_pose_limits(dtype=torch.float64, table=ANATOMICAL_LIMITS_DEGREES)


def _walk_cadence(spec: MotionSpec) -> float:
    """Gait cycles per second of a walk."""
    return float(np.random.default_rng([spec.seed, 0x3A1C]).uniform(0.8, 1.0))


def body_pose_tracks(spec: MotionSpec) -> np.ndarray:
    """(T, 23, 3) SMPL body pose per frame, axis-angle radians (conventions of :mod:`gas_core.body.limits`).

    Every component is a sum of sinusoids of time (smooth) inside
    :data:`gas_core.body.limits.JOINT_LIMITS_DEGREES` by construction (amplitudes are shrunk, never
    clipped). The feet and hands (SMPL joints 10, 11, 22, 23) stay at rest.
    """
    if spec.kind in STRESS_MOTION_KINDS:
        return np.radians(_stress_program(spec).pose)
    times = spec.times
    pose = np.zeros((len(times), NUM_BODY_JOINTS, 3))
    {"walk": _walk_pose, "dance": _dance_pose, "turn": _turn_pose}[spec.kind](spec, times, pose)
    return np.radians(pose)


def root_trajectory(spec: MotionSpec) -> tuple[np.ndarray, np.ndarray]:
    """Whole-body placement per frame: ``(yaw (T,) radians about +y, translation (T, 3) metres)``.

    Walk: forward along the heading at ``walk_speed`` with a small vertical bob. Turn: yaw rises
    linearly by exactly 360 degrees from the first to the last frame. Dance: yaw and sideways sway.
    The pelvis sits at the translation (it is at the subject frame's origin). Stress motions: their
    yaw (spin, turn away) and the jump's ballistic flight; :func:`make_motion` adds the offsets that keep
    the feet of the planted motions on the floor (so the translation of a :class:`SubjectMotion`'s
    ground truth is the full one).
    """
    if spec.kind in STRESS_MOTION_KINDS:
        program = _stress_program(spec)
        return program.yaw.copy(), program.translation.copy()
    times = spec.times
    heading = math.radians(spec.heading_deg)
    yaw = np.full_like(times, heading)
    translation = np.zeros((len(times), 3))
    rng = np.random.default_rng([spec.seed, 0x2007])
    a = spec.amplitude
    if spec.kind == "walk":
        cadence = _walk_cadence(spec)
        distance = spec.walk_speed * times
        translation[:, 0] = math.sin(heading) * distance
        translation[:, 2] = math.cos(heading) * distance
        translation[:, 1] = 0.015 * a * np.cos(4.0 * math.pi * cadence * times)
    elif spec.kind == "turn":
        yaw = heading + 2.0 * math.pi * np.arange(len(times)) / (len(times) - 1)
        translation[:, 1] = 0.005 * a * np.sin(2.0 * math.pi * 0.5 * times)
    else:
        rate = float(rng.uniform(0.2, 0.5))
        yaw = heading + math.radians(25.0) * a * np.sin(2.0 * math.pi * rate * times + rng.uniform(0, 2 * math.pi))
        translation[:, 0] = 0.12 * a * np.sin(2.0 * math.pi * rate * 0.7 * times + rng.uniform(0, 2 * math.pi))
        translation[:, 2] = 0.06 * a * np.sin(2.0 * math.pi * rate * 0.5 * times + rng.uniform(0, 2 * math.pi))
        translation[:, 1] = 0.02 * a * np.sin(2.0 * math.pi * rate * 2.0 * times)
    return yaw, translation


def rotation_about_x(angles: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``angles`` (T,) radians about +x."""
    angles = np.asarray(angles, dtype=np.float64)
    c, s = np.cos(angles), np.sin(angles)
    out = np.zeros(angles.shape + (3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1], out[..., 1, 2], out[..., 2, 1], out[..., 2, 2] = c, -s, s, c
    return out


def root_rotations(spec: MotionSpec) -> np.ndarray:
    """(T, 3, 3) whole-body rotation per frame: yaw about +y after a pitch about +x (stress motions
    lean and lie down; the own motions only turn)."""
    yaw, _ = root_trajectory(spec)
    pitch = _stress_program(spec).pitch if spec.kind in STRESS_MOTION_KINDS else np.zeros_like(yaw)
    return rotation_about_y(yaw) @ rotation_about_x(pitch)


@dataclass(frozen=True)
class SMPLSequence:
    """Open-body-model parameters per frame (SMPL conventions, world frame, radians, metres).

    Attributes:
        betas: (10,) shape, shared by all frames.
        body_pose: (T, 23, 3) axis-angle rotations relative to the parent joint.
        global_orient: (T, 3) axis-angle rotation of the pelvis (about the pelvis joint).
        transl: (T, 3) translation.
        scale: (T,) ones.
        rest_pelvis: (3,) the model's pelvis joint for ``betas`` in the rest pose (the centre
            ``global_orient`` rotates about), metres.
    """

    betas: np.ndarray
    body_pose: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    scale: np.ndarray
    rest_pelvis: np.ndarray

    def frame(self, index: int) -> dict[str, np.ndarray]:
        """Frame ``index`` as the project's SMPL dict: betas (10,), body_pose (23, 3), global_orient (3,),
        transl (3,), scale (1,)."""
        return {"betas": self.betas, "body_pose": self.body_pose[index], "global_orient": self.global_orient[index],
                "transl": self.transl[index], "scale": self.scale[index:index + 1]}


def _accumulated_rotations(deltas: np.ndarray, parents: list[int]) -> np.ndarray:
    """Local-ref deltas (N, bones, 3, 3) -> accumulated rotations ``G_b = G_parent D_b`` (parents come first)."""
    accumulated = np.empty_like(deltas)
    for bone, parent in enumerate(parents):
        accumulated[:, bone] = deltas[:, bone] if parent < 0 else accumulated[:, parent] @ deltas[:, bone]
    return accumulated


@functools.lru_cache(maxsize=8)
def _t_pose(phenotype_values: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Anny's deltas (bones, 3, 3) putting a phenotype in the open model's T-pose, and their accumulation."""
    model = load_anny()
    phenotypes = torch.as_tensor([phenotype_values], dtype=model.dtype)
    deltas = anny_t_pose_parameters(model, phenotypes)[0, :, :3, :3].double().numpy()
    return deltas, _accumulated_rotations(deltas[None], [int(p) for p in model.bone_parents])[0]


@functools.lru_cache(maxsize=8)
def _shape_fit(phenotype_values: tuple[float, ...], body_model_path: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(betas (10,), rest pelvis joint (3,)) of a phenotype in the open body model."""
    from gas_core.body.smpl import MAX_BETAS, BodyModel, SMPLParams

    body = BodyModel(body_model_path)
    with body.path.open("rb") as stream:
        translation = np.asarray(pickle.load(stream, encoding="latin1").get("anny_to_smpl_translation", np.zeros(3)))
    t_posed = t_posed_anny(load_anny(), np.asarray([phenotype_values]), translation.reshape(3))
    template = body.template_vertices.double().numpy()
    shapedirs = body.smplx_model.shapedirs.double().numpy()[..., :MAX_BETAS]
    if t_posed.vertices.shape[1] != template.shape[0]:
        raise ValueError(f"the body model at {body.path} has {template.shape[0]} vertices, not Anny's "
                         f"{t_posed.vertices.shape[1]}: ground-truth parameters need the open body model")
    target = (t_posed.vertices[0] - template).reshape(-1)
    betas = np.linalg.lstsq(shapedirs.reshape(-1, shapedirs.shape[-1]), target, rcond=None)[0]
    rest = dataclasses.replace(SMPLParams.zeros(1, num_betas=len(betas)),
                               betas=torch.as_tensor(betas[None], dtype=torch.float32))
    with torch.no_grad():
        pelvis = body(rest).joints[0, 0].double().numpy()
    return betas, pelvis


def _phenotype_key(subject_spec: SubjectSpec) -> tuple[float, ...]:
    values = subject_spec.phenotype.as_dict()
    return tuple(values[name] for name in PHENOTYPE_NAMES)


#: SMPL joints whose Anny owner has siblings that must turn with it (toes, fingers): kept at rest.
_RESTING_JOINTS = ("left_foot", "right_foot", "left_hand", "right_hand")


def anny_bone_deltas(body_pose: np.ndarray, subject_spec: SubjectSpec) -> np.ndarray:
    """Anny local-ref deltas (T, bones, 3, 3) that pose ``subject_spec``'s body like ``body_pose``.

    Inverse of the ground-truth derivation (module docstring): for SMPL joint ``j`` owned by Anny bone
    ``b`` with parent bone ``p``, ``D_b = (G_p^T)^-1 C^T R_j C G_p^T D_b^T`` where ``R_j`` is the joint's
    rotation, ``G^T`` / ``D^T`` the T-pose accumulated rotations / deltas. Bones between two owners
    keep the identity.

    Args:
        body_pose: (T, 23, 3) axis-angle radians; the feet and hands (joints 10, 11, 22, 23) must be zero.
        subject_spec: the subject (its phenotype decides the T-pose).

    Raises:
        ValueError: on a wrong shape or a rotated foot or hand joint.
    """
    body_pose = np.asarray(body_pose, dtype=np.float64)
    if body_pose.ndim != 3 or body_pose.shape[1:] != (NUM_BODY_JOINTS, 3):
        raise ValueError(f"body_pose must have shape (T, {NUM_BODY_JOINTS}, 3), got {body_pose.shape}")
    for name in _RESTING_JOINTS:
        if np.any(body_pose[:, SMPL_JOINT_NAMES.index(name) - 1]):
            raise ValueError(f"body_pose rotates {name}, which motions keep at rest (its Anny bones have siblings)")
    model = load_anny()
    labels = list(model.bone_labels)
    parents = [int(p) for p in model.bone_parents]
    t_deltas, t_rotations = _t_pose(_phenotype_key(subject_spec))
    conversion = np.asarray(ANNY_TO_SMPL_ROTATION)
    deltas = np.tile(np.eye(3), (len(body_pose), len(labels), 1, 1))
    for joint in range(1, len(ANNY_JOINT_TABLE)):
        if ANNY_JOINT_TABLE[joint].smpl_joint in _RESTING_JOINTS:
            continue
        bone = labels.index(ANNY_JOINT_TABLE[joint].owns[0])
        parent_t = t_rotations[parents[bone]]
        rotation_anny = conversion.T @ axis_angle_to_matrix(body_pose[:, joint - 1]) @ conversion
        deltas[:, bone] = parent_t.T @ rotation_anny @ parent_t @ t_deltas[bone]
    return deltas


def smpl_sequence(subject_spec: SubjectSpec, motion: MotionSpec, deltas: np.ndarray, *,
                  body_model_path: str | None = None, translation: np.ndarray | None = None) -> SMPLSequence:
    """Ground-truth open-body-model parameters of ``subject_spec`` posed by Anny ``deltas`` over ``motion``.

    Args:
        subject_spec: the subject (its phenotype gives the betas and the T-pose).
        motion: gives the root trajectory (:func:`root_trajectory`).
        deltas: (T, bones, 3, 3) Anny local-ref deltas, e.g. :func:`anny_bone_deltas`.
        body_model_path: folder of the open body model (default: the configured one).
        translation: (T, 3) pelvis positions, metres, replacing :func:`root_trajectory`'s (the planted
            ones of :func:`make_motion`).

    Returns:
        :class:`SMPLSequence` with T = ``motion.num_frames`` frames.
    """
    model = load_anny()
    labels = list(model.bone_labels)
    parents = [int(p) for p in model.bone_parents]
    count = motion.num_frames
    if deltas.shape != (count, len(labels), 3, 3):
        raise ValueError(f"deltas must have shape ({count}, {len(labels)}, 3, 3), got {deltas.shape}")
    betas, pelvis_rest = _shape_fit(_phenotype_key(subject_spec), body_model_path)
    _, t_rotations = _t_pose(_phenotype_key(subject_spec))
    accumulated = _accumulated_rotations(np.asarray(deltas, dtype=np.float64), parents)
    if translation is None:
        _, translation = root_trajectory(motion)
    conversion = np.asarray(ANNY_TO_SMPL_ROTATION)
    owners = [labels.index(row.owns[0]) for row in ANNY_JOINT_TABLE]
    relative_to_t = accumulated[:, owners] @ np.swapaxes(t_rotations[owners], -1, -2)[None]
    world = root_rotations(motion)[:, None] @ (conversion @ relative_to_t @ conversion.T)
    body_pose = np.empty((count, len(owners) - 1, 3))
    for joint in range(1, len(owners)):
        local = np.swapaxes(world[:, SMPL_PARENTS[joint]], -1, -2) @ world[:, joint]
        body_pose[:, joint - 1] = matrix_to_axis_angle(local)
    return SMPLSequence(
        betas=betas.astype(np.float64),
        body_pose=body_pose,
        global_orient=matrix_to_axis_angle(world[:, 0]),
        transl=translation - pelvis_rest[None],
        scale=np.ones(count),
        rest_pelvis=pelvis_rest.copy(),
    )


@dataclass(frozen=True, eq=False)
class SubjectMotion:
    """A synthetic subject performing a motion, world frame (metres, y up), with ground truth.

    Attributes:
        subject: the subject as :func:`gas_core.synth.humans.make_subject` builds it; its faces, UVs,
            texture and vertex colours hold for every frame (its own vertices are its library pose).
        vertices: (T, V, 3) float32 clothed surface per frame.
        body_vertices: (T, V_body, 3) float32 unclothed body per frame.
        joints24: (T, 24, 3) float32 SMPL joints (ground truth).
        coco17: (T, 17, 3) float32 COCO-17 keypoints of the unclothed body (ground truth).
        smpl: open-body-model parameters per frame.
        motion: the motion spec.
    """

    subject: SyntheticSubject
    vertices: np.ndarray
    body_vertices: np.ndarray
    joints24: np.ndarray
    coco17: np.ndarray
    smpl: SMPLSequence
    motion: MotionSpec

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangles shared by every frame."""
        return self.subject.faces

    @property
    def times(self) -> np.ndarray:
        """(T,) seconds."""
        return self.motion.times


def _planting_offsets(motion: MotionSpec, body_vertices: np.ndarray, joints24: np.ndarray,
                      rotations: np.ndarray) -> np.ndarray:
    """(T, 3) world offsets that keep a planted motion on the floor: vertically, the body's lowest
    point stays at the first frame's (the floor); horizontally, the midpoint of the ankles stays where
    it was in the first frame, except while lying down, when the offset is held from the moment the
    body starts to lie back (the seat stays put)."""
    lowest = np.einsum("tij,tvj->tvi", rotations, body_vertices.astype(np.float64))[..., 1].min(axis=1)
    ankles = np.einsum("tij,tkj->tki", rotations, joints24[:, [7, 8]].astype(np.float64)).mean(axis=1)
    offsets = np.zeros((len(rotations), 3))
    offsets[:, 1] = lowest[0] - lowest
    horizontal = ankles[0, [0, 2]] - ankles[:, [0, 2]]
    lying = _stress_program(motion).lying
    if lying.any():
        start = int(np.argmax(lying > 0))
        held = horizontal[max(start - 1, 0)]
        horizontal = (1.0 - lying)[:, None] * horizontal + lying[:, None] * held
    offsets[:, [0, 2]] = horizontal
    return offsets


def make_motion(subject_spec: SubjectSpec, motion: MotionSpec, *, texture_size: int = 512,
                body_model_path: str | None = None) -> SubjectMotion:
    """Pose, dress and place ``subject_spec`` over ``motion`` (deterministic).

    Args:
        subject_spec: the subject.
        motion: the motion.
        texture_size: texture side in pixels (>= 8).
        body_model_path: folder of the open body model for the ground-truth parameters.

    Returns:
        :class:`SubjectMotion` with T = ``motion.num_frames`` frames.
    """
    subject = make_subject(subject_spec, texture_size=texture_size)
    deltas = anny_bone_deltas(body_pose_tracks(motion), subject_spec)
    moving = [b for b in range(deltas.shape[1]) if not np.allclose(deltas[:, b], np.eye(3), atol=1e-12)]
    labels = list(load_anny().bone_labels)
    euler = {b: Rotation.from_matrix(deltas[:, b]).as_euler("xyz", degrees=True) for b in moving}
    frames = [{labels[b]: angles[i] for b, angles in euler.items()} for i in range(motion.num_frames)]
    posed = pose_subject(subject_spec, frames)
    _, translation = root_trajectory(motion)
    rotations64 = root_rotations(motion)
    if motion.kind in _PLANTED_KINDS:
        translation = translation + _planting_offsets(motion, posed.body_vertices, posed.joints24, rotations64)
    rotations = rotations64.astype(np.float32)
    shift = translation.astype(np.float32)[:, None]

    def place(points: np.ndarray) -> np.ndarray:
        return (np.einsum("tij,tvj->tvi", rotations, points) + shift).astype(np.float32)

    return SubjectMotion(
        subject=subject,
        vertices=place(posed.vertices),
        body_vertices=place(posed.body_vertices),
        joints24=place(posed.joints24),
        coco17=place(posed.coco17),
        smpl=smpl_sequence(subject_spec, motion, deltas, body_model_path=body_model_path, translation=translation),
        motion=motion,
    )
