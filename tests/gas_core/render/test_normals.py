"""Body-model normal maps: agreement with the official GAS render, geometry, encoding, reuse, errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from gas_core.cameras import Camera, OrbitSpec, look_at, orbit_cameras
from gas_core.render.encode import decode_png
from gas_core.render.normals import (
    NormalMapRenderer,
    decode_normal_map,
    encode_normals,
    normal_map_foreground,
    vertex_normals,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "official_normal_map"
SIZE = 64


@pytest.fixture(scope="module")
def renderer():
    with NormalMapRenderer(SIZE, SIZE) as instance:
        yield instance


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=0.5)


def _quad(normal_axis_up: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A 2 m square at the origin, counter-clockwise seen from +z (or from +y when ``normal_axis_up``)."""
    vertices = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    if normal_axis_up:  # rotate +z onto +y: (x, y, z) -> (x, z, -y)
        vertices = vertices[:, [0, 2, 1]] * np.array([1.0, 1.0, -1.0])
    return vertices, faces


# ----------------------------------------------------------------------------- official fixture
def test_matches_official_blender_render():
    camera = Camera.from_dict(json.loads((FIXTURE / "camera.json").read_text()))
    mesh = trimesh.load(FIXTURE / "mesh.obj", process=False)
    reference = cv2.cvtColor(cv2.imread(str(FIXTURE / "normal.png")), cv2.COLOR_BGR2RGB)
    with NormalMapRenderer(camera.width, camera.height) as big:
        ours = big.render(np.asarray(mesh.vertices), np.asarray(mesh.faces), camera)
    ours_mask, reference_mask = normal_map_foreground(ours), normal_map_foreground(reference)
    iou = (ours_mask & reference_mask).sum() / (ours_mask | reference_mask).sum()
    assert iou > 0.99
    interior = cv2.erode((ours_mask & reference_mask).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert interior.sum() > 10_000
    difference = np.abs(ours.astype(np.int16) - reference.astype(np.int16))[interior]
    assert np.all(difference.mean(axis=0) < 2.0), difference.mean(axis=0)
    # Ours is exact (no dither): the background is pure black.
    assert np.all(ours[~ours_mask] == 0)


def test_area_weighting_would_not_match_blender():
    """Guards the weighting: angle and area weights differ a lot on the fixture mesh."""
    mesh = trimesh.load(FIXTURE / "mesh.obj", process=False)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    angle = vertex_normals(vertices, faces)
    area = np.zeros_like(vertices)
    face_normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    for corner in range(3):
        np.add.at(area, faces[:, corner], face_normals)
    area /= np.linalg.norm(area, axis=1, keepdims=True)
    assert np.degrees(np.arccos(np.clip((angle * area).sum(1), -1, 1))).max() > 5.0


# ----------------------------------------------------------------------------- vertex normals
def test_vertex_normals_are_corner_angle_weighted():
    # Vertex 0 is shared by one triangle in the plane z = 0 (90 degree corner) and two in the plane
    # x = 0 facing -x (45 degrees each, but twice the area): angle weighting weighs both planes equally,
    # area weighting would give (-2, 0, 1) / sqrt(5).
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, -1], [0, 1, -1]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 4], [0, 4, 3]])
    normal = vertex_normals(vertices, faces)[0]
    np.testing.assert_allclose(normal, np.array([-1.0, 0.0, 1.0]) / math.sqrt(2.0), atol=1e-6)


def test_sphere_vertex_normals_point_outward(sphere):
    normals = vertex_normals(sphere.vertices, sphere.faces)
    radial = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    assert normals.dtype == np.float32 and normals.shape == sphere.vertices.shape
    assert np.min((normals * radial).sum(1)) > 0.999


def test_precise_far_from_origin(sphere):
    near = vertex_normals(sphere.vertices, sphere.faces)
    far = vertex_normals(sphere.vertices + np.array([0.0, 0.0, 40.0]), sphere.faces)
    assert np.abs(near - far).max() < 1e-3


def test_unused_vertex_and_degenerate_face_are_harmless():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 0, 1]])
    normals = vertex_normals(vertices, faces)
    assert np.all(np.isfinite(normals))
    np.testing.assert_allclose(normals[:3], [[0, 0, 1]] * 3, atol=1e-6)
    np.testing.assert_array_equal(normals[3], 0.0)


# ----------------------------------------------------------------------------- encoding
def test_encoding_of_axes():
    facing = encode_normals(np.array([0.0, 0.0, -1.0]))  # OpenCV: toward the camera is -z
    assert facing.tolist() == [128, 128, 255]
    assert encode_normals(np.array([1.0, 0.0, 0.0])).tolist() == [255, 128, 128]  # right
    assert encode_normals(np.array([0.0, -1.0, 0.0])).tolist() == [128, 255, 128]  # up (OpenCV y is down)


