"""Target cameras and bodies: the reference orbit (view mode), driven poses (pose mode), a y-down world set upright."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gas_core.body.geometry import axis_angle_to_matrix, pelvis_positions, rotation_about_y, turn_bodies
from gas_core.body.smpl import BodyModel
from gas_core.cameras import Camera
from pipelines.generate.config import PoseDriveConfig
from pipelines.generate.files import PoseSequence


def drive_poses(reference_smpl: Mapping[str, Any], sequence: PoseSequence, body_model: BodyModel,
                config: PoseDriveConfig = PoseDriveConfig()) -> list[dict[str, Any]]:
    """The target SMPL dicts of pose mode, one per used driver frame.

    Shape: the reference's ``betas`` and ``scale`` (cross re-enactment), or the driver's when
    ``config.keep_driver_shape`` (missing driver values fall back to the reference's). Root: with
    ``config.align_orientation`` every frame's root rotation is pre-multiplied by the rotation that turns
    the driver's first frame onto the reference's (its trajectory turned with it); with
    ``config.align_translation`` the trajectory is shifted so that the first frame's pelvis lands on
    the reference's pelvis. Frames: every ``frame_stride``-th, at most ``max_frames``.
    """
    indices = np.arange(0, sequence.num_frames, config.frame_stride)
    if config.max_frames is not None:
        indices = indices[: config.max_frames]
    betas = np.asarray(reference_smpl["betas"], dtype=np.float64)
    scale = float(reference_smpl["scale"])
    if config.keep_driver_shape:
        betas = sequence.betas if sequence.betas is not None else betas
        scale = sequence.scale if sequence.scale is not None else scale
    frames = [{"betas": np.asarray(betas, dtype=np.float64).copy(), "body_pose": sequence.body_pose[i].copy(),
               "global_orient": sequence.global_orient[i].copy(), "transl": sequence.transl[i].copy(),
               "scale": float(scale), "body_model": str(reference_smpl["body_model"])} for i in indices]
    if not (config.align_translation or config.align_orientation):
        return frames
    pelvis = pelvis_positions(body_model, frames)  # (N, 3) as driven, before alignment
    reference_pelvis = pelvis_positions(body_model, [reference_smpl])[0]
    if config.align_orientation:
        reference_root = axis_angle_to_matrix(reference_smpl["global_orient"])
        first_root = axis_angle_to_matrix(frames[0]["global_orient"])
        rotation = reference_root @ first_root.T
        # the trajectory turned about the first pelvis, which stays where it was (so pelvis[0] still holds)
        frames = turn_bodies(body_model, frames, rotation, pivot=pelvis[0])
    if config.align_translation:
        shift = reference_pelvis - pelvis[0]
        for frame in frames:
            frame["transl"] = frame["transl"] + shift
    return frames


def reference_orbit(reference_camera: Camera, target: np.ndarray, num_views: int) -> list[Camera]:
    """``num_views`` cameras orbiting the vertical line through ``target`` (3,) world metres (the body's centre).

    View ``i`` is the reference camera turned by ``360 i / num_views`` degrees about the world's +y axis
    (the project's up) through ``target``: view 0 IS the reference camera, and every view keeps its
    intrinsics, image size, distance to the axis, height and elevation, so the person stays where the
    reference shows it. (For the scan orbits the training clips were baked from — cameras of
    :func:`gas_core.cameras.orbit_cameras` looking at the subject — this is exactly their orbit.)
    """
    if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
        raise ValueError(f"num_views must be a positive int, got {num_views!r}")
    target = np.asarray(target, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(target)):
        raise ValueError("target must be finite")
    cameras = []
    for index in range(num_views):
        turn = rotation_about_y(2.0 * math.pi * index / num_views)
        center = target + turn @ (reference_camera.center - target)
        rotation = reference_camera.R @ turn.T
        cameras.append(Camera(K=reference_camera.K, R=rotation, t=-rotation @ center,
                              width=reference_camera.width, height=reference_camera.height))
    return cameras


def _flip_world_upright(camera: Camera, smpl: Mapping[str, Any], body_model: BodyModel) -> tuple[Camera, dict[str, Any]]:
    """Turn camera and body 180 degrees about the world x axis (a y-down world, e.g. a camera frame, becomes y-up).

    Images do not change: camera and body turn together.
    """
    flip = np.diag([1.0, -1.0, -1.0])
    flipped = turn_bodies(body_model, [smpl], flip, pivot=np.zeros(3))[0]
    rotation = camera.R @ flip.T
    return Camera(K=camera.K, R=rotation, t=camera.t, width=camera.width, height=camera.height), flipped
