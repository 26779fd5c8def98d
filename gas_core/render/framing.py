"""Framing an orbit around a subject of any size: how far the cameras stand so the whole body is in view.

The orbit of :class:`gas_core.cameras.OrbitSpec` puts every camera at one distance from the target.
A fixed distance suits one range of sizes only: with the paper's 3 m and 40 degree field of view, a
2 m person whose feet or hands reach towards the camera leaves the image in a third of the views.
:func:`framed_orbit_spec` computes, for the subject's own points, the smallest distance at which every
point of the subject projects inside every view with a margin, and applies the chosen
:class:`OrbitFraming` mode:

* ``"contain"`` (default): the spec's distance, or farther when the subject would not fit (typical
  adults keep the paper's framing; tall subjects and wide poses are moved back just enough);
* ``"fit"``: exactly the smallest distance (every subject fills its views the same way; short subjects
  come closer and get more pixels);
* ``"fixed"``: the spec's distance whatever the subject's size (views may cut the subject; the
  ``visible_view_fraction`` quality gate then tells).

The test is exact for the orbit's pinhole cameras (not a bounding-sphere estimate): a point ``q``
(relative to the target) seen by a camera at distance ``D`` along the unit direction ``w``, with
camera axes ``r`` (right) and ``d`` (down), is at depth ``D - q.w`` and lands inside the image with
the margin when ``|q.r| <= a_x (D - q.w)`` and ``|q.d| <= a_y (D - q.w)``, where ``a_x, a_y`` are the
tangents of the half fields of view shrunk by the margin. Each view gives a lower bound on ``D``;
the orbit takes the largest.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gas_core.cameras import OrbitSpec, orbit_cameras

__all__ = ["FRAMING_MODES", "OrbitFraming", "required_orbit_distance", "framed_orbit_spec"]

#: The framing modes of :class:`OrbitFraming`.
FRAMING_MODES = ("contain", "fit", "fixed")

#: Nearest a camera may come to the closest point of the subject, metres (keeps depth positive).
_MIN_DEPTH = 0.05


@dataclass(frozen=True)
class OrbitFraming:
    """How far an orbit's cameras stand from the subject.

    Attributes:
        mode: ``"contain"`` (the spec's distance, farther when the subject would not fit), ``"fit"``
            (the smallest distance at which the subject fits) or ``"fixed"`` (the spec's distance).
        margin: fraction of each half image kept free between the subject and the borders, in
            [0, 0.5) (0.05: at 1024 px, about 25 px on every side).
    """

    mode: Literal["contain", "fit", "fixed"] = "contain"
    margin: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in FRAMING_MODES:
            raise ValueError(f"mode must be one of {FRAMING_MODES}, got {self.mode!r}")
        if not isinstance(self.margin, (int, float)) or not 0.0 <= float(self.margin) < 0.5:
            raise ValueError(f"margin must be a number in [0, 0.5), got {self.margin!r}")
        object.__setattr__(self, "margin", float(self.margin))


def required_orbit_distance(points: np.ndarray, spec: OrbitSpec, margin: float = 0.05) -> float:
    """Smallest camera distance, metres, at which every point projects inside every view of ``spec``.

    Args:
        points: (N, 3) the subject's points (vertices), metres, in the orbit's world frame (y up).
        spec: the orbit (views, elevation, field of view, image size, target); its ``distance`` is
            ignored.
        margin: fraction of each half image kept free around the subject, in [0, 0.5).

    Returns:
        The distance from ``spec.target``, metres (at least 5 cm beyond the subject's nearest point).

    Raises:
        ValueError: if ``points`` is not a non-empty finite (N, 3) array or ``margin`` is out of range.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"points must be a non-empty (N, 3) array, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("points must be finite")
    if not 0.0 <= float(margin) < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    relative = points - np.asarray(spec.target, dtype=np.float64)
    # The views' axes do not depend on the distance: take them from a unit-distance orbit.
    cameras = orbit_cameras(dataclasses.replace(spec, distance=1.0))
    required = -math.inf
    for camera in cameras:
        fx, fy = camera.K[0, 0], camera.K[1, 1]
        cx, cy = camera.K[0, 2], camera.K[1, 2]
        # Half-image tangents, from the principal point to the nearer border, shrunk by the margin.
        tan_x = (1.0 - margin) * min(cx, camera.width - cx) / fx
        tan_y = (1.0 - margin) * min(cy, camera.height - cy) / fy
        right, down, forward = camera.R  # rows: camera axes in world coordinates
        toward_camera = relative @ -forward  # q.w: how far each point stands out towards the camera
        lateral = np.maximum(np.abs(relative @ right) / tan_x, np.abs(relative @ down) / tan_y)
        required = max(required, float(np.max(toward_camera + np.maximum(lateral, _MIN_DEPTH))))
    return max(required, _MIN_DEPTH)


def framed_orbit_spec(points: np.ndarray, spec: OrbitSpec, framing: OrbitFraming = OrbitFraming()) -> OrbitSpec:
    """``spec`` with its distance set by ``framing`` for a subject made of ``points``.

    Args:
        points: (N, 3) the subject's points, metres, in the orbit's world frame (y up).
        spec: the orbit; its ``distance`` is the distance of ``"fixed"`` and the nearest of ``"contain"``.
        framing: the mode and margin (:class:`OrbitFraming`).

    Returns:
        An :class:`OrbitSpec` equal to ``spec`` except, possibly, its ``distance`` (metres).
    """
    if not isinstance(framing, OrbitFraming):
        raise ValueError(f"framing must be an OrbitFraming, got {type(framing).__name__}")
    if framing.mode == "fixed":
        return spec
    needed = required_orbit_distance(points, spec, framing.margin)
    distance = needed if framing.mode == "fit" else max(spec.distance, needed)
    if math.isclose(distance, spec.distance):
        return spec
    return dataclasses.replace(spec, distance=distance)
