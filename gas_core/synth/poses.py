"""A small library of everyday poses for Anny's full rig, plus seeded perturbation within joint limits.

Poses are rotations of named Anny bones in Anny's **"local-ref"** pose parameterisation: each bone's
rotation is expressed in world-aligned axes of Anny's frame at the reference pose and is carried along
by its parents. Those axes are:

* ``x`` — towards the body's left; a rotation about x swings a limb forward/back
  (``upperleg01`` −: leg forward; ``lowerleg01`` +: knee bends; ``spine0*`` +: bends forward);
* ``y`` — towards the body's back (Anny faces −y); a rotation about y swings a left arm down (+) or
  up (−);
* ``z`` — up; a rotation about z turns a bone about the vertical (``head`` +: looks to its left).

Angles are degrees, applied as extrinsic ``x`` then ``y`` then ``z`` rotations
(``scipy.spatial.transform.Rotation.from_euler("xyz", ...)``). Sided poses are written for the left
side; the right side is its mirror image through the body's sagittal plane, which keeps the x angle
and negates the y and z angles (:func:`mirror_degrees`). Anny's rest pose is an A-pose with the arms
about 48° below horizontal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

__all__ = [
    "Degrees",
    "BoneRotation",
    "PoseSpec",
    "POSE_LIBRARY",
    "POSE_NAMES",
    "JOINT_LIMITS_DEGREES",
    "PERTURBATION_DEGREES",
    "mirror_degrees",
    "pose_by_name",
    "perturbed_bone_angles",
    "pose_parameters",
]

#: Euler angles in degrees about Anny's (x, y, z) axes, applied extrinsically in that order.
Degrees = tuple[float, float, float]


@dataclass(frozen=True)
class BoneRotation:
    """One bone's rotation: Anny bone name and Euler angles (degrees, see module docstring)."""

    bone: str
    degrees: Degrees


@dataclass(frozen=True)
class PoseSpec:
    """A named pose: the bones it rotates (all others stay at the rest pose)."""

    name: str
    description: str
    rotations: tuple[BoneRotation, ...]

    def angles(self) -> dict[str, Degrees]:
        """Bone name -> Euler angles (degrees) of this pose."""
        return {rotation.bone: rotation.degrees for rotation in self.rotations}


def mirror_degrees(degrees: Sequence[float]) -> Degrees:
    """Mirror a left-side rotation onto the right side (keep x, negate y and z)."""
    x, y, z = (float(value) for value in degrees)
    return (x, -y, -z)


def _both_sides(stem: str, left: Degrees) -> tuple[BoneRotation, BoneRotation]:
    return BoneRotation(f"{stem}.L", left), BoneRotation(f"{stem}.R", mirror_degrees(left))


def _sided(stem: str, left: Degrees, right_as_left: Degrees) -> tuple[BoneRotation, BoneRotation]:
    """Different rotations per side, both written as if for the left side."""
    return BoneRotation(f"{stem}.L", left), BoneRotation(f"{stem}.R", mirror_degrees(right_as_left))


