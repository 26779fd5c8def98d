"""Proximity grid, camera rays and near-surface sampling."""

from __future__ import annotations

import math

import pytest
import torch

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
