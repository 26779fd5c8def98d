"""Proximity grid, camera rays and near-surface sampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from gas_core.nerf.sampling import (
    SurfaceProximityGrid,
    camera_rays,
    pixel_centers,
    ray_box_intersection,
    sample_near_surface,
)

from .conftest import orbit


def test_grid_finds_a_vertex_about_as_near_as_the_nearest(posed_bodies):
    vertices = posed_bodies.vertices
    grid = SurfaceProximityGrid(vertices, band=0.05, cell_size=0.025)
    generator = torch.Generator().manual_seed(1)
    picks = torch.randint(0, vertices.shape[1], (2, 400), generator=generator)
    points = torch.stack([vertices[b, picks[b]] for b in range(2)]) + 0.04 * torch.randn(2, 400, 3, generator=generator)
    batch_index = torch.arange(2).repeat_interleave(400)
    found = grid.lookup(points.reshape(-1, 3), batch_index)
    exact = torch.cdist(points, vertices).amin(dim=-1).reshape(-1)
    distance = grid.distance(points.reshape(-1, 3), batch_index)
    half_diagonal = 0.5 * math.sqrt(3) * 0.025
    within = exact < 0.05 - half_diagonal
    assert bool((found[within] >= 0).all())  # every point well inside the band is found
    assert bool((distance[found >= 0] <= exact[found >= 0] + 2 * half_diagonal + 1e-6).all())
    far = vertices.amax(dim=1) + 0.5
    assert bool((grid.lookup(far, torch.arange(2)) == -1).all())
    assert bool(torch.isinf(grid.distance(far, torch.arange(2))).all())
    with pytest.raises(ValueError, match="band"):
        SurfaceProximityGrid(vertices, band=0.0, cell_size=0.02)


def test_camera_rays_pass_through_their_pixels():
    camera = orbit(32, views=3)
    pixels = pixel_centers(32, 32)[None].expand(3, -1, -1)
    origins, directions = camera_rays(camera, pixels)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(3, 32 * 32))
    uv, depth = camera.project(origins + 2.0 * directions)
    torch.testing.assert_close(uv, pixels, atol=1e-3, rtol=0)
    assert bool((depth > 0).all())
    entry, exit_ = ray_box_intersection(origins[0, :1], directions[0, :1], torch.full((1, 3), 10.0), torch.full((1, 3), 11.0))
    assert bool(exit_ <= entry)


def test_samples_lie_in_the_band_and_rays_missing_it_get_none(posed_bodies):
    body = posed_bodies.index(0)
    band = 0.05
    grid = SurfaceProximityGrid(body.vertices, band=band, cell_size=0.025)
    centre = body.vertices[0].mean(dim=0)
    origin = centre + torch.tensor([0.0, 0.0, 3.0])
    towards = torch.nn.functional.normalize(centre - origin, dim=0)
    away = -towards
    sideways = torch.nn.functional.normalize(centre + torch.tensor([2.0, 0.0, 0.0]) - origin, dim=0)
    origins = origin.expand(3, 3)
    directions = torch.stack([towards, away, sideways])
    samples = sample_near_surface(origins, directions, torch.zeros(3, dtype=torch.long), grid, probes_per_ray=64,
                                  samples_per_ray=16, window_depth=0.3)
    assert samples.ray_index.tolist() == [0]
    assert samples.points.shape == (1, 16, 3)
    assert bool((samples.depths[:, 1:] >= samples.depths[:, :-1]).all())
    exact = torch.cdist(samples.points[0], body.vertices[0]).amin(dim=-1)
    probe_spacing = float(samples.depths[0, -1] - samples.depths[0, 0])  # generous bound on probe resolution
    assert bool((exact < band + 0.5 * math.sqrt(3) * 0.025 + 0.05).all()), (exact, probe_spacing)
    assert bool((samples.nearest_vertex >= 0).all())
    assert samples.step.item() > 0
    # everything within the window after the first band entry
    assert float(samples.depths[0, -1] - samples.depths[0, 0]) <= 0.3 + 0.1
    jittered = sample_near_surface(origins, directions, torch.zeros(3, dtype=torch.long), grid, probes_per_ray=64,
                                   samples_per_ray=16, window_depth=0.3, jitter=True,
                                   generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(jittered.depths, samples.depths)


# ----------------------------------------------------------------------------------- an arm in front of the torso
# A synthetic scene seen along -z: a "torso" slab of points in the plane z = 0 and a vertical "arm" cylinder of
# radius ARM_RADIUS whose axis lies ARM_Z metres in front of it (towards the camera at z = +3).
ARM_RADIUS = 0.04
ARM_Z = 0.4
BAND = 0.08
CELL = 0.04


def arm_and_torso() -> Tensor:
    """(1, V, 3) points, metres: a 0.5 x 0.7 m slab at z = 0 (1 cm spacing) and the arm cylinder at x = 0, z = ARM_Z."""
    xs, ys = torch.meshgrid(torch.linspace(-0.25, 0.25, 51), torch.linspace(-0.35, 0.35, 71), indexing="ij")
    torso = torch.stack([xs, ys, torch.zeros_like(xs)], dim=-1).reshape(-1, 3)
    angle, height = torch.meshgrid(torch.linspace(0, 2 * math.pi, 33)[:-1], torch.linspace(-0.3, 0.3, 61), indexing="ij")
    arm = torch.stack([ARM_RADIUS * torch.cos(angle), height, ARM_Z + ARM_RADIUS * torch.sin(angle)], dim=-1)
    return torch.cat([torso, arm.reshape(-1, 3)])[None]


def straight_down(xs: list[float]) -> tuple[Tensor, Tensor]:
    """Rays (N, 3) from (x, 0, 3) along -z."""
    origins = torch.tensor([[x, 0.0, 3.0] for x in xs])
    return origins, torch.tensor([[0.0, 0.0, -1.0]]).expand(len(xs), 3)


def near_torso(points: Tensor) -> Tensor:
    return points[..., 2].abs() <= BAND + CELL  # the band around z = 0, plus the grid's slack


def near_arm(points: Tensor) -> Tensor:
    axis_distance = torch.hypot(points[..., 0], points[..., 2] - ARM_Z)
    return axis_distance <= ARM_RADIUS + BAND + CELL



def test_a_ray_grazing_an_arm_also_samples_the_torso_behind_it():
    grid = SurfaceProximityGrid(arm_and_torso(), band=BAND, cell_size=CELL)
    # 10 cm from the arm's axis: 6 cm from its surface, inside its band, but missing the arm itself
    origins, directions = straight_down([0.10])
    batch_index = torch.zeros(1, dtype=torch.long)
    settings = dict(probes_per_ray=64, samples_per_ray=12, window_depth=0.3)
    old = sample_near_surface(origins, directions, batch_index, grid, surface_crossings=1, **settings)
    new = sample_near_surface(origins, directions, batch_index, grid, surface_crossings=2, **settings)
    # the first window covers only the arm's band: the torso, > 0.3 m behind the band entry, is never reached
    assert old.points.shape == (1, 12, 3)
    assert bool(near_arm(old.points).all()) and not bool(near_torso(old.points).any())
    # two windows: samples near both surfaces, within the same budget, in depth order
    assert new.points.shape == (1, 12, 3) and new.ray_index.tolist() == [0]
    assert bool((near_arm(new.points) | near_torso(new.points)).all())
    assert int(near_arm(new.points).sum()) >= 3 and int(near_torso(new.points).sum()) >= 3
    assert bool((new.depths[:, 1:] >= new.depths[:, :-1]).all())
    assert bool((new.nearest_vertex >= 0).all())
    # each sample stands for the kept length / S; more is kept with the torso's band added
    assert float(new.step) > float(old.step) > 0
    jittered = sample_near_surface(origins, directions, batch_index, grid, surface_crossings=2, jitter=True,
                                   generator=torch.Generator().manual_seed(3), **settings)
    assert jittered.points.shape == (1, 12, 3) and int(near_torso(jittered.points).sum()) >= 3


def test_extra_crossings_change_nothing_where_there_is_one_surface():
    grid = SurfaceProximityGrid(arm_and_torso(), band=BAND, cell_size=CELL)
    # rays beside the arm's band (|x| > 0.04 + 0.08 + slack) meet only the torso; one ray misses everything
    origins, directions = straight_down([0.2, -0.22, 0.18, 0.6])
    batch_index = torch.zeros(4, dtype=torch.long)
    settings = dict(probes_per_ray=48, samples_per_ray=8, window_depth=0.3)
    one = sample_near_surface(origins, directions, batch_index, grid, surface_crossings=1, **settings)
    three = sample_near_surface(origins, directions, batch_index, grid, surface_crossings=3, **settings)
    assert one.ray_index.tolist() == three.ray_index.tolist() == [0, 1, 2]
    torch.testing.assert_close(three.depths, one.depths)
    torch.testing.assert_close(three.step, one.step)
    assert bool(near_torso(three.points).all())


def test_a_ray_through_the_arm_keeps_most_samples_at_the_arm():
    grid = SurfaceProximityGrid(arm_and_torso(), band=BAND, cell_size=CELL)
    origins, directions = straight_down([0.0])
    new = sample_near_surface(origins, directions, torch.zeros(1, dtype=torch.long), grid, probes_per_ray=64,
                              samples_per_ray=12, window_depth=0.3, surface_crossings=2)
    # the arm's band is 0.24 m deep along this ray, the torso's 0.16 m: the budget is split by length
    assert new.points.shape == (1, 12, 3)
    assert int(near_arm(new.points).sum()) > int(near_torso(new.points).sum()) >= 1


def test_surface_crossings_is_validated():
    grid = SurfaceProximityGrid(arm_and_torso(), band=BAND, cell_size=CELL)
    origins, directions = straight_down([0.1])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="surface_crossings"):
            sample_near_surface(origins, directions, torch.zeros(1, dtype=torch.long), grid, probes_per_ray=8,
                                samples_per_ray=4, window_depth=0.3, surface_crossings=bad)