_POSES: tuple[PoseSpec, ...] = (
    PoseSpec("a_pose", "standing, arms about 48 degrees down (Anny's rest pose)", ()),
    PoseSpec("t_pose", "standing, arms horizontal", (*_both_sides("upperarm01", (0.0, -45.0, 0.0)),)),
    PoseSpec(
        "relaxed",
        "standing, arms hanging close to the body, elbows slightly bent",
        (*_both_sides("upperarm01", (0.0, 32.0, 0.0)), *_both_sides("lowerarm01", (-15.0, 0.0, 0.0))),
    ),
    PoseSpec(
        "walking",
        "mid-stride: left leg forward, right leg back with bent knee, arms swinging opposite",
        (
            *_sided("upperleg01", (-25.0, 0.0, 0.0), (15.0, 0.0, 0.0)),
            *_sided("lowerleg01", (8.0, 0.0, 0.0), (35.0, 0.0, 0.0)),
            *_sided("foot", (0.0, 0.0, 0.0), (-12.0, 0.0, 0.0)),
            *_sided("upperarm01", (20.0, 32.0, 0.0), (-25.0, 30.0, 0.0)),
            *_sided("lowerarm01", (-10.0, 0.0, 0.0), (-30.0, 0.0, 0.0)),
        ),
    ),
    PoseSpec(
        "arms_crossed",
        "standing, elbows bent, forearms folded across the belly",
        (
            *_sided("upperarm01", (-15.0, 20.0, 0.0), (-20.0, 20.0, 0.0)),
            *_sided("lowerarm01", (-50.0, 0.0, -95.0), (-42.0, 0.0, -95.0)),
        ),
    ),
    PoseSpec(
        "hands_on_hips",
        "standing, elbows out, hands resting on the hips",
        (*_both_sides("upperarm01", (15.0, -5.0, 0.0)), *_both_sides("lowerarm01", (-10.0, 95.0, 0.0))),
    ),
    PoseSpec(
        "one_arm_raised",
        "standing, right arm raised overhead, left arm relaxed",
        (
            *_sided("upperarm01", (0.0, 28.0, 0.0), (0.0, -110.0, 0.0)),
            *_sided("lowerarm01", (-10.0, 0.0, 0.0), (-15.0, 0.0, 0.0)),
        ),
    ),
    PoseSpec(
        "slight_squat",
        "knees and hips bent, torso leaning forward, arms reaching forward",
        (
            *_both_sides("upperleg01", (-45.0, -5.0, 0.0)),
            *_both_sides("lowerleg01", (75.0, 0.0, 0.0)),
            *_both_sides("foot", (-28.0, 0.0, 0.0)),
            BoneRotation("spine03", (15.0, 0.0, 0.0)),
            *_both_sides("upperarm01", (-45.0, 15.0, 0.0)),
        ),
    ),
    PoseSpec(
        "contrapposto",
        "weight on the left leg, right knee relaxed, head turned slightly",
        (
            *_sided("upperleg01", (0.0, 4.0, 0.0), (-8.0, 4.0, 0.0)),
            *_sided("lowerleg01", (0.0, 0.0, 0.0), (18.0, 0.0, 0.0)),
            BoneRotation("spine04", (0.0, -4.0, 0.0)),
            BoneRotation("head", (0.0, 4.0, 12.0)),
            *_both_sides("upperarm01", (0.0, 30.0, 0.0)),
            *_both_sides("lowerarm01", (-12.0, 0.0, 0.0)),
        ),
    ),
)

#: The built-in poses.
POSE_LIBRARY: tuple[PoseSpec, ...] = _POSES
POSE_NAMES: tuple[str, ...] = tuple(pose.name for pose in POSE_LIBRARY)

_SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")
_NECK = ("neck01", "neck02", "neck03")

# Per-axis (low, high) limits in degrees; sided bones are written for the left side.
_LEFT_AND_CENTRAL_LIMITS: dict[str, tuple[tuple[float, float], ...]] = {
    "root": ((-10.0, 10.0), (-10.0, 10.0), (-30.0, 30.0)),
    **{bone: ((-25.0, 40.0), (-20.0, 20.0), (-25.0, 25.0)) for bone in _SPINE},
    **{bone: ((-30.0, 40.0), (-25.0, 25.0), (-45.0, 45.0)) for bone in _NECK},
    "head": ((-30.0, 30.0), (-20.0, 20.0), (-50.0, 50.0)),
    "clavicle.L": ((-15.0, 15.0), (-20.0, 15.0), (-15.0, 15.0)),
    "upperarm01.L": ((-120.0, 60.0), (-140.0, 50.0), (-70.0, 80.0)),
    "lowerarm01.L": ((-150.0, 10.0), (-10.0, 120.0), (-90.0, 90.0)),
    "wrist.L": ((-60.0, 60.0), (-40.0, 40.0), (-60.0, 60.0)),
    "upperleg01.L": ((-100.0, 30.0), (-30.0, 45.0), (-40.0, 40.0)),
    "lowerleg01.L": ((0.0, 140.0), (-5.0, 5.0), (-10.0, 10.0)),
    "foot.L": ((-40.0, 30.0), (-20.0, 20.0), (-20.0, 20.0)),
}

# Random perturbation amplitude (degrees per axis) at perturbation scale 1.
_LEFT_AND_CENTRAL_NOISE: dict[str, Degrees] = {
    "root": (3.0, 3.0, 10.0),
    **{bone: (4.0, 3.0, 4.0) for bone in _SPINE},
    **{bone: (5.0, 4.0, 8.0) for bone in _NECK},
    "head": (8.0, 6.0, 15.0),
    "clavicle.L": (3.0, 4.0, 3.0),
    "upperarm01.L": (15.0, 15.0, 12.0),
    "lowerarm01.L": (20.0, 8.0, 15.0),
    "wrist.L": (15.0, 15.0, 15.0),
    "upperleg01.L": (10.0, 6.0, 8.0),
    "lowerleg01.L": (10.0, 0.0, 0.0),
    "foot.L": (8.0, 5.0, 5.0),
}