def test_decode_inverts_encode():
    rng = np.random.default_rng(3)
    normals = rng.normal(size=(10, 12, 3))
    normals[..., 2] = -np.abs(normals[..., 2]) - 0.2  # visible normals face the camera
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    image = encode_normals(normals)
    image[0, 0] = 0
    decoded = decode_normal_map(image)
    assert np.all(decoded[0, 0] == 0)
    assert np.abs(decoded[1:, 1:] - normals[1:, 1:]).max() < 0.01


# ----------------------------------------------------------------------------- rendering
def test_front_facing_plane_is_128_128_255(renderer):
    vertices, faces = _quad()
    camera = orbit_cameras(OrbitSpec(num_views=1, distance=3.0, width=SIZE, height=SIZE))[0]
    image = renderer.render(vertices, faces, camera)
    assert image[SIZE // 2, SIZE // 2].tolist() == [128, 128, 255]
    assert np.all(image[normal_map_foreground(image)] == [128, 128, 255])


def test_ground_plane_seen_from_above_points_up_in_the_image(renderer):
    vertices, faces = _quad(normal_axis_up=True)
    camera = orbit_cameras(OrbitSpec(num_views=1, distance=3.0, elevation_deg=45.0, width=SIZE, height=SIZE))[0]
    image = renderer.render(vertices, faces, camera)
    expected = [128, round((0.5 * math.sqrt(0.5) + 0.5) * 255), round((0.5 * math.sqrt(0.5) + 0.5) * 255)]
    np.testing.assert_allclose(image[SIZE // 2, SIZE // 2], expected, atol=1)


def _analytic_sphere_normals(camera: Camera, center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel OpenCV camera-frame normals of a sphere hit by each pixel-centre ray, and the hit mask."""
    u, v = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(camera.K).T
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    c = camera.R @ center + camera.t
    b = rays @ c
    disc = b * b - (c @ c - radius * radius)
    hit = disc > 0
    distance = b - np.sqrt(np.where(hit, disc, 0.0))
    points = rays * distance[..., None]
    return (points - c) / radius, hit


@pytest.mark.parametrize("elevation", [0.0, 30.0, -40.0])
def test_sphere_normals_match_geometry_in_every_view(renderer, sphere, elevation):
    center = np.array([0.1, -0.2, 0.3])
    cameras = orbit_cameras(OrbitSpec(num_views=5, distance=2.0, elevation_deg=elevation, width=SIZE,
                                      height=SIZE, target=tuple(center)))
    images = renderer.render_views(sphere.vertices + center, sphere.faces, cameras)
    for camera, image in zip(cameras, images):
        expected, hit = _analytic_sphere_normals(camera, center, 0.5)
        mask = normal_map_foreground(image)
        iou = (mask & hit).sum() / (mask | hit).sum()
        assert iou > 0.95
        interior = cv2.erode((mask & hit).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        difference = np.abs(image.astype(np.int16) - encode_normals(expected).astype(np.int16))[interior]
        assert difference.mean() < 2.0 and difference.max() <= 8


def test_views_frames_and_single_renders_agree(renderer, sphere):
    cameras = orbit_cameras(OrbitSpec(num_views=3, distance=2.0, width=SIZE, height=SIZE))
    views = renderer.render_views(sphere.vertices, sphere.faces, cameras)
    assert views.shape == (3, SIZE, SIZE, 3) and views.dtype == np.uint8
    for camera, view in zip(cameras, views):
        np.testing.assert_array_equal(renderer.render(sphere.vertices, sphere.faces, camera), view)
    assert not np.array_equal(views[0], views[1])  # the views differ (the sphere is off-centre below)

    offsets = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.25, 0.0]])
    sequence = sphere.vertices[None] + offsets[:, None]
    fixed = renderer.render_frames(sequence, sphere.faces, cameras[:1])
    per_frame_cameras = renderer.render_frames(sequence, sphere.faces, cameras)
    for frame in range(3):
        np.testing.assert_array_equal(fixed[frame], renderer.render(sequence[frame], sphere.faces, cameras[0]))
        np.testing.assert_array_equal(per_frame_cameras[frame],
                                      renderer.render(sequence[frame], sphere.faces, cameras[frame]))
    assert not np.array_equal(fixed[0], fixed[1])


def test_png_paths_decode_to_the_arrays(renderer, sphere):
    cameras = orbit_cameras(OrbitSpec(num_views=4, distance=2.0, width=SIZE, height=SIZE))
    arrays = renderer.render_views(sphere.vertices, sphere.faces, cameras)
    pngs = renderer.render_views_png(sphere.vertices, sphere.faces, cameras)
    assert len(pngs) == 4
    for data, array in zip(pngs, arrays):
        np.testing.assert_array_equal(decode_png(data), array)
    sequence = sphere.vertices[None] + np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]])[:, None]
    frame_pngs = renderer.render_frames_png(sequence, sphere.faces, cameras[:1])
    np.testing.assert_array_equal(decode_png(frame_pngs[1]), renderer.render(sequence[1], sphere.faces, cameras[0]))


def test_switching_meshes_reuses_the_renderer(renderer, sphere):
    camera = orbit_cameras(OrbitSpec(num_views=1, distance=3.0, width=SIZE, height=SIZE))[0]
    first = renderer.render(sphere.vertices, sphere.faces, camera)
    quad_vertices, quad_faces = _quad()
    quad = renderer.render(quad_vertices, quad_faces, camera)
    again = renderer.render(sphere.vertices, sphere.faces, camera)
    np.testing.assert_array_equal(first, again)
    assert normal_map_foreground(quad).sum() > normal_map_foreground(first).sum()


def test_back_faces_are_culled_unless_asked(renderer):
    vertices, faces = _quad()
    behind = orbit_cameras(OrbitSpec(num_views=2, distance=3.0, width=SIZE, height=SIZE))[1]  # from -z
    assert np.all(renderer.render(vertices, faces, behind) == 0)
    with NormalMapRenderer(SIZE, SIZE, cull_back_faces=False) as both_sides:
        image = both_sides.render(vertices, faces, behind)
    assert image[SIZE // 2, SIZE // 2].tolist() == [128, 128, 0]  # the normal points away from the viewer


def test_mesh_partly_behind_the_camera_renders_what_is_in_front(renderer):
    vertices, faces = _quad()
    R, t = look_at(np.array([0.0, 0.0, 0.0]) + np.array([0.0, 0.0, 0.5]), np.array([0.0, 0.0, -1.0]))
    # Camera at z = 0.5 looking down -z at a quad through which a second quad passes behind it.
    behind = vertices + np.array([0.0, 0.0, 1.0])  # z = 1, behind the camera
    all_vertices = np.concatenate([vertices, behind])
    all_faces = np.concatenate([faces, faces + 4])
    K = Camera.intrinsics_from_fov(60.0, SIZE, SIZE)
    image = renderer.render(all_vertices, all_faces, Camera(K=K, R=R, t=t, width=SIZE, height=SIZE))
    assert image[SIZE // 2, SIZE // 2].tolist() == [128, 128, 255]


@pytest.mark.parametrize("vertices, faces, message", [
    (np.zeros((0, 3)), np.zeros((1, 3), int), "vertices"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]]), np.array([[0, 1, 2]]), "vertices"),
    (np.eye(3), np.array([[0, 1, 3]]), "faces"),
    (np.eye(3), np.array([[0.0, 1.0, 2.0]]), "faces"),
    (np.eye(3), np.zeros((0, 3), int), "faces"),
])
def test_bad_meshes_raise(renderer, vertices, faces, message):
    camera = orbit_cameras(OrbitSpec(num_views=1, width=SIZE, height=SIZE))[0]
    with pytest.raises(ValueError, match=message):
        renderer.render(vertices, faces, camera)
    with pytest.raises(ValueError, match=message):
        vertex_normals(vertices, faces)


def test_bad_cameras_raise(renderer, sphere):
    wrong_size = orbit_cameras(OrbitSpec(num_views=1, width=SIZE * 2, height=SIZE))[0]
    with pytest.raises(ValueError, match=r"cameras\[0\].*scaled"):
        renderer.render(sphere.vertices, sphere.faces, wrong_size)
    right = orbit_cameras(OrbitSpec(num_views=2, width=SIZE, height=SIZE))
    with pytest.raises(ValueError, match="cameras"):
        renderer.render_frames(np.stack([sphere.vertices] * 3), sphere.faces, right)
    with pytest.raises(ValueError, match="Camera"):
        renderer.render(sphere.vertices, sphere.faces, "front")
    with pytest.raises(ValueError, match="width"):
        NormalMapRenderer(0, SIZE)


# ----------------------------------------------------------------------------- EGL
_EGL_SCRIPT = """
import json, numpy as np
from gas_core.cameras import OrbitSpec, orbit_cameras
from gas_core.render.normals import NormalMapRenderer
vertices = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
faces = np.array([[0, 1, 2], [0, 2, 3]])
camera = orbit_cameras(OrbitSpec(num_views=1, distance=3.0, width=32, height=32))[0]
with NormalMapRenderer(32, 32) as renderer:
    from OpenGL import GL
    name = GL.glGetString(GL.GL_RENDERER).decode()
    image = renderer.render(vertices, faces, camera)
print(json.dumps({"renderer": name, "center": image[16, 16].tolist()}))
"""


def _render_with_egl() -> dict:
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    result = subprocess.run([sys.executable, "-c", _EGL_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_egl_platform_renders_in_a_fresh_process():
    from gas_core.render.gl import _library_loads

    if not _library_loads("EGL"):
        pytest.skip("libEGL is not installed")
    assert _render_with_egl()["center"] == [128, 128, 255]


@pytest.mark.gpu
def test_egl_renders_on_the_gpu():
    result = _render_with_egl()
    assert result["center"] == [128, 128, 255]
    assert "llvmpipe" not in result["renderer"].lower(), result["renderer"]
