"""Scan rendering: silhouettes where the cameras project, true colours, metric depth, reuse, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import trimesh
from PIL import Image

from gas_core.cameras import Camera, OrbitSpec, orbit_cameras
from gas_core.render.normalize import Normalization
from gas_core.render.scan import ScanRenderer, clip_planes, render_orbit

SIZE = 96
HALF_EXTENTS = np.array([0.2, 0.8, 0.15])
OFFSET = np.array([1.0, 2.0, -3.0])  # scans are rarely centred: render_orbit must centre them
COLOR = (200, 100, 50)


@pytest.fixture(scope="module")
def renderer():
    with ScanRenderer(SIZE, SIZE) as instance:
        yield instance


def _vertex_colored_box() -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=2 * HALF_EXTENTS)
    box.apply_translation(OFFSET)
    box.visual.vertex_colors = np.tile([*COLOR, 255], (len(box.vertices), 1)).astype(np.uint8)
    return box


def _textured_sphere() -> trimesh.Trimesh:
    """A sphere whose texture is red on its upper half and blue on its lower half (uv v = 1 is up)."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    uv = np.stack([0.5 + np.arctan2(sphere.vertices[:, 0], sphere.vertices[:, 2]) / (2 * np.pi),
                   0.5 + sphere.vertices[:, 1]], axis=1)
    texture = np.zeros((32, 32, 3), np.uint8)
    texture[:16] = (255, 0, 0)  # image top = uv v in (0.5, 1]
    texture[16:] = (0, 0, 255)
    sphere.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texture))
    return sphere


def _spec(**overrides) -> OrbitSpec:
    return OrbitSpec(**{"num_views": 4, "distance": 3.0, "elevation_deg": 20.0, "width": SIZE, "height": SIZE,
                        **overrides})


def test_orbit_silhouettes_are_where_cameras_project(renderer):
    box = _vertex_colored_box()
    result = render_orbit(box, _spec(), renderer=renderer)
    np.testing.assert_allclose(result.normalization.center, OFFSET, atol=1e-9)
    assert len(result.views) == len(result.cameras) == 4
    corners = result.normalization.apply(box.vertices)
    kernel = np.ones((3, 3), np.uint8)
    for camera, view in zip(result.cameras, result.views):
        pixels = camera.project(corners) - 0.5  # OpenCV drawing puts pixel centres on integers
        hull = cv2.convexHull(np.round(pixels * 16).astype(np.int32))
        expected = np.zeros((SIZE, SIZE), np.uint8)
        cv2.fillConvexPoly(expected, hull, 1, lineType=cv2.LINE_8, shift=4)
        mask = view.mask > 0
        assert set(np.unique(view.mask)) <= {0, 255}
        assert mask.sum() > 200
        assert np.all(mask[cv2.erode(expected, kernel).astype(bool)])
        assert not np.any(mask[~cv2.dilate(expected, kernel).astype(bool)])


def test_depth_is_metric_camera_z_on_the_surface(renderer):
    box = _vertex_colored_box()
    result = render_orbit(box, _spec(num_views=3), renderer=renderer)
    for camera, view in zip(result.cameras, result.views):
        assert view.depth.dtype == np.float32
        assert np.all(view.depth[view.mask == 0] == 0)
        v, u = np.nonzero(view.mask)
        z = view.depth[v, u].astype(np.float64)
        rays = np.stack([u + 0.5, v + 0.5, np.ones_like(z)], axis=1) @ np.linalg.inv(camera.K).T
        world = (rays * z[:, None] - camera.t) @ camera.R  # X = R^T (x_cam - t)
        # Every back-projected pixel lies on the (centred) box's surface.
        ratio = np.max(np.abs(world) / HALF_EXTENTS, axis=1)
        assert np.abs(ratio - 1.0).max() < 0.02
    front = render_orbit(box, _spec(num_views=1, elevation_deg=0.0), renderer=renderer).views[0]
    assert front.depth[SIZE // 2, SIZE // 2] == pytest.approx(3.0 - HALF_EXTENTS[2], abs=1e-3)


def test_vertex_colours_are_rendered_unlit(renderer):
    view = render_orbit(_vertex_colored_box(), _spec(num_views=2), renderer=renderer).views[1]
    assert np.all(view.rgb[view.mask > 0] == COLOR)
    assert np.all(view.rgb[view.mask == 0] == 0)
    assert view.rgb.dtype == np.uint8 and view.rgb.shape == (SIZE, SIZE, 3)


def test_texture_is_sampled_the_right_way_up(renderer):
    view = render_orbit(_textured_sphere(), _spec(num_views=1, elevation_deg=0.0), renderer=renderer).views[0]
    column = SIZE // 2
    rows = np.nonzero(view.mask[:, column])[0]
    top, bottom = rows.min(), rows.max()
    assert view.rgb[top + 5, column].tolist() == [255, 0, 0]
    assert view.rgb[bottom - 5, column].tolist() == [0, 0, 255]


def test_one_renderer_serves_several_meshes(renderer):
    cameras = orbit_cameras(_spec(num_views=2))
    box, sphere = _vertex_colored_box(), _textured_sphere()
    box_normalization = Normalization(center=OFFSET, scale=1.0)
    first = renderer.render_views(box, cameras, box_normalization)
    spheres = renderer.render_views(sphere, cameras)
    again = renderer.render_views(box, cameras, box_normalization)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.depth, b.depth)
    assert not np.array_equal(first[0].mask, spheres[0].mask)
    colors = spheres[0].rgb[spheres[0].mask > 0].astype(int)
    # Only red, blue and (at the equator, filtered) blends of the two.
    assert np.all(colors[:, 1] == 0) and np.all(np.abs(colors[:, 0] + colors[:, 2] - 255) <= 1)


