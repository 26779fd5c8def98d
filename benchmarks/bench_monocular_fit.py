"""Quality and speed of the monocular per-frame SMPL fit on synthetic clips (prints a table).

Two ground-truth sources (``--source``):

* ``motion`` (default): :mod:`gas_core.synth.motion` -- subjects made by Anny's full model (not the
  fitted 24-joint model) performing a dance, a sideways walk and a 360-degree turn; ground-truth SMPL
  joints and COCO-17 keypoints come from Anny's rig and regressor. World y up; a fixed portrait camera
  3 m in front of the subject.
* ``sinusoid``: clips of the open body model with smooth motion (``--frames`` frames at 30 fps): every
joint angle is the relaxed standing pose plus a sum of two sinusoids (random frequencies 0.2-1.5 Hz
and phases, amplitudes a fraction of the joint's range, clipped to the joint limits), the body turns
slowly about its vertical axis (+-25 degrees) and walks a little (x and depth), betas random
(N(0, 0.7)). A fixed portrait camera (1080 x 1920, 55 degrees over the long side) sees it from
2.6-3.2 m; the COCO-17 keypoints are the body model's own regressor's (the most favourable case: the
fitted model made the data, and the motion is centred on the pose prior's mean).

Keypoints are projected, then corrupted (Gaussian pixel noise, dropped points) with
:func:`gas_core.body.fit.monocular.project_video_keypoints`.

Each clip is fitted with the preset's temporal smoothing and with every smoothness weight at 0; the
table reports, over clips, SMPL's 24 joints:

* MPJPE after root (pelvis) alignment and after per-frame Procrustes alignment, mm;
* acceleration error (HMR/VIBE: mean |a_pred - a_gt| of root-aligned joints), mm / frame^2, and the
  ground truth's own mean acceleration magnitude for scale;
* the mean 2D reprojection error to the (noisy) keypoints, px; seconds per frame on this machine's CPU.

Usage: ``python benchmarks/bench_monocular_fit.py [--source motion|sinusoid] [--clips 3] [--frames 60] [--noise-px 4] [--drop 0.05]
[--preset paper|tiny] [--threads 2]`` (``--threads``: torch threads of the ground-truth bodies; the fit
itself runs on ``MonocularFitConfig.cpu_threads``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from gas_core.body.fit.fitter import CocoRegressor  # noqa: E402
from gas_core.body.fit.monocular import (  # noqa: E402
    RELAXED_BODY_POSE,
    MonocularFitConfig,
    fit_smpl_monocular,
    monocular_camera,
    project_video_keypoints,
)
from gas_core.body.limits import body_pose_limits  # noqa: E402
from gas_core.cameras import Camera, look_at  # noqa: E402
from gas_core.body.smpl import BodyModel, SMPLParams  # noqa: E402
from gas_core.metrics.joints import acceleration, acceleration_error, procrustes_aligned_mpjpe, root_aligned_mpjpe  # noqa: E402

FPS = 30.0
IMAGE_SIZE = (1080, 1920)


def sinusoidal_clip(frames: int, seed: int, amplitude_fraction: float = 0.3) -> SMPLParams:
    """A smooth synthetic motion (see the module docstring), world = camera frame (OpenCV)."""
    rng = np.random.default_rng(seed)
    low, high = (limit.double().numpy() for limit in body_pose_limits())
    time_s = np.arange(frames)[:, None, None] / FPS
    pose = np.repeat(RELAXED_BODY_POSE[None], frames, axis=0)
    for _ in range(2):
        frequency = rng.uniform(0.2, 1.5, size=(1, 23, 3))
        phase = rng.uniform(0.0, 2.0 * math.pi, size=(1, 23, 3))
        amplitude = 0.5 * amplitude_fraction * (high - low)[None] * rng.uniform(0.3, 1.0, size=(1, 23, 3))
        pose = pose + amplitude * np.sin(2.0 * math.pi * frequency * time_s + phase)
    pose = np.clip(pose, low, high)
    t = np.arange(frames) / FPS
    heading = math.radians(25.0) * np.sin(2.0 * math.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * math.pi))
    upright = Rotation.from_rotvec([math.pi, 0.0, 0.0])  # SMPL y up -> camera y down, facing the camera
    orient = (upright * Rotation.from_rotvec(np.stack([0 * heading, heading, 0 * heading], 1))).as_rotvec()
    depth = rng.uniform(2.6, 3.2)
    transl = np.stack([0.25 * np.sin(2 * math.pi * 0.15 * t), np.full_like(t, 0.15), depth + 0.2 * np.sin(2 * math.pi * 0.1 * t)], 1)
    betas = rng.normal(0.0, 0.7, size=(1, 10))
    as_tensor = lambda value: torch.as_tensor(value, dtype=torch.float32)  # noqa: E731
    return SMPLParams(betas=as_tensor(np.repeat(betas, frames, 0)), body_pose=as_tensor(pose),
                      global_orient=as_tensor(orient), transl=as_tensor(transl))


def synthetic_motion_clip(kind: str, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray, Camera]:
    """Ground-truth SMPL joints (T, 24, 3), COCO-17 keypoints (T, 17, 3) (world, metres) and the camera of
    one :mod:`gas_core.synth.motion` clip of an Anny subject."""
    from gas_core.synth.humans import sample_subject_spec
    from gas_core.synth.motion import MotionSpec, make_motion

    walking = kind == "walk"
    motion = MotionSpec(kind, num_frames=frames, fps=FPS, seed=seed, walk_speed=0.4,
                        heading_deg=90.0 if walking else 0.0)
    clip = make_motion(sample_subject_spec(seed), motion, texture_size=16)
    target = np.array([0.2 * frames / FPS if walking else 0.0, -0.05, 0.0])
    R, t = look_at(target + np.array([0.0, 0.05, 3.0]), target)
    K = monocular_camera(IMAGE_SIZE).K
    camera = Camera(K=K, R=R, t=t, width=IMAGE_SIZE[0], height=IMAGE_SIZE[1])
    return clip.joints24.astype(np.float64), clip.coco17.astype(np.float64), camera


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("motion", "sinusoid"), default="motion")
    parser.add_argument("--clips", type=int, default=3, help="clips (sinusoid) or subjects per motion kind (motion)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--noise-px", type=float, default=4.0)
    parser.add_argument("--drop", type=float, default=0.05)
    parser.add_argument("--preset", choices=("tiny", "paper"), default="paper")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    body = BodyModel()
    regressor = CocoRegressor.for_body_model(body)
    camera = monocular_camera(IMAGE_SIZE)
    base = getattr(MonocularFitConfig, args.preset)()
    variants = {"temporal smoothing": base, "no smoothing (weights 0)": base.without_smoothing()}
    rows: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
    truth_acceleration = []
    clips = []
    if args.source == "sinusoid":
        for clip in range(args.clips):
            with torch.no_grad():
                output = body(sinusoidal_clip(args.frames, seed=100 + clip))
            clips.append((f"sinusoid {clip}", output.joints.double().numpy(),
                          regressor.regress(output.vertices.double()).numpy(), camera))
    else:
        for clip in range(args.clips):
            for kind in ("dance", "walk", "turn"):
                clips.append((f"{kind} {clip}", *synthetic_motion_clip(kind, args.frames, seed=200 + clip)))
    for clip, (label, truth_joints, coco, clip_camera) in enumerate(clips):
        keypoints = project_video_keypoints(coco, clip_camera, noise_px=args.noise_px, drop_prob=args.drop, seed=clip)
        truth_acceleration.append(np.linalg.norm(acceleration(truth_joints - truth_joints[:, :1]), axis=-1).mean())
        for name, config in variants.items():
            start = time.perf_counter()
            result = fit_smpl_monocular(body, keypoints, IMAGE_SIZE, config, camera=clip_camera, coco_regressor=regressor)
            seconds = time.perf_counter() - start
            figures = {
                "MPJPE root-aligned (mm)": 1000 * root_aligned_mpjpe(result.joints, truth_joints),
                "PA-MPJPE (mm)": 1000 * procrustes_aligned_mpjpe(result.joints, truth_joints),
                "accel. error (mm/frame^2)": 1000 * acceleration_error(result.joints, truth_joints, root_index=0),
                "2D error (px)": float(np.nanmean(result.reprojection_error_px)),
                "s / frame": seconds / args.frames,
            }
            for key, value in figures.items():
                rows[name].setdefault(key, []).append(value)
            print(f"{label} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()), flush=True)

    columns = list(next(iter(rows.values())).keys())
    print()
    print(f"{len(clips)} {args.source} clips x {args.frames} frames, {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, keypoint noise {args.noise_px} px, "
          f"{100 * args.drop:.0f} % dropped, preset {args.preset}, fit on {base.cpu_threads} CPU thread(s); ground-truth mean "
          f"acceleration {1000 * np.mean(truth_acceleration):.2f} mm/frame^2")
    print("| fit | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for name, figures in rows.items():
        print(f"| {name} | " + " | ".join(f"{np.mean(figures[c]):.2f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
