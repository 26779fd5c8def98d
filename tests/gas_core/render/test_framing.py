"""Orbit framing: the distance at which a subject of any size is wholly in every view, and the modes using it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import trimesh

from gas_core.cameras import OrbitSpec, orbit_cameras
from gas_core.render.framing import OrbitFraming, framed_orbit_spec, required_orbit_distance
from gas_core.render.scan import ScanRenderer, render_orbit

SIZE = 64
PAPER_GEOMETRY = OrbitSpec(num_views=8, width=SIZE, height=SIZE)  # the paper's 3 m and 40 degrees, fewer pixels


def _person_box(height: float, reach: float = 0.35) -> trimesh.Trimesh:
    """A vertex-coloured box standing in for a person ``height`` metres tall whose feet and hands stick
    out ``reach`` metres to the front (what cuts a tall subject in the front and back views)."""
    box = trimesh.creation.box(extents=[0.5, height, 2 * reach])
    box.apply_translation([0.4, 1.0, -0.2])  # not centred: render_orbit centres it
    box.visual.vertex_colors = np.tile([90, 140, 200, 255], (len(box.vertices), 1)).astype(np.uint8)
    return box


def _inside_fraction(points: np.ndarray, spec: OrbitSpec, margin: float) -> float:
    """Fraction of the views of ``spec`` in which every point projects inside the image less the margin."""
    inside = []
    for camera in orbit_cameras(spec):
        uv = camera.project(points)
        low = np.array([camera.width, camera.height]) * margin / 2
        high = np.array([camera.width, camera.height]) - low
        inside.append(bool(np.all((uv >= low - 1e-6) & (uv <= high + 1e-6))))
    return float(np.mean(inside))


def _whole_in_view(result) -> np.ndarray:
    """Per view: the silhouette is non-empty and touches no image border."""
    masks = np.stack([view.mask for view in result.views]) > 0
    border = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
    return masks.any(axis=(1, 2)) & ~border


@pytest.fixture(scope="module")
def renderer():
    with ScanRenderer(SIZE, SIZE) as instance:
        yield instance


@pytest.mark.parametrize("spec", [PAPER_GEOMETRY, OrbitSpec(num_views=5, elevation_deg=25.0, fov_y_deg=30.0,
                                                            width=48, height=80, target=(0.0, 0.3, 0.1))])
def test_required_distance_is_the_smallest_that_shows_every_point(spec):
    points = np.random.default_rng(0).normal(size=(500, 3)) * [0.3, 0.9, 0.2]
    for margin in (0.0, 0.05):
        distance = required_orbit_distance(points, spec, margin)
        assert _inside_fraction(points, dataclasses.replace(spec, distance=distance), margin) == 1.0
        assert _inside_fraction(points, dataclasses.replace(spec, distance=0.99 * distance), margin) < 1.0


def test_modes_contain_fit_and_fixed():
    tall = _person_box(2.1).vertices - _person_box(2.1).bounds.mean(axis=0)
    short = _person_box(1.0).vertices - _person_box(1.0).bounds.mean(axis=0)
    contain, fit, fixed = OrbitFraming("contain"), OrbitFraming("fit"), OrbitFraming("fixed")
    # contain: a small subject keeps the spec's distance, a tall one is moved back just enough
    assert framed_orbit_spec(short, PAPER_GEOMETRY, contain) == PAPER_GEOMETRY
    moved = framed_orbit_spec(tall, PAPER_GEOMETRY, contain)
    assert moved.distance == pytest.approx(required_orbit_distance(tall, PAPER_GEOMETRY, 0.05))
    assert moved.distance > 3.1 and dataclasses.replace(moved, distance=3.0) == PAPER_GEOMETRY
    # fit: every subject at its own smallest distance (the short one comes closer)
    assert framed_orbit_spec(short, PAPER_GEOMETRY, fit).distance < 2.0
    assert framed_orbit_spec(tall, PAPER_GEOMETRY, fit).distance == pytest.approx(moved.distance)
    # fixed: the spec as it is, whatever the size
    assert framed_orbit_spec(tall, PAPER_GEOMETRY, fixed) == PAPER_GEOMETRY


@pytest.mark.parametrize("height", [0.9, 1.6, 2.1, 2.5])
def test_tall_and_short_subjects_are_wholly_in_every_view(renderer, height):
    result = render_orbit(_person_box(height), PAPER_GEOMETRY, renderer=renderer)
    assert _whole_in_view(result).all()
    assert min((view.mask > 0).mean() for view in result.views) > 0.02
    assert result.spec.distance >= 3.0
    assert all(np.allclose(np.linalg.norm(camera.center), result.spec.distance) for camera in result.cameras)


def test_fixed_framing_still_cuts_a_subject_too_big_for_the_views(renderer):
    result = render_orbit(_person_box(2.1), PAPER_GEOMETRY, renderer=renderer, framing=OrbitFraming("fixed"))
    assert result.spec.distance == 3.0 and _whole_in_view(result).mean() < 0.9  # what visible_view_fraction sees


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mode must be one of"):
        OrbitFraming("zoom")
    with pytest.raises(ValueError, match="margin"):
        OrbitFraming(margin=0.6)
    with pytest.raises(ValueError, match="points"):
        required_orbit_distance(np.zeros((0, 3)), PAPER_GEOMETRY)
    with pytest.raises(ValueError, match="points must be finite"):
        required_orbit_distance(np.full((2, 3), np.nan), PAPER_GEOMETRY)
    with pytest.raises(ValueError, match="margin"):
        required_orbit_distance(np.zeros((2, 3)), PAPER_GEOMETRY, margin=-0.1)
    with pytest.raises(ValueError, match="framing must be an OrbitFraming"):
        framed_orbit_spec(np.zeros((2, 3)), PAPER_GEOMETRY, "fit")