def test_context_is_recycled_and_renders_the_same():
    cameras = orbit_cameras(_spec(num_views=1))
    with ScanRenderer(SIZE, SIZE, meshes_per_context=2) as recycling:
        first_context = recycling._renderer
        views = [recycling.render_views(_textured_sphere(), cameras)[0] for _ in range(3)]
        assert recycling._renderer is not first_context
    for view in views[1:]:
        np.testing.assert_array_equal(view.rgb, views[0].rgb)


def test_scan_and_normal_renderers_share_a_process(renderer):
    from gas_core.render.normals import NormalMapRenderer

    box = _vertex_colored_box()
    cameras = orbit_cameras(_spec(num_views=1))
    before = renderer.render_views(box, cameras, Normalization(center=OFFSET, scale=1.0))[0]
    with NormalMapRenderer(SIZE, SIZE) as normals:
        normal_map = normals.render(box.vertices - OFFSET, box.faces, cameras[0])
        after = renderer.render(cameras[0])
    np.testing.assert_array_equal(before.rgb, after.rgb)
    np.testing.assert_array_equal(before.mask > 0, normal_map[..., 2] > 32)


def test_target_height_rescales_the_subject(renderer):
    result = render_orbit(_vertex_colored_box(), _spec(num_views=1), renderer=renderer, target_height=0.8)
    assert result.normalization.scale == pytest.approx(0.8 / (2 * HALF_EXTENTS[1]))
    full = render_orbit(_vertex_colored_box(), _spec(num_views=1), renderer=renderer)
    assert result.views[0].mask.sum() < 0.5 * full.views[0].mask.sum()


def test_far_away_mesh_with_long_focal_length(renderer):
    """The planes follow the mesh: a 0.2 m box 42 m away through a 10,000 px lens (the fixture's set-up)."""
    box = trimesh.creation.box(extents=[0.2, 0.2, 0.2])
    box.apply_translation([0.0, 0.0, 42.0])
    box.visual.vertex_colors = np.tile([10, 20, 30, 255], (len(box.vertices), 1)).astype(np.uint8)
    K = np.array([[10000.0, 0.0, SIZE / 2], [0.0, 10000.0, SIZE / 2], [0.0, 0.0, 1.0]])
    camera = Camera(K=K, R=np.eye(3), t=np.zeros(3), width=SIZE, height=SIZE)
    view = renderer.render_views(box, [camera])[0]
    side = 10000.0 * 0.2 / 41.9  # pixels spanned by the front face
    assert abs(np.sqrt((view.mask > 0).sum()) - side) < 2.0
    assert view.depth[SIZE // 2, SIZE // 2] == pytest.approx(41.9, abs=2e-3)
    near, far = clip_planes(box.vertices, camera)
    assert 41.0 < near < 41.9 and 42.1 < far < 43.0


def test_bad_meshes_raise(renderer):
    camera = orbit_cameras(_spec(num_views=1))[0]
    with pytest.raises(ValueError, match="mesh is empty"):
        renderer.render_views(trimesh.Trimesh(), [camera])
    broken = _vertex_colored_box()
    broken.vertices[0] = [np.nan, 0.0, 0.0]
    with pytest.raises(ValueError, match="mesh has NaN"):
        render_orbit(broken, _spec(num_views=1), renderer=renderer)
    plain = trimesh.creation.box()
    with pytest.raises(ValueError, match="neither a texture"):
        renderer.set_mesh(plain)
    untextured = _textured_sphere()
    untextured.visual.material.image = None
    with pytest.raises(ValueError, match="no texture image"):
        renderer.set_mesh(untextured)
    with pytest.raises(ValueError, match="trimesh.Trimesh"):
        renderer.set_mesh(np.zeros((3, 3)))


def test_bad_cameras_raise(renderer):
    renderer.set_mesh(_vertex_colored_box())
    with pytest.raises(ValueError, match="scaled"):
        renderer.render(orbit_cameras(_spec(num_views=1, width=SIZE * 2))[0])
    with pytest.raises(ValueError, match="Camera"):
        renderer.render("front")
    with pytest.raises(ValueError, match="spec"):
        render_orbit(_vertex_colored_box(), _spec(width=SIZE * 2), renderer=renderer)
