"""Synthetic stand-ins for the paper's video data (section 4.1.1): TikTok-style monocular dance videos and
MVHumanNet multi-view captures, written in the real layouts, with ground truth kept aside.

Every video shows one synthetic subject (:func:`gas_core.synth.humans.sample_subject_spec`) performing a
smooth motion (:mod:`gas_core.synth.motion`), rendered unlit with :class:`gas_core.render.scan.ScanRenderer`
over a static, seeded, textured backdrop (a gradient wall, a tiled floor and soft blobs — never black, so
that separating the person from the background is a real task).

TikTok layout (the TikTok dataset of Jafarian & Park, sequences numbered from 00001):
``<out>/<seq:05d>/images/0001.png ...`` and
``<out>/<seq:05d>/masks/0001.png ...`` (0 / 255), or with ``as_mp4`` one ``<out>/<seq:05d>.mp4`` per video
(H.264, :func:`gas_core.videoio.write_mp4`). One fixed perspective camera per video, placed to keep the
whole motion in view. MVHumanNet layout: :mod:`pipelines.datasets.mvhumannet` (cameras on a ring around
the subject, alternating between two heights).

Ground truth, per video, in ``<out>/_groundtruth/<id>/``:

* ``groundtruth.json``: ``subject`` (the record of :func:`pipelines.datasets.common.groundtruth_record`
  for the subject's library pose), ``motion`` (the :class:`MotionSpec` fields), ``cameras`` (camera name
  -> :meth:`Camera.to_dict`), ``camera_names`` (the order of the C axis), ``body_model`` (label),
  ``frame`` and ``arrays`` (a description of every array);
* ``arrays.npz``: ``times`` (T,) s; ``masks`` (C, T, H, W) uint8 0/1; ``keypoints2d`` (C, T, 17, 3) COCO
  pixels ``(u, v, flag)`` with COCO's flag (0 off the image, 1 hidden: the rendered surface lies more
  than :data:`VISIBILITY_TOLERANCE` in front of it, 2 visible); ``coco17`` (T, 17, 3) and ``joints24`` (T, 24, 3) world metres;
  ``betas`` (10,), ``body_pose`` (T, 23, 3), ``global_orient`` (T, 3), ``transl`` (T, 3), ``scale`` (T,) and
  ``rest_pelvis`` (3,) — open-body-model parameters in SMPL's convention. C = 1 for TikTok.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gas_core.body.geometry import origin_transl_from_pelvis
from gas_core.body.open_model import OPEN_BODY_MODEL_LABEL
from gas_core.cameras import Camera, look_at
from gas_core.fileio import atomic_directory, atomic_write_bytes
from gas_core.synth.humans import STRESS_BODY_RANGES, SubjectSpec, sample_stress_subject_spec, sample_subject_spec
from gas_core.synth.motion import STRESS_MOTION_KINDS, MotionSpec, SubjectMotion, make_motion
from gas_core.synth.scene import cluttered_backdrop, lighting_gains, shake_zoom_warps, warp_frame, warp_points
from pipelines.datasets.common import GROUNDTRUTH_DIRNAME, groundtruth_record
from pipelines.datasets.mvhumannet import camera_name, write_mvhumannet_capture
from pipelines.synth import check_at_least, subject_seed

__all__ = [
    "SynthVideoTiming",
    "StressOptions",
    "STRESS_SCENES",
    "STRESS_PEOPLE",
    "backdrop",
    "fit_camera",
    "ring_cameras",
    "render_motion",
    "synthesize_tiktok",
    "synthesize_mvhumannet",
    "read_video_groundtruth",
    "synth_video_main",
]

logger = logging.getLogger(__name__)

_TEXTURE_SIZE = 256


@dataclass(frozen=True)
class SynthVideoTiming:
    """What a synthesis run produced and how long it took (seconds per rendered frame = per image)."""

    ids: tuple[str, ...]
    frames: int
    images: int
    seconds: float

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(self.images, 1)


def backdrop(width: int, height: int, seed: int) -> np.ndarray:
    """A static, seeded background (H, W, 3) uint8: gradient wall, tiled floor below 70 % of the height, blobs."""
    rng = np.random.default_rng([seed, 0xBAC6])
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    top, bottom = rng.uniform(60, 230, size=3), rng.uniform(40, 200, size=3)
    image = np.broadcast_to(top * (1 - rows) + bottom * rows, (height, width, 3)).copy()
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    for _ in range(5):
        cx, cy = rng.uniform(0, width), rng.uniform(0, 0.7 * height)
        radius = rng.uniform(0.08, 0.25) * max(width, height)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))[..., None]
        image = image * (1 - 0.6 * weight) + 0.6 * weight * rng.uniform(0, 255, size=3)
    horizon = int(0.7 * height)
    tile = max(4, width // 12)
    checker = ((xx[horizon:] // tile + yy[horizon:] // max(2, tile // 2)) % 2)[..., None]
    floor_a, floor_b = rng.uniform(80, 200, size=3), rng.uniform(30, 150, size=3)
    image[horizon:] = floor_a * checker + floor_b * (1 - checker)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def fit_camera(points: np.ndarray, size: int, *, fov_y_deg: float = 45.0, margin: float = 0.1) -> Camera:
    """A fixed camera on +z, level, looking along -z at ``points`` (N, 3) world metres, keeping them all in
    a ``size`` x ``size`` image with ``margin`` (fraction of the half-size) to spare."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    K = Camera.intrinsics_from_fov(fov_y_deg, size, size)
    half = 0.5 * size * (1.0 - margin)
    offsets = points - centre
    needed = offsets[:, 2] + np.maximum(np.abs(offsets[:, 0]), np.abs(offsets[:, 1])) * K[0, 0] / half
    distance = max(float(needed.max()), 0.5)
    R, t = look_at(centre + np.array([0.0, 0.0, distance]), centre)
    return Camera(K=K, R=R, t=t, width=size, height=size)


