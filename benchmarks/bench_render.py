"""Rendering throughput: scan views (pyrender) and body-model normal maps, with and without PNG encoding.

Run from the repository root (about 30 s on two CPU cores; set PYOPENGL_PLATFORM=egl on a GPU):

    GAS_CACHE_DIR=.cache .venv/bin/python benchmarks/bench_render.py

Meshes: a textured ellipsoid of 20,480 triangles standing in for a scan, and the SMPL-sized mesh of
tests/fixtures/official_normal_map (6,890 vertices, 13,776 triangles) for normal maps.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from gas_core.render.gl import configure_headless_gl  # noqa: E402

configure_headless_gl()

import trimesh  # noqa: E402
from PIL import Image  # noqa: E402

from gas_core.cameras import OrbitSpec, orbit_cameras  # noqa: E402
from gas_core.render.encode import encode_png  # noqa: E402
from gas_core.render.normals import NormalMapRenderer, vertex_normals  # noqa: E402
from gas_core.render.scan import ScanRenderer  # noqa: E402

FIXTURE_MESH = REPO_ROOT / "tests" / "fixtures" / "official_normal_map" / "mesh.obj"


def textured_scan_stand_in() -> trimesh.Trimesh:
    """A body-sized ellipsoid (20,480 triangles) with a 1024x1024 noise texture."""
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    mesh.vertices *= np.array([0.25, 0.85, 0.15])
    direction = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    uv = np.stack([0.5 + np.arctan2(direction[:, 0], direction[:, 2]) / (2 * np.pi), 0.5 + 0.5 * direction[:, 1]], 1)
    texture = np.random.default_rng(0).integers(0, 256, size=(1024, 1024, 3), dtype=np.uint8)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texture))
    return mesh


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f}"


def bench_scans(rows: list[tuple[str, str, str]], views: int) -> None:
    mesh = textured_scan_stand_in()
    for size in (1024, 512):
        cameras = orbit_cameras(OrbitSpec(num_views=views, width=size, height=size))
        with ScanRenderer(size, size) as renderer:
            start = time.perf_counter()
            renderer.set_mesh(mesh)
            renderer.render(cameras[0])  # first draw uploads buffers and textures
            setup = time.perf_counter() - start
            start = time.perf_counter()
            for camera in cameras:
                renderer.render(camera)
            elapsed = time.perf_counter() - start
        rows.append((f"scan views {size}x{size} (20k faces, textured)", rate(views, elapsed), f"scene set-up {setup * 1e3:.0f} ms"))


def bench_normals(rows: list[tuple[str, str, str]], views: int, frames: int) -> None:
    mesh = trimesh.load(FIXTURE_MESH, process=False)
    vertices = np.asarray(mesh.vertices) - np.asarray(mesh.vertices).mean(axis=0)
    faces = np.asarray(mesh.faces)
    cameras = orbit_cameras(OrbitSpec(num_views=views, width=512, height=512))
    rng = np.random.default_rng(0)
    sequence = vertices[None] + 0.01 * rng.standard_normal((frames, 1, 3))
    sequence = sequence + 0.002 * rng.standard_normal(sequence.shape)  # a new shape every frame

    start = time.perf_counter()
    for _ in range(50):
        vertex_normals(vertices, faces)
    rows.append(("vertex normals (6890 v, angle-weighted)", rate(50, time.perf_counter() - start), "per second"))

    with NormalMapRenderer(512, 512) as renderer:
        renderer.render_views(vertices, faces, cameras[:2])  # warm-up
        start = time.perf_counter()
        images = renderer.render_views(vertices, faces, cameras)
        rows.append(("normal maps 512, views of one pose", rate(views, time.perf_counter() - start), "no PNG"))
        start = time.perf_counter()
        renderer.render_views_png(vertices, faces, cameras)
        rows.append(("normal maps 512, views of one pose", rate(views, time.perf_counter() - start),
                     f"with PNG ({renderer.encode_workers} encode thread(s))"))
        start = time.perf_counter()
        renderer.render_frames(sequence, faces, cameras[:1])
        rows.append(("normal maps 512, new pose every frame", rate(frames, time.perf_counter() - start), "no PNG"))
        start = time.perf_counter()
        renderer.render_frames_png(sequence, faces, cameras[:1])
        rows.append(("normal maps 512, new pose every frame", rate(frames, time.perf_counter() - start),
                     f"with PNG ({renderer.encode_workers} encode thread(s))"))
    start = time.perf_counter()
    for image in images:
        encode_png(image)
    rows.append(("PNG encode only (512 normal map, level 1)", rate(len(images), time.perf_counter() - start), "1 thread"))


def bench_body_model(rows: list[tuple[str, str, str]], repeats: int = 20) -> None:
    """Forward passes of the body model (the open Anny-derived model unless GAS_BODY_MODEL_PATH is set)."""
    import torch

    from gas_core.body.limits import sample_body_pose
    from gas_core.body.open_model import ensure_open_body_model
    from gas_core.body.smpl import BodyModel, SMPLParams

    path = os.environ.get("GAS_BODY_MODEL_PATH") or ensure_open_body_model()
    body = BodyModel(path)
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 16):
        params = SMPLParams.zeros(batch)
        params = SMPLParams(betas=torch.randn(batch, 10, generator=generator),
                            body_pose=sample_body_pose(batch, generator), global_orient=params.global_orient,
                            transl=params.transl)
        with torch.no_grad():
            body(params)  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                body(params)
        elapsed = (time.perf_counter() - start) / repeats
        rows.append((f"body model forward, batch {batch}", rate(batch, elapsed),
                     f"{elapsed * 1e3:.1f} ms per call, {body.num_vertices} vertices ({body.label})"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=20, help="views per orbit (default 20, as in the paper)")
    parser.add_argument("--frames", type=int, default=200, help="posed frames for the normal-map sequence test")
    args = parser.parse_args()

    rows: list[tuple[str, str, str]] = []
    total = time.perf_counter()
    bench_scans(rows, args.views)
    bench_normals(rows, args.views, args.frames)
    bench_body_model(rows)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    platform = os.environ.get("PYOPENGL_PLATFORM", "?")
    print(f"platform: {platform}, cores: {os.cpu_count()}")
    print(f"{'what':<46} {'per s':>8}  notes")
    print("-" * 90)
    for what, value, notes in rows:
        print(f"{what:<46} {value}  {notes}")
    print("-" * 90)
    print(f"peak resident memory: {peak_mb:.0f} MB; benchmark wall time {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    main()
