"""Plausible rotation ranges of SMPL's 23 body joints, and random poses within them.

Convention. SMPL's joint frames are world-aligned in the rest T-pose: +x is the body's left, +y up,
+z forward (the body faces +z). A body joint's rotation is an axis-angle vector ``(rx, ry, rz)``;
the table bounds each component, in degrees. For a single-axis motion the component is the angle,
so the ranges read as anatomical ones, for example:

* about x (``rx``): flexion/extension of legs, spine and head. A positive ``rx`` swings a downward
  limb backwards (hip extension, knee flexion), tips the spine and head forward, points toes down.
* about y (``ry``): twist of legs, spine and head about the vertical axis; for the arms (which lie
  along x) it swings the arm forward/back: on the left arm negative ``ry`` is forward.
* about z (``rz``): side bending of legs and spine; for the left arm a positive ``rz`` raises it,
  negative lowers it towards the body (``rz`` = -90 degrees is arm-down).

The right side mirrors the left through the x = 0 plane, which keeps ``rx`` and negates ``ry`` and
``rz`` (an axis-angle vector is a pseudovector), so only the left side is written out.

Two tables. :data:`JOINT_LIMITS_DEGREES` is deliberately conservative (everyday motion rather than
the extremes a gymnast reaches) so that poses drawn from it look natural and are safe for linear blend
skinning; the samplers and the project's own motions use it. :data:`ANATOMICAL_LIMITS_DEGREES` follows
published clinical ranges of active motion of healthy adults (the AAOS "Joint Motion" norms as
tabulated by Greene & Heckman, 1994, and the goniometry norms of Norkin & White), split over SMPL's
joints where SMPL spreads one anatomical motion over several joints; fits use it as their soft joint
limits, so that reaching overhead, deep squats and jumps are not pulled back into everyday poses.
Anatomical ranges used (degrees):

============================  ==========================================================
shoulder (glenohumeral +      flexion 180, extension 60, abduction 180, adduction ~45 across
scapula)                      the body, horizontal flexion 130 / extension 45, rotation 70/90
elbow / forearm               flexion 150, pronation 80, supination 80
wrist                         flexion 80, extension 70, radial 20, ulnar 30 deviation
hip                           flexion 120, extension 30, abduction 45, adduction 30, rotation 45
knee                          flexion 150 (passive, as in a deep squat; active 135-140)
ankle                         dorsiflexion 20 (35 loaded, as in a deep squat), plantarflexion 50
thoracolumbar spine           flexion 80, extension 30, lateral bending 35, rotation 45
cervical spine                flexion 50, extension 60, lateral bending 45, rotation 80
============================  ==========================================================

The shoulder's 180 degrees of elevation come from the glenohumeral joint (about 120) and the
scapula (about 60): SMPL's ``shoulder`` joint takes up to 95 degrees above the T-pose and the
``collar`` joint 35. Spine and neck ranges are shared over ``spine1..3`` and ``neck``/``head``.
Only the left side is written; the right side mirrors it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gas_core.body.joints import SMPL_JOINT_NAMES

__all__ = ["JOINT_LIMITS_DEGREES", "ANATOMICAL_LIMITS_DEGREES", "body_pose_limits", "sample_body_pose", "body_pose_limit_violation"]

Range = tuple[float, float]

# Left side and central joints: name -> ((rx_min, rx_max), (ry_min, ry_max), (rz_min, rz_max)), degrees.
_LEFT_AND_CENTRAL: dict[str, tuple[Range, Range, Range]] = {
    "left_hip": ((-110.0, 30.0), (-35.0, 35.0), (-25.0, 45.0)),
    "spine1": ((-15.0, 30.0), (-20.0, 20.0), (-15.0, 15.0)),
    "left_knee": ((0.0, 140.0), (-10.0, 10.0), (-5.0, 5.0)),
    "spine2": ((-10.0, 20.0), (-15.0, 15.0), (-10.0, 10.0)),
    "left_ankle": ((-25.0, 40.0), (-15.0, 15.0), (-20.0, 20.0)),
    "spine3": ((-10.0, 20.0), (-15.0, 15.0), (-10.0, 10.0)),
    "left_foot": ((-25.0, 30.0), (-5.0, 5.0), (-5.0, 5.0)),
    "neck": ((-30.0, 40.0), (-40.0, 40.0), (-25.0, 25.0)),
    "left_collar": ((-10.0, 10.0), (-15.0, 15.0), (-10.0, 25.0)),
    "head": ((-20.0, 30.0), (-30.0, 30.0), (-20.0, 20.0)),
    "left_shoulder": ((-60.0, 60.0), (-90.0, 40.0), (-85.0, 60.0)),
    "left_elbow": ((-45.0, 45.0), (-140.0, 0.0), (-5.0, 5.0)),
    "left_wrist": ((-30.0, 30.0), (-25.0, 35.0), (-60.0, 60.0)),
    "left_hand": ((-10.0, 10.0), (-15.0, 15.0), (-20.0, 20.0)),
}


# Clinical ranges (module docstring) in SMPL's per-joint axes; left side and central joints.
_ANATOMICAL_LEFT_AND_CENTRAL: dict[str, tuple[Range, Range, Range]] = {
    # hip: rx = -flexion (120) / +extension (30); ry = rotation (45 each way); rz = +abduction (45) / -adduction (30)
    "left_hip": ((-120.0, 30.0), (-45.0, 45.0), (-30.0, 45.0)),
    # thoracolumbar spine over three joints: flexion 80, extension 30, rotation 45, lateral bending 35
    "spine1": ((-10.0, 30.0), (-15.0, 15.0), (-12.0, 12.0)),
    "left_knee": ((0.0, 150.0), (-10.0, 10.0), (-5.0, 5.0)),
    "spine2": ((-10.0, 25.0), (-15.0, 15.0), (-12.0, 12.0)),
    # ankle: rx = +plantarflexion (50) / -dorsiflexion (35 loaded); inversion/eversion 35/20 over two axes
    "left_ankle": ((-35.0, 50.0), (-20.0, 20.0), (-25.0, 25.0)),
    "spine3": ((-10.0, 25.0), (-15.0, 15.0), (-12.0, 12.0)),
    "left_foot": ((-30.0, 40.0), (-5.0, 5.0), (-5.0, 5.0)),
    # cervical spine over neck and head: flexion 50, extension 60, rotation 80, lateral bending 45
    "neck": ((-30.0, 30.0), (-45.0, 45.0), (-25.0, 25.0)),
    # collar: the scapula's share of elevation (about 60 of the 180 degrees), protraction/retraction
    "left_collar": ((-15.0, 15.0), (-20.0, 20.0), (-10.0, 35.0)),
    "head": ((-30.0, 30.0), (-40.0, 40.0), (-25.0, 25.0)),
    # shoulder (arm along +x in the T-pose): rx = axial rotation (70 internal / 90 external);
    # ry = horizontal flexion (130, negative) / extension (45); rz = elevation above the T-pose (95, the
    # glenohumeral share of 180 abduction/flexion) / lowering to the side and across the body (-100)
    "left_shoulder": ((-90.0, 70.0), (-130.0, 45.0), (-100.0, 95.0)),
    # elbow: ry = -flexion (150); rx = forearm pronation/supination (80 each)
    "left_elbow": ((-80.0, 80.0), (-150.0, 0.0), (-5.0, 5.0)),
    # wrist (palm down in the T-pose): flexion 80 (-rz) / extension 70, radial 20 (-ry) / ulnar 30 deviation
    "left_wrist": ((-30.0, 30.0), (-20.0, 30.0), (-80.0, 70.0)),
    "left_hand": ((-10.0, 10.0), (-15.0, 15.0), (-20.0, 20.0)),
}


def _mirror(ranges: tuple[Range, Range, Range]) -> tuple[Range, Range, Range]:
    (x_low, x_high), (y_low, y_high), (z_low, z_high) = ranges
    return (x_low, x_high), (-y_high, -y_low), (-z_high, -z_low)


def _build_table(left_and_central: dict[str, tuple[Range, Range, Range]]) -> dict[str, tuple[Range, Range, Range]]:
    table = {}
    for name in SMPL_JOINT_NAMES[1:]:
        if name.startswith("right_"):
            table[name] = _mirror(left_and_central["left_" + name.removeprefix("right_")])
        else:
            table[name] = left_and_central[name]
    for name, ranges in table.items():
        for low, high in ranges:
            if not low <= 0.0 <= high:
                raise ValueError(f"joint limit of {name} must contain 0 (the rest pose), got [{low}, {high}]")
    return table


#: Per body joint (SMPL order, pelvis excluded): ((rx_min, rx_max), (ry_min, ry_max), (rz_min, rz_max)) in degrees.
JOINT_LIMITS_DEGREES: dict[str, tuple[Range, Range, Range]] = _build_table(_LEFT_AND_CENTRAL)

#: Clinical ranges of motion (module docstring), same layout as :data:`JOINT_LIMITS_DEGREES`.
ANATOMICAL_LIMITS_DEGREES: dict[str, tuple[Range, Range, Range]] = _build_table(_ANATOMICAL_LEFT_AND_CENTRAL)

LimitTable = dict[str, tuple[Range, Range, Range]]


def body_pose_limits(
    *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None, table: LimitTable | None = None,
) -> tuple[Tensor, Tensor]:
    """Lower and upper bounds of ``body_pose``, each (23, 3) radians, from ``table`` (default
    :data:`JOINT_LIMITS_DEGREES`; :data:`ANATOMICAL_LIMITS_DEGREES` for clinical ranges)."""
    table = JOINT_LIMITS_DEGREES if table is None else table
    missing = [name for name in SMPL_JOINT_NAMES[1:] if name not in table]
    if missing:
        raise ValueError(f"table must give limits of every SMPL body joint; missing {', '.join(missing)}")
    values = torch.tensor([table[name] for name in SMPL_JOINT_NAMES[1:]], dtype=torch.float64)
    radians = values * (math.pi / 180.0)
    return radians[..., 0].to(dtype=dtype, device=device), radians[..., 1].to(dtype=dtype, device=device)


def sample_body_pose(batch: int, generator: torch.Generator | None = None, fraction: float = 1.0) -> Tensor:
    """Random body poses, each axis-angle component uniform within ``fraction`` of its range.

    Args:
        batch: number of poses B (>= 1).
        generator: torch random generator (CPU) for reproducible draws.
        fraction: in [0, 1]; the ranges are shrunk towards 0 (the rest pose) by this factor.

    Returns:
        (B, 23, 3) float32 axis-angle rotations, radians.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    low, high = body_pose_limits()
    uniform = torch.rand(batch, *low.shape, generator=generator)
    return fraction * (low + (high - low) * uniform)


def body_pose_limit_violation(body_pose: Tensor, table: LimitTable | None = None) -> Tensor:
    """How far each pose lies outside the limits: sum of squared excess angles (radians^2), shape (B,).

    Zero inside the limits; differentiable, so a fitter can use it as a prior term.

    Args:
        body_pose: (B, 23, 3) axis-angle rotations, radians.
        table: limits (default :data:`JOINT_LIMITS_DEGREES`).
    """
    if not isinstance(body_pose, Tensor) or body_pose.ndim != 3 or tuple(body_pose.shape[1:]) != (23, 3):
        shape = tuple(body_pose.shape) if isinstance(body_pose, Tensor) else type(body_pose).__name__
        raise ValueError(f"body_pose must be a (B, 23, 3) tensor, got {shape}")
    low, high = body_pose_limits(dtype=body_pose.dtype, device=body_pose.device, table=table)
    excess = torch.relu(low - body_pose) + torch.relu(body_pose - high)
    return (excess**2).sum(dim=(1, 2))