def ring_cameras(num_cameras: int, size: int, *, radius: float = 2.6, target_height: float = 0.0,
                 fov_y_deg: float = 50.0) -> list[Camera]:
    """``num_cameras`` cameras evenly spaced on a ring around the origin (camera 0 in front, on +z),
    alternately 0.3 m above and below ``target_height``, all looking at ``(0, target_height, 0)``."""
    if num_cameras < 1:
        raise ValueError(f"num_cameras must be >= 1, got {num_cameras}")
    K = Camera.intrinsics_from_fov(fov_y_deg, size, size)
    target = np.array([0.0, target_height, 0.0])
    cameras = []
    for index in range(num_cameras):
        azimuth = 2.0 * math.pi * index / num_cameras
        height = target_height + (0.3 if index % 2 == 0 else -0.3)
        eye = np.array([radius * math.sin(azimuth), height, radius * math.cos(azimuth)])
        R, t = look_at(eye, target)
        cameras.append(Camera(K=K, R=R, t=t, width=size, height=size))
    return cameras


#: A keypoint is hidden when the surface rendered at its pixel is more than this far (metres) in front
#: of it. Joints lie up to about 12 cm under the skin facing the camera, so this coarse test flags
#: what another body part (or the far side of the body) covers, not fine self-occlusion.
VISIBILITY_TOLERANCE = 0.15


def keypoints_2d(points: np.ndarray, camera: Camera, depth: np.ndarray | None = None) -> np.ndarray:
    """(T, K, 3) pixel keypoints ``(u, v, flag)`` of world points (T, K, 3), with COCO's visibility flag:
    0 off the image or behind the camera (u = v = 0), 2 visible, 1 hidden (the surface rendered at the
    keypoint's pixel lies more than :data:`VISIBILITY_TOLERANCE` in front of it). ``depth``: (T, H, W)
    metres along the camera axis, 0 on the background; without it every in-image keypoint gets flag 2.
    """
    uv = camera.project(points)
    inside = np.isfinite(uv).all(-1) & (uv[..., 0] >= 0) & (uv[..., 0] < camera.width) & (uv[..., 1] >= 0) & (uv[..., 1] < camera.height)
    flags = np.where(inside, 2.0, 0.0)
    if depth is not None:
        frames, keypoints = np.nonzero(inside)
        surface = depth[frames, uv[frames, keypoints, 1].astype(int), uv[frames, keypoints, 0].astype(int)]
        distance = camera.to_camera(points[frames, keypoints])[:, 2]
        hidden = (surface > 0) & (distance > surface + VISIBILITY_TOLERANCE)
        flags[frames[hidden], keypoints[hidden]] = 1.0
    out = np.zeros(points.shape[:-1] + (3,))
    out[..., :2] = np.where(inside[..., None], uv, 0.0)
    out[..., 2] = flags
    return out


