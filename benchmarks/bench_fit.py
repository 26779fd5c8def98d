"""Benchmark of the multi-view body fitter on held-out synthetic subjects.

Subjects come from Anny's full model (``gas_core.synth.humans``: sampled phenotypes, everyday poses with
seeded perturbations, clothing shells and skirts), so the fitted open body model never saw them. Their
ground-truth COCO-17 keypoints are projected into an orbit of calibrated views
(:class:`gas_core.body.fit.keypoints.ProjectedKeypoints`) with and without corruption, and the clothed
scan is given to the surface stage.

Reported per condition (means over subjects):

* joint error: mean distance between the fitted body's 24 joints and the subject's ground-truth SMPL
  joints, cm;
* scan->body: mean distance from clothed scan vertices to the fitted body surface, cm (includes the
  clothing thickness, so it is not zero for a perfect fit);
* body v2v: mean per-vertex distance between the fitted body and the subject's true unclothed body, cm
  (possible because the open body model shares Anny's vertices);
* keypoint px: confidence-weighted mean reprojection error of the fitted COCO keypoints;
* seconds per subject.

Run: ``GAS_CACHE_DIR=.cache .venv/bin/python benchmarks/bench_fit.py [--subjects 6] [--views 20]``.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from tqdm import tqdm

from gas_core.body.fit.fitter import CocoRegressor, FitConfig, fit_smpl_multiview
from gas_core.body.fit.keypoints import ProjectedKeypoints
from gas_core.body.open_model import ensure_open_body_model
from gas_core.body.smpl import BodyModel
from gas_core.cameras import OrbitSpec, orbit_cameras
from gas_core.synth.humans import make_subject, sample_subject_spec


@dataclass(frozen=True)
class Condition:
    name: str
    noise_px: float
    drop_prob: float
    use_scan: bool


CONDITIONS = (
    Condition("0 px, keypoints only", 0.0, 0.0, False),
    Condition("0 px + scan", 0.0, 0.0, True),
    Condition("3 px, 10% dropped, keypoints only", 3.0, 0.1, False),
    Condition("3 px, 10% dropped + scan", 3.0, 0.1, True),
)


def scan_to_body_distance(scan_vertices: np.ndarray, body_vertices: np.ndarray, faces: np.ndarray,
                          samples: int = 60000, seed: int = 0) -> float:
    """Mean distance (metres) from scan vertices to a dense, even sample of the body surface."""
    mesh = trimesh.Trimesh(body_vertices, faces, process=False)
    points, _ = trimesh.sample.sample_surface(mesh, samples, seed=seed)
    surface = np.vstack([points, body_vertices])
    return float(cKDTree(surface).query(scan_vertices)[0].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=6, help="held-out synthetic subjects")
    parser.add_argument("--first-seed", type=int, default=5000, help="seed of the first subject")
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    body = BodyModel(ensure_open_body_model())
    regressor = CocoRegressor.for_body_model(body)
    faces = body.faces.cpu().numpy()
    cameras = orbit_cameras(OrbitSpec(num_views=args.views, distance=3.0, width=args.resolution,
                                      height=args.resolution))
    config = FitConfig()
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {c.name: [] for c in CONDITIONS}
    poses = []
    for index in tqdm(range(args.subjects), desc="subjects"):
        subject = make_subject(sample_subject_spec(args.first_seed + index), texture_size=16)
        poses.append(subject.spec.pose_name)
        for condition in CONDITIONS:
            source = ProjectedKeypoints(subject.coco17, noise_px=condition.noise_px, drop_prob=condition.drop_prob,
                                        seed=index)
            keypoints = source.detect(None, cameras)
            start = time.perf_counter()
            result = fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor, config=config,
                                        scan_vertices=subject.vertices if condition.use_scan else None)
            seconds = time.perf_counter() - start
            joint_error = np.linalg.norm(result.joints - subject.joints24, axis=-1).mean()
            scan_distance = scan_to_body_distance(subject.vertices, result.vertices, faces)
            v2v = np.linalg.norm(result.vertices - subject.body_vertices, axis=-1).mean()
            rows[condition.name].append((joint_error, scan_distance, v2v, result.keypoint_error_px, seconds))

    print(f"\nbody model: {body.label}; {args.subjects} held-out Anny subjects (poses: {', '.join(poses)}); "
          f"{args.views} views at {args.resolution}px; torch threads {args.threads}")
    header = f"{'condition':<36} {'joint err cm':>12} {'scan->body cm':>14} {'body v2v cm':>12} {'kp px':>7} {'s/subject':>10}"
    print(header)
    print("-" * len(header))
    for condition in CONDITIONS:
        values = np.asarray(rows[condition.name])
        joint, scan, v2v, pixels, seconds = values.mean(0)
        worst = values[:, 0].max()
        print(f"{condition.name:<36} {100 * joint:>6.2f} (max {100 * worst:4.1f}) {100 * scan:>9.2f} "
              f"{100 * v2v:>12.2f} {pixels:>7.2f} {seconds:>10.1f}")


if __name__ == "__main__":
    main()
