"""Pinhole cameras in one convention (OpenCV) and the 20-view orbit used for 3D scans.

Convention, used everywhere in the project:

* world: metres, **y up**, the subject faces **+z** (SMPL's frame);
* camera: OpenCV, x right, y down, z forward (into the scene);
* extrinsics ``R`` (3, 3) and ``t`` (3,) map world to camera: ``X_cam = R @ X_world + t``;
* intrinsics ``K`` (3, 3) in pixels, principal point in pixel units with (0, 0) at the centre of
  the top-left pixel's top-left corner, i.e. ``u = fx * x / z + cx``.

The conversion to OpenGL's camera frame (x right, y up, z backward), which pyrender needs, happens
in :meth:`Camera.opengl_camera_to_world` and nowhere else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Camera", "OrbitSpec", "orbit_cameras", "look_at", "OPENCV_TO_OPENGL"]

#: Flips the y and z axes: OpenCV camera frame -> OpenGL camera frame (its own inverse).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def _as_matrix(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics ``K`` (3, 3) in pixels, world-to-camera ``R`` (3, 3), ``t`` (3,) in metres.

    ``width`` and ``height`` are the image size in pixels.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", _as_matrix(self.K, (3, 3), "K"))
        object.__setattr__(self, "R", _as_matrix(self.R, (3, 3), "R"))
        object.__setattr__(self, "t", _as_matrix(self.t, (3,), "t"))
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"width and height must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        if not np.allclose(self.R @ self.R.T, np.eye(3), atol=1e-5) or np.linalg.det(self.R) < 0:
            raise ValueError("R must be a rotation matrix (orthonormal, determinant +1)")

    # ----------------------------------------------------------------------------- derived
    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, (3,) metres."""
        return -self.R.T @ self.t

    @property
    def world_to_camera(self) -> np.ndarray:
        """(4, 4) homogeneous world-to-camera (OpenCV) transform."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.R
        matrix[:3, 3] = self.t
        return matrix

    @property
    def projection_matrix(self) -> np.ndarray:
        """(3, 4) ``P = K [R | t]`` mapping homogeneous world points to homogeneous pixels."""
        return self.K @ self.world_to_camera[:3]

    def opengl_camera_to_world(self) -> np.ndarray:
        """(4, 4) camera-to-world pose in OpenGL's camera frame, as pyrender's camera nodes expect."""
        pose = np.eye(4)
        pose[:3, :3] = self.R.T @ OPENCV_TO_OPENGL
        pose[:3, 3] = self.center
        return pose

    # ----------------------------------------------------------------------------- geometry
    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) metres -> camera-frame points (..., 3) metres (OpenCV)."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape[-1] != 3:
            raise ValueError(f"points must have a last dimension of 3, got {points.shape}")
        return points @ self.R.T + self.t

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) metres -> pixel coordinates (..., 2); points behind the camera give NaN."""
        cam = self.to_camera(points)
        z = cam[..., 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            homogeneous = cam @ self.K.T
            uv = homogeneous[..., :2] / homogeneous[..., 2:3]
        return np.where(z > 1e-9, uv, np.nan)

    def scaled(self, factor: float) -> "Camera":
        """The same camera for an image resized by ``factor`` (e.g. 0.5 for 1024 -> 512)."""
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        K = self.K.copy()
        K[:2] *= factor
        return Camera(K=K, R=self.R, t=self.t,
                      width=round(self.width * factor), height=round(self.height * factor))

    # ----------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``K``, ``R``, ``t`` as nested lists, ``width``, ``height``, ``convention``."""
        return {
            "K": self.K.tolist(),
            "R": self.R.tolist(),
            "t": self.t.tolist(),
            "width": self.width,
            "height": self.height,
            "convention": "opencv",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Camera":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a missing key."""
        missing = [key for key in ("K", "R", "t", "width", "height") if key not in data]
        if missing:
            raise ValueError(f"camera dict is missing {missing}")
        convention = str(data.get("convention", "opencv")).lower()
        if not convention.startswith("opencv"):
            raise ValueError(f"camera convention must be OpenCV, got {data.get('convention')!r}")
        return cls(K=data["K"], R=data["R"], t=data["t"], width=data["width"], height=data["height"])

    @classmethod
    def from_json(cls, text: str) -> "Camera":
        return cls.from_dict(json.loads(text))

    @staticmethod
    def intrinsics_from_fov(fov_y_deg: float, width: int, height: int) -> np.ndarray:
        """(3, 3) K for a vertical field of view in degrees, square pixels, centred principal point."""
        if not 0.0 < fov_y_deg < 180.0:
            raise ValueError(f"fov_y_deg must be in (0, 180), got {fov_y_deg}")
        focal = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2.0)
        return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R, t)`` (OpenCV) for a camera at ``eye`` (3,) looking at ``target`` (3,).

    ``up`` (3,) is the world direction that appears upward in the image.
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    forward = target - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError("eye and target must differ")
    forward /= norm
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("up must not be parallel to the viewing direction")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    return R, -R @ eye


@dataclass(frozen=True)
class OrbitSpec:
    """An orbit of views around a subject at the origin (world y up, subject facing +z).

    View 0 looks at the subject's front (camera on +z); views advance counter-clockwise seen from
    above, uniformly in azimuth. Distances in metres, angles in degrees, sizes in pixels.
    """

    num_views: int = 20
    distance: float = 3.0
    elevation_deg: float = 0.0
    fov_y_deg: float = 40.0
    width: int = 1024
    height: int = 1024
    target: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        if self.num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {self.num_views}")
        if self.distance <= 0:
            raise ValueError(f"distance must be positive, got {self.distance}")
        if not -89.0 <= self.elevation_deg <= 89.0:
            raise ValueError(f"elevation_deg must be in [-89, 89], got {self.elevation_deg}")


def orbit_cameras(spec: OrbitSpec = OrbitSpec()) -> list[Camera]:
    """``spec.num_views`` cameras uniformly spaced in azimuth around ``spec.target``.

    Returns a list of :class:`Camera` (OpenCV), view ``i`` at azimuth ``360 * i / num_views`` degrees.
    """
    K = Camera.intrinsics_from_fov(spec.fov_y_deg, spec.width, spec.height)
    target = np.asarray(spec.target, dtype=np.float64)
    elevation = math.radians(spec.elevation_deg)
    cameras = []
    for index in range(spec.num_views):
        azimuth = 2.0 * math.pi * index / spec.num_views
        offset = np.array([
            math.sin(azimuth) * math.cos(elevation),
            math.sin(elevation),
            math.cos(azimuth) * math.cos(elevation),
        ]) * spec.distance
        R, t = look_at(target + offset, target)
        cameras.append(Camera(K=K, R=R, t=t, width=spec.width, height=spec.height))
    return cameras