def render_motion(motion: SubjectMotion, cameras: Sequence[Camera], background: np.ndarray):
    """Yield, per frame, a list over cameras of ``(rgb (H, W, 3) uint8 over the backdrop, mask (H, W) bool,
    depth (H, W) float32 metres, 0 on the background)``."""
    import trimesh

    from gas_core.render.scan import ScanRenderer

    size = (cameras[0].width, cameras[0].height)
    with ScanRenderer(*size, meshes_per_context=64) as renderer:
        for vertices in motion.vertices:
            mesh = trimesh.Trimesh(vertices=vertices, faces=motion.faces, vertex_colors=motion.subject.vertex_colors,
                                   process=False)
            renderer.set_mesh(mesh)
            views = []
            for camera in cameras:
                view = renderer.render(camera)
                mask = view.mask > 0
                views.append((np.where(mask[..., None], view.rgb, background), mask, view.depth))
            yield views


class _FrameRecorder:
    """Collects the ground truth seen while a motion is rendered: masks and 2D keypoints per camera and frame."""

    def __init__(self, motion: SubjectMotion, cameras: dict[str, Camera], extra: dict | None = None,
                 gains: np.ndarray | None = None, warps: np.ndarray | None = None,
                 other: SubjectMotion | None = None) -> None:
        first = next(iter(cameras.values()))
        self.extra = dict(extra or {})
        self.gains, self.warps = gains, warps  # (T, 3) RGB gains, (T, 2, 3) image warps (stress scenes)
        self.other = other  # a second person (stress sets), composited by depth
        self.other_masks = (np.zeros((len(cameras), motion.motion.num_frames, 1, first.height, first.width), dtype=bool)
                            if other is not None else None)
        frames = motion.motion.num_frames
        self.motion = motion
        self.cameras = cameras
        self.masks = np.zeros((len(cameras), frames, first.height, first.width), dtype=bool)
        self.keypoints = np.zeros((len(cameras), frames, 17, 3))

    def frames(self, background: np.ndarray):
        """Yield, per frame, camera name -> ``(rgb, mask)``, recording masks and keypoints on the way."""
        others = None
        if self.other is not None:  # rendered first: one renderer at a time
            others = list(render_motion(self.other, list(self.cameras.values()), background))
        for f, views in enumerate(render_motion(self.motion, list(self.cameras.values()), background)):
            keypoints = self.motion.coco17[f:f + 1].astype(np.float64)
            shown = {}
            for c, ((rgb, mask, depth), camera) in enumerate(zip(views, self.cameras.values())):
                other_mask = None
                if others is not None:
                    other_rgb, other_mask, other_depth = others[f][c]
                    in_front = other_mask & (~mask | (other_depth < depth))
                    rgb = np.where(in_front[..., None], other_rgb, rgb)
                    mask = mask & ~in_front
                    other_mask = in_front
                    depth = np.where(in_front, other_depth, depth)
                points = keypoints_2d(keypoints, camera, depth[None])[0]
                if self.warps is not None:
                    rgb = warp_frame(rgb, self.warps[f])
                    mask = warp_frame(mask.astype(np.uint8), self.warps[f], nearest=True) > 0
                    if other_mask is not None:
                        other_mask = warp_frame(other_mask.astype(np.uint8), self.warps[f], nearest=True) > 0
                    seen = points[:, 2] > 0
                    points[seen, :2] = warp_points(points[seen, :2], self.warps[f])
                    outside = ~((points[:, 0] >= 0) & (points[:, 0] < camera.width) & (points[:, 1] >= 0)
                                & (points[:, 1] < camera.height))
                    points[outside & seen] = 0.0
                if self.gains is not None:
                    rgb = np.clip(np.rint(rgb * self.gains[f]), 0, 255).astype(np.uint8)
                self.masks[c, f] = mask
                if other_mask is not None:
                    self.other_masks[c, f, 0] = other_mask
                self.keypoints[c, f] = points
                shown[list(self.cameras)[c]] = (rgb, mask)
            yield shown

    def write(self, root: Path, video_id: str) -> Path:
        """Write ``<root>/_groundtruth/<video_id>/`` (see module docstring)."""
        motion, smpl = self.motion, self.motion.smpl
        folder = root / GROUNDTRUTH_DIRNAME / video_id
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, times=motion.times, masks=self.masks.astype(np.uint8), keypoints2d=self.keypoints,
            coco17=motion.coco17, joints24=motion.joints24, betas=smpl.betas, body_pose=smpl.body_pose,
            global_orient=smpl.global_orient, transl=smpl.transl, scale=smpl.scale, rest_pelvis=smpl.rest_pelvis,
            **({"light_gain": self.gains} if self.gains is not None else {}),
            **({"image_warp": self.warps} if self.warps is not None else {}),
            **({"other_masks": self.other_masks.astype(np.uint8)} if self.other_masks is not None else {}),
        )
        atomic_write_bytes(folder / "arrays.npz", buffer.getvalue())
        record = {
            "subject": {key: value.tolist() if isinstance(value, np.ndarray) else value
                        for key, value in groundtruth_record(motion.subject).items()},
            "motion": dataclasses.asdict(motion.motion),
            "cameras": {name: camera.to_dict() for name, camera in self.cameras.items()},
            "camera_names": list(self.cameras),
            "body_model": OPEN_BODY_MODEL_LABEL,
            "frame": "world: metres, y up; cameras OpenCV (world-to-camera R, t; K pixels)",
            "arrays": _ARRAY_DESCRIPTIONS,
            **self.extra,
        }
        atomic_write_bytes(folder / "groundtruth.json", json.dumps(record, indent=1).encode())
        return folder


