"""Benchmark of the multi-view body fitter on held-out synthetic subjects, edge bodies included.

Subjects come from Anny's full model (``gas_core.synth.humans``: sampled phenotypes, everyday poses with
seeded perturbations, clothing shells and skirts), so the fitted open body model never saw them. Their
ground-truth COCO-17 keypoints are projected into an orbit of calibrated views
(:class:`gas_core.body.fit.keypoints.ProjectedKeypoints`) with and without corruption, and the clothed
scan is given to the surface stage. Two groups of subjects:

* typical adults (:func:`gas_core.synth.humans.sample_subject_spec`, ``--subjects``);
* edge bodies (:func:`gas_core.synth.humans.sample_edge_subject_spec`, ``--edge-per-region`` per
  region of :data:`gas_core.body.open_model.EDGE_PHENOTYPE_REGIONS`: children, very short and very
  tall adults, extreme proportions).

Tables:

1. per condition and group (means over subjects): joint error (mean distance between the fitted
   body's 24 joints and the subject's ground-truth SMPL joints, cm, and the worst subject), the worst
   joint (largest mean over the group's subjects), scan->body (mean distance from clothed scan vertices
   to the fitted body surface, cm; includes the clothing thickness), body v2v (mean per-vertex distance
   to the true unclothed body, cm; possible because the open body model shares Anny's vertices),
   keypoint px, largest |beta|, seconds per subject;
2. per joint (rows) and group (columns): mean joint error in cm, for the last condition run.

``--body-model DIR`` fits with another build of the open model (e.g. an older one, to compare);
``--fit NAME=VALUE`` (repeatable) overrides a :class:`gas_core.body.fit.fitter.FitConfig` field.

Run: ``GAS_CACHE_DIR=.cache .venv/bin/python benchmarks/bench_fit.py [--subjects 6] [--edge-per-region 2]
[--views 20] [--only-noisy-scan]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from tqdm import tqdm

from gas_core.body.fit.fitter import CocoRegressor, FitConfig, fit_smpl_multiview
from gas_core.body.fit.keypoints import ProjectedKeypoints
from gas_core.body.joints import SMPL_JOINT_NAMES
from gas_core.body.open_model import EDGE_PHENOTYPE_REGIONS, ensure_open_body_model
from gas_core.body.smpl import BodyModel
from gas_core.cameras import OrbitSpec, orbit_cameras
from gas_core.synth.humans import make_subject, sample_edge_subject_spec, sample_subject_spec


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


@dataclass(frozen=True)
class Measurement:
    joint_errors: np.ndarray  # (24,) metres
    scan_to_body: float
    v2v: float
    keypoint_px: float
    betas_abs_max: float
    seconds: float


def scan_to_body_distance(scan_vertices: np.ndarray, body_vertices: np.ndarray, faces: np.ndarray,
                          samples: int = 60000, seed: int = 0) -> float:
    """Mean distance (metres) from scan vertices to a dense, even sample of the body surface."""
    mesh = trimesh.Trimesh(body_vertices, faces, process=False)
    points, _ = trimesh.sample.sample_surface(mesh, samples, seed=seed)
    surface = np.vstack([points, body_vertices])
    return float(cKDTree(surface).query(scan_vertices)[0].mean())


def fit_config_with_overrides(overrides: list[str]) -> FitConfig:
    """The default :class:`FitConfig` with ``NAME=VALUE`` overrides (values cast to the field's type)."""
    config = FitConfig()
    types = {field.name: type(getattr(config, field.name)) for field in dataclasses.fields(FitConfig)}
    changes = {}
    for override in overrides:
        name, separator, value = override.partition("=")
        if not separator or name not in types:
            raise ValueError(f"--fit expects NAME=VALUE with NAME a FitConfig field ({', '.join(types)}), got {override!r}")
        changes[name] = types[name](value)
    return dataclasses.replace(config, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=6, help="held-out typical synthetic subjects")
    parser.add_argument("--edge-per-region", type=int, default=2, help="edge subjects per edge region")
    parser.add_argument("--first-seed", type=int, default=5000, help="seed of the first subject")
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--body-model", type=Path, default=None, help="folder of an open body model build")
    parser.add_argument("--fit", action="append", default=[], metavar="NAME=VALUE",
                        help="override a FitConfig field, e.g. --fit surface_iterations=200 (repeatable)")
    parser.add_argument("--only-noisy-scan", action="store_true",
                        help=f"run only the condition {CONDITIONS[-1].name!r} (the realistic one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    body = BodyModel(args.body_model if args.body_model is not None else ensure_open_body_model())
    regressor = CocoRegressor.for_body_model(body)
    faces = body.faces.cpu().numpy()
    cameras = orbit_cameras(OrbitSpec(num_views=args.views, distance=3.0, width=args.resolution,
                                      height=args.resolution))
    config = fit_config_with_overrides(args.fit)
    conditions = CONDITIONS[-1:] if args.only_noisy_scan else CONDITIONS
    specs: list[tuple[str, object]] = [("typical", sample_subject_spec(args.first_seed + i)) for i in range(args.subjects)]
    for region in EDGE_PHENOTYPE_REGIONS:
        specs += [(region.name, sample_edge_subject_spec(args.first_seed + 100 + i, region))
                  for i in range(args.edge_per_region)]
    groups = list(dict.fromkeys(group for group, _ in specs))
    results: dict[tuple[str, str], list[Measurement]] = {(c.name, g): [] for c in conditions for g in groups}
    heights: dict[str, list[float]] = {g: [] for g in groups}
    for index, (group, spec) in enumerate(tqdm(specs, desc="subjects")):
        subject = make_subject(spec, texture_size=16)
        heights[group].append(float(subject.body_vertices[:, 1].max() - subject.body_vertices[:, 1].min()))
        for condition in conditions:
            source = ProjectedKeypoints(subject.coco17, noise_px=condition.noise_px, drop_prob=condition.drop_prob,
                                        seed=index)
            keypoints = source.detect(None, cameras)
            start = time.perf_counter()
            result = fit_smpl_multiview(body, cameras, keypoints, coco_regressor=regressor, config=config,
                                        scan_vertices=subject.vertices if condition.use_scan else None)
            seconds = time.perf_counter() - start
            results[(condition.name, group)].append(Measurement(
                joint_errors=np.linalg.norm(result.joints - subject.joints24, axis=-1),
                scan_to_body=scan_to_body_distance(subject.vertices, result.vertices, faces),
                v2v=float(np.linalg.norm(result.vertices - subject.body_vertices, axis=-1).mean()),
                keypoint_px=float(result.keypoint_error_px),
                betas_abs_max=float(result.params.betas.abs().max()),
                seconds=seconds))

    print(f"\nbody model: {body.label} ({args.body_model or 'default build'}); {args.views} views at "
          f"{args.resolution}px; torch threads {args.threads}; fit overrides: {', '.join(args.fit) or 'none'}")
    print("subjects: " + "; ".join(f"{g} {len(heights[g])} ({min(heights[g]):.2f}-{max(heights[g]):.2f} m)" for g in groups))
    header = (f"{'condition':<34} {'group':<19} {'joint err cm':>17} {'worst joint (cm)':>24} {'scan->body':>10} "
              f"{'v2v cm':>7} {'kp px':>6} {'|beta|':>6} {'s/subj':>6}")
    print(header)
    print("-" * len(header))
    for condition in conditions:
        for group in groups:
            rows = results[(condition.name, group)]
            errors = np.stack([row.joint_errors for row in rows])  # (subjects, 24)
            per_joint = errors.mean(0)
            worst = int(per_joint.argmax())
            print(f"{condition.name:<34} {group:<19} {100 * errors.mean():>6.2f} (max {100 * errors.mean(1).max():4.1f}) "
                  f"{SMPL_JOINT_NAMES[worst]:>16} {100 * per_joint[worst]:>6.2f} "
                  f"{100 * np.mean([r.scan_to_body for r in rows]):>10.2f} {100 * np.mean([r.v2v for r in rows]):>7.2f} "
                  f"{np.mean([r.keypoint_px for r in rows]):>6.2f} {max(r.betas_abs_max for r in rows):>6.2f} "
                  f"{np.mean([r.seconds for r in rows]):>6.1f}")
    last = conditions[-1]
    print(f"\nper-joint mean error, cm ({last.name})")
    print(f"{'joint':<16}" + "".join(f"{group[:18]:>19}" for group in groups))
    table = {group: np.stack([row.joint_errors for row in results[(last.name, group)]]).mean(0) for group in groups}
    for joint, name in enumerate(SMPL_JOINT_NAMES):
        print(f"{name:<16}" + "".join(f"{100 * table[group][joint]:>19.2f}" for group in groups))
    print(f"{'worst joint':<16}" + "".join(f"{100 * table[group].max():>19.2f}" for group in groups))


if __name__ == "__main__":
    main()