def _with_right_side(table: Mapping[str, tuple], mirror) -> dict[str, tuple]:
    result = dict(table)
    for bone, value in table.items():
        if bone.endswith(".L"):
            result[bone[:-2] + ".R"] = mirror(value)
    return result


def _mirror_limits(limits: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    (x_low, x_high), (y_low, y_high), (z_low, z_high) = limits
    return ((x_low, x_high), (-y_high, -y_low), (-z_high, -z_low))


#: Bone -> ((x_low, x_high), (y_low, y_high), (z_low, z_high)) in degrees, both sides.
JOINT_LIMITS_DEGREES: dict[str, tuple[tuple[float, float], ...]] = _with_right_side(
    _LEFT_AND_CENTRAL_LIMITS, _mirror_limits
)
#: Bone -> perturbation amplitude (degrees per axis) at scale 1, both sides.
PERTURBATION_DEGREES: dict[str, Degrees] = _with_right_side(_LEFT_AND_CENTRAL_NOISE, lambda value: tuple(value))


def pose_by_name(name: str) -> PoseSpec:
    """The library pose called ``name``.

    Raises:
        ValueError: if ``name`` is not one of :data:`POSE_NAMES`.
    """
    for pose in POSE_LIBRARY:
        if pose.name == name:
            return pose
    raise ValueError(f"name must be one of {', '.join(POSE_NAMES)}; got {name!r}")


def perturbed_bone_angles(pose: PoseSpec, perturbation_scale: float, seed: int) -> dict[str, Degrees]:
    """Euler angles per bone: the pose plus seeded uniform noise, clipped to the joint limits.

    Args:
        pose: the base pose.
        perturbation_scale: multiplies :data:`PERTURBATION_DEGREES` (0 gives the pose exactly,
            1 the full amplitude); must be in [0, 3].
        seed: seeds the noise; the same seed always gives the same angles.

    Returns:
        Bone name -> (x, y, z) degrees for every rotated or perturbed bone.

    Raises:
        ValueError: if ``perturbation_scale`` is outside [0, 3].
    """
    if not 0.0 <= perturbation_scale <= 3.0:
        raise ValueError(f"perturbation_scale must be in [0, 3], got {perturbation_scale}")
    angles = {bone: np.asarray(degrees, dtype=np.float64) for bone, degrees in pose.angles().items()}
    rng = np.random.default_rng(seed)
    for bone in sorted(PERTURBATION_DEGREES):
        noise = rng.uniform(-1.0, 1.0, size=3) * np.asarray(PERTURBATION_DEGREES[bone]) * perturbation_scale
        base = angles.get(bone, np.zeros(3))
        limits = np.asarray(JOINT_LIMITS_DEGREES[bone])
        angles[bone] = np.clip(base + noise, limits[:, 0], limits[:, 1])
    return {bone: tuple(float(value) for value in degrees) for bone, degrees in angles.items()}


def pose_parameters(
    bone_labels: Sequence[str], angles: Mapping[str, Sequence[float]], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Anny pose parameters (local-ref) for the given bone angles.

    Args:
        bone_labels: Anny's bone names, length B (``model.bone_labels``).
        angles: bone name -> Euler degrees (see module docstring); unlisted bones stay at rest.

    Returns:
        Tensor (1, B, 4, 4): homogeneous local transforms with zero translation.

    Raises:
        ValueError: if ``angles`` names a bone that is not in ``bone_labels``.
    """
    index_of = {label: i for i, label in enumerate(bone_labels)}
    params = torch.eye(4, dtype=dtype).repeat(1, len(bone_labels), 1, 1)
    for bone, degrees in angles.items():
        if bone not in index_of:
            raise ValueError(f"angles names bone {bone!r}, which is not one of Anny's bone_labels")
        matrix = Rotation.from_euler("xyz", np.asarray(degrees, dtype=np.float64), degrees=True).as_matrix()
        params[0, index_of[bone], :3, :3] = torch.as_tensor(matrix, dtype=dtype)
    return params