_ARRAY_DESCRIPTIONS = {
    "times": "(T,) seconds",
    "masks": "(C, T, H, W) uint8 0/1",
    "keypoints2d": "(C, T, 17, 3) COCO-17 (u, v, flag) pixels; flag 0 off-image, 1 hidden, 2 visible",
    "coco17": "(T, 17, 3) world metres",
    "joints24": "(T, 24, 3) SMPL joints, world metres",
    "betas": "(10,)",
    "body_pose": "(T, 23, 3) axis-angle radians",
    "global_orient": "(T, 3) axis-angle radians, about the pelvis",
    "transl": "(T, 3) metres (SMPL convention)",
    "scale": "(T,)",
    "rest_pelvis": "(3,) rest pelvis joint for betas, metres",
    "light_gain": "(T, 3) RGB gain of each shown frame (stress scene 'lighting' only)",
    "image_warp": "(T, 2, 3) affine map from rendered to shown pixels; masks and keypoints2d are of the "
                  "shown frames (stress scene 'shake_zoom' only)",
    "other_masks": "(C, T, P, H, W) uint8 0/1 visible pixels of the P other people (stress sets with people only); "
                   "masks stay the subject's",
}


def read_video_groundtruth(root: Path, video_id: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``(groundtruth.json record, arrays.npz arrays)`` of a synthetic video written by this module."""
    folder = Path(root) / GROUNDTRUTH_DIRNAME / video_id
    with np.load(folder / "arrays.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return json.loads((folder / "groundtruth.json").read_text()), arrays


def _check_run(seed: int, size: int, **counts: int) -> None:
    check_at_least(**{name: (value, 1) for name, value in counts.items()}, size=(size, 16), seed=(seed, 0))


def _motion_for(index: int, seed: int, num_frames: int, fps: float, *, in_place: bool) -> MotionSpec:
    kind = ("dance", "walk", "turn")[index % 3]
    rng = np.random.default_rng([seed, index, 0x71C])
    heading = float(rng.choice([-90.0, 90.0])) if kind == "walk" else float(rng.uniform(-20.0, 20.0))
    return MotionSpec(kind, num_frames=num_frames, fps=fps, seed=subject_seed(seed, index),
                      walk_speed=0.2 if in_place else 0.5, heading_deg=heading)


#: Other people in stress videos (see :class:`StressOptions`).
STRESS_PEOPLE: tuple[str, ...] = ("none", "enter", "cross", "occlude")
#: Scene kinds of stress sets (see :class:`StressOptions`).
STRESS_SCENES: tuple[str, ...] = ("plain", "cluttered", "lighting", "shake_zoom")


@dataclass(frozen=True)
class StressOptions:
    """A stress set: videos outside the own motions and bodies. Video ``i`` performs
    ``motions[i % len(motions)]`` with a body of kind ``bodies[i % len(bodies)]`` (``"adult"``: the
    ordinary adult draw of :func:`sample_subject_spec`) in the scene ``scenes[i % len(scenes)]``.

    Attributes:
        motions: stress motion kinds (:data:`gas_core.synth.motion.STRESS_MOTION_KINDS`), or own ones.
        bodies: keys of :data:`gas_core.synth.humans.STRESS_BODY_RANGES` or ``"adult"``.
        scenes: of :data:`STRESS_SCENES`: ``"plain"`` (the own backdrop), ``"cluttered"`` (a textured,
            cluttered backdrop, :func:`gas_core.synth.scene.cluttered_backdrop`), ``"lighting"`` (the
            own backdrop, light drifting and switched, :func:`gas_core.synth.scene.lighting_gains`),
            ``"shake_zoom"`` (cluttered backdrop, hand-held shake and a 1.25x zoom,
            :func:`gas_core.synth.scene.shake_zoom_warps`).
        people: of :data:`STRESS_PEOPLE`, taken in turn like the others: ``"none"``; a second person
            (another subject, walking) who ``"enter"``\ s from the left and ends beside the subject,
            ``"cross"``\ es behind the subject, or crosses in front of it and ``"occlude"``\ s it. The
            ground truth's ``masks`` stay the subject's visible pixels; ``other_masks`` hold the
            other person's, and ``groundtruth.json`` names the subject (``stress.subject``: 0).
    """

    motions: tuple[str, ...] = STRESS_MOTION_KINDS
    bodies: tuple[str, ...] = ("heavy", "tall", "adult", "short", "child")
    scenes: tuple[str, ...] = ("cluttered", "lighting", "shake_zoom", "plain")
    people: tuple[str, ...] = ("none", "enter", "cross", "occlude", "none")

    def __post_init__(self) -> None:
        if not self.motions:
            raise ValueError("motions must name at least one motion kind")
        for kind in self.motions:
            MotionSpec(kind)  # raises ValueError naming the kinds
        if not self.bodies:
            raise ValueError("bodies must name at least one body kind")
        for body in self.bodies:
            if body != "adult" and body not in STRESS_BODY_RANGES:
                raise ValueError(f"bodies: {body!r} is not one of adult, {', '.join(STRESS_BODY_RANGES)}")
        if not self.people or any(people not in STRESS_PEOPLE for people in self.people):
            raise ValueError(f"people must name one or more of {', '.join(STRESS_PEOPLE)}; got {self.people!r}")
        if not self.scenes or any(scene not in STRESS_SCENES for scene in self.scenes):
            raise ValueError(f"scenes must name one or more of {', '.join(STRESS_SCENES)}; got {self.scenes!r}")

    def scene(self, index: int, seed: int, num_frames: int, size: int) -> tuple[np.ndarray, np.ndarray | None,
                                                                                np.ndarray | None, str]:
        """(backdrop (H, W, 3) uint8, RGB gains (T, 3) or None, image warps (T, 2, 3) or None, scene) of video ``index``."""
        scene = self.scenes[index % len(self.scenes)]
        scene_seed = subject_seed(seed, index)
        cluttered = scene in ("cluttered", "shake_zoom")
        background = cluttered_backdrop(size, size, scene_seed) if cluttered else backdrop(size, size, scene_seed)
        gains = lighting_gains(num_frames, scene_seed) if scene == "lighting" else None
        warps = shake_zoom_warps(num_frames, (size, size), scene_seed) if scene == "shake_zoom" else None
        return background, gains, warps, scene

    def video(self, index: int, seed: int, num_frames: int, fps: float) -> tuple[MotionSpec, SubjectSpec, str]:
        """(motion, subject, body kind) of video ``index``."""
        kind = self.motions[index % len(self.motions)]
        body = self.bodies[index % len(self.bodies)]
        spec_seed = subject_seed(seed, index)
        subject = sample_subject_spec(spec_seed) if body == "adult" else sample_stress_subject_spec(spec_seed, body)
        rng = np.random.default_rng([seed, index, 0x57E5])
        heading = float(rng.choice([-90.0, 90.0])) if kind == "walk" else float(rng.uniform(-20.0, 20.0))
        return MotionSpec(kind, num_frames=num_frames, fps=fps, seed=spec_seed, walk_speed=0.5, heading_deg=heading), subject, body


def _other_person(kind: str, subject: SubjectMotion, camera: Camera, seed: int, index: int) -> SubjectMotion:
    """A second, walking person placed for ``kind`` (``enter``, ``cross``, ``occlude``) in the subject's scene."""
    spec = subject.motion
    duration = spec.num_frames / spec.fps
    eye = -camera.R.T @ camera.t
    centre = subject.vertices[0].mean(axis=0)
    depth_offset = {"enter": -0.4, "cross": -1.2, "occlude": 0.9}[kind]
    plane = float(centre[2] + depth_offset)
    half = (eye[2] - plane) * 0.5 * camera.width / camera.K[0, 0]
    start = float(eye[0] - half - 0.5)
    end = float(centre[0] - 0.75) if kind == "enter" else float(eye[0] + half + 0.5)
    speed = float(np.clip((end - start) / duration, 0.3, 3.0))
    other_seed = subject_seed(seed, index) + 50021
    walk = MotionSpec("walk", num_frames=spec.num_frames, fps=spec.fps, seed=other_seed, walk_speed=speed, heading_deg=90.0)
    other = make_motion(sample_subject_spec(other_seed), walk, texture_size=_TEXTURE_SIZE)
    floor = float(subject.vertices[0, :, 1].min() - other.vertices[0, :, 1].min())
    shift = np.array([start, floor, plane], dtype=np.float32)
    return dataclasses.replace(other, vertices=other.vertices + shift)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def synthesize_tiktok(out_dir: Path, *, num_videos: int, num_frames: int, fps: float = 30.0, size: int = 512,
                      seed: int = 0, as_mp4: bool = False, stress: StressOptions | None = None) -> SynthVideoTiming:
    """Write ``num_videos`` monocular videos in the TikTok dataset's layout (see module docstring).

    Video ``i`` is subject ``sample_subject_spec(seed * 100003 + i)`` performing dance, walk, turn in turn
    (``i % 3``); its id is ``f"{i + 1:05d}"`` (the release numbers its sequences from 00001). Videos already present (folder or ``.mp4``) are skipped, so a
    larger ``num_videos`` adds videos; each video folder appears atomically, after its ground truth.

    Args:
        out_dir: dataset root (created).
        num_videos: >= 1.
        num_frames: >= 2.
        fps: frame rate, also of the motion.
        size: square image side in pixels (>= 16).
        seed: run seed (>= 0).
        as_mp4: write ``<id>.mp4`` files instead of PNG frame folders (masks then only in the ground truth).
        stress: make a stress set instead (:class:`StressOptions`: its motions and body kinds in turn);
            the ground truth's ``groundtruth.json`` then also records ``stress`` (motion and body kind).

    Returns:
        :class:`SynthVideoTiming` of the videos made by this call.

    Raises:
        ValueError: on a bad count, size or seed.
    """
    _check_run(seed, size, num_videos=num_videos, num_frames=num_frames)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids, seconds = [], 0.0
    for index in range(num_videos):
        video_id = f"{index + 1:05d}"
        target = out_dir / (f"{video_id}.mp4" if as_mp4 else video_id)
        if target.exists():
            logger.debug("video %s exists in %s, skipped", video_id, out_dir)
            continue
        start = time.perf_counter()
        gains = warps = None
        if stress is None:
            spec = _motion_for(index, seed, num_frames, fps, in_place=False)
            subject, extra = sample_subject_spec(subject_seed(seed, index)), None
            background = backdrop(size, size, subject_seed(seed, index))
        else:
            spec, subject, body = stress.video(index, seed, num_frames, fps)
            background, gains, warps, scene = stress.scene(index, seed, num_frames, size)
            people = stress.people[index % len(stress.people)]
            extra = {"stress": {"motion": spec.kind, "body": body, "scene": scene, "people": people, "subject": 0}}
        motion = make_motion(subject, spec, texture_size=_TEXTURE_SIZE)
        camera = fit_camera(motion.vertices[:, ::7].reshape(-1, 3), size)
        other = None
        if stress is not None and people != "none":
            other = _other_person(people, motion, camera, seed, index)
        recorder = _FrameRecorder(motion, {"camera": camera}, extra=extra, gains=gains, warps=warps, other=other)
        frames = recorder.frames(background)
        if as_mp4:
            from gas_core.videoio import write_mp4

            rgb_frames = (views["camera"][0] for views in frames)
            staging = target.with_name(f".{target.name}.partial.mp4")
            write_mp4(rgb_frames, staging, fps=fps)
            recorder.write(out_dir, video_id)
            staging.replace(target)
        else:
            with atomic_directory(target) as staging:
                for f, views in enumerate(frames):
                    rgb, mask = views["camera"]
                    atomic_write_bytes(staging / "images" / f"{f + 1:04d}.png", _png(rgb))
                    atomic_write_bytes(staging / "masks" / f"{f + 1:04d}.png", _png(np.where(mask, 255, 0).astype(np.uint8)))
                recorder.write(out_dir, video_id)
        seconds += time.perf_counter() - start
        ids.append(video_id)
    timing = SynthVideoTiming(tuple(ids), len(ids) * num_frames, len(ids) * num_frames, seconds)
    if ids:
        logger.info("wrote %d TikTok-style videos to %s: %.3f s per frame", len(ids), out_dir, timing.seconds_per_image)
    return timing


def synthesize_mvhumannet(out_dir: Path, *, num_subjects: int, num_cameras: int, num_frames: int, size: int = 512,
                          seed: int = 0, fps: float = 30.0) -> SynthVideoTiming:
    """Write ``num_subjects`` multi-view captures in MVHumanNet's layout (:mod:`pipelines.datasets.mvhumannet`).

    Capture ``i`` has the outfit id ``str(100001 + i)``, subject ``sample_subject_spec(seed * 100003 + i)``
    performing dance, walk (slowly, staying inside the ring) or turn, seen by ``num_cameras`` cameras on a
    ring (:func:`ring_cameras`) named like the release's (``CC32871A004`` ...). Body fits are the open body
    model's parameters in EasyMocap form (``Rh``, ``Th`` about the model origin, 72 ``poses``). Existing
    captures are skipped; each capture folder appears atomically, after its ground truth.

    Args:
        out_dir: dataset root (created).
        num_subjects, num_cameras: >= 1.
        num_frames: >= 2.
        size: square ``images_lr`` side in pixels (>= 16).
        seed: run seed (>= 0).
        fps: frame rate of the motion.

    Returns:
        :class:`SynthVideoTiming` of the captures made by this call (images = frames x cameras).

    Raises:
        ValueError: on a bad count, size or seed.
    """
    _check_run(seed, size, num_subjects=num_subjects, num_cameras=num_cameras, num_frames=num_frames)
    out_dir = Path(out_dir)
    ids, seconds = [], 0.0
    for index in range(num_subjects):
        video_id = str(100001 + index)
        if (out_dir / video_id).exists():
            logger.debug("capture %s exists in %s, skipped", video_id, out_dir)
            continue
        start = time.perf_counter()
        spec = _motion_for(index, seed, num_frames, fps, in_place=True)
        motion = make_motion(sample_subject_spec(subject_seed(seed, index)), spec, texture_size=_TEXTURE_SIZE)
        cameras = {camera_name(c): camera for c, camera in enumerate(ring_cameras(num_cameras, size, target_height=-0.1))}
        recorder = _FrameRecorder(motion, cameras)
        smpl = motion.smpl
        fits = []
        origin_transl = origin_transl_from_pelvis(smpl.global_orient, smpl.transl, smpl.rest_pelvis)
        for f in range(num_frames):
            fits.append({"Rh": smpl.global_orient[f], "Th": origin_transl[f],
                         "poses": np.concatenate([np.zeros(3), smpl.body_pose[f].reshape(-1)]), "shapes": smpl.betas})
        with atomic_directory(out_dir / video_id) as staging:
            write_mvhumannet_capture(staging, cameras, recorder.frames(backdrop(size, size, subject_seed(seed, index))),
                                     fits, body_model_label=OPEN_BODY_MODEL_LABEL)
            recorder.write(out_dir, video_id)
        seconds += time.perf_counter() - start
        ids.append(video_id)
    timing = SynthVideoTiming(tuple(ids), len(ids) * num_frames, len(ids) * num_frames * num_cameras, seconds)
    if ids:
        logger.info("wrote %d MVHumanNet-style captures to %s: %.3f s per image", len(ids), out_dir, timing.seconds_per_image)
    return timing


def synth_video_main(argv: Sequence[str] | None = None) -> int:
    """``gas synth tiktok|mvhumannet --out DIR [-n N] [--frames T] [--cameras C] [--size S] [--fps F] [--seed S] [--mp4]
    [--stress [--motions KIND ...] [--bodies KIND ...] [--scenes KIND ...] [--people KIND ...]]``."""
    parser = argparse.ArgumentParser(prog="gas synth", description="synthetic video datasets in the real layouts")
    parser.add_argument("kind", choices=["tiktok", "mvhumannet"])
    parser.add_argument("--out", required=True)
    parser.add_argument("-n", "--num", type=int, default=2, help="videos (tiktok) or subjects (mvhumannet)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--cameras", type=int, default=8, help="mvhumannet only")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mp4", action="store_true", help="tiktok only: write .mp4 files instead of PNG folders")
    parser.add_argument("--stress", action="store_true",
                        help="tiktok only: a stress set (motions and bodies outside the own ones, taken in turn)")
    parser.add_argument("--motions", nargs="+", default=list(StressOptions.motions), metavar="KIND",
                        help=f"with --stress: motion kinds ({', '.join(STRESS_MOTION_KINDS)}, or walk/dance/turn)")
    parser.add_argument("--bodies", nargs="+", default=list(StressOptions.bodies), metavar="KIND",
                        help=f"with --stress: body kinds (adult, {', '.join(STRESS_BODY_RANGES)})")
    parser.add_argument("--people", nargs="+", default=list(StressOptions.people), metavar="KIND",
                        help=f"with --stress: other people ({', '.join(STRESS_PEOPLE)})")
    parser.add_argument("--scenes", nargs="+", default=list(StressOptions.scenes), metavar="KIND",
                        help=f"with --stress: scene kinds ({', '.join(STRESS_SCENES)})")
    args = parser.parse_args(argv)
    if args.kind == "tiktok":
        stress = None
        if args.stress:
            try:
                stress = StressOptions(motions=tuple(args.motions), bodies=tuple(args.bodies), scenes=tuple(args.scenes),
                                       people=tuple(args.people))
            except ValueError as error:
                parser.error(str(error))
        timing = synthesize_tiktok(Path(args.out), num_videos=args.num, num_frames=args.frames, fps=args.fps,
                                   size=args.size, seed=args.seed, as_mp4=args.mp4, stress=stress)
    else:
        timing = synthesize_mvhumannet(Path(args.out), num_subjects=args.num, num_cameras=args.cameras,
                                       num_frames=args.frames, size=args.size, seed=args.seed, fps=args.fps)
    print(f"{len(timing.ids)} synthetic {args.kind} videos in {args.out} "
          f"({timing.images} images, {timing.seconds_per_image:.3f} s per image)")
    return 0
