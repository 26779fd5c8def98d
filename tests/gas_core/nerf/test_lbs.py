"""Inverse LBS: posed <-> canonical round trips, canonical vertices, normals."""

from __future__ import annotations

import torch

from gas_core.body.smpl import SMPLParams
from gas_core.nerf.lbs import (
    apply_affine,
    blend_transforms,
    canonical_vertices,
    forward_lbs,
    invert_affine,
    inverse_lbs,
    vertex_normals,
    vertex_transforms,
)
from gas_core.nerf.sampling import SurfaceProximityGrid
from gas_core.nerf.types import PosedBody

from .conftest import random_params


def test_inverse_lbs_round_trips_posed_points(posed_bodies):
    generator = torch.Generator().manual_seed(0)
    points = posed_bodies.vertices[:, :500] + 0.03 * torch.randn(2, 500, 3, generator=generator)
    weights = torch.softmax(3.0 * torch.randn(2, 500, 24, generator=generator), dim=-1)
    canonical = inverse_lbs(points, weights, posed_bodies.joint_transforms)
    assert not torch.allclose(canonical, points, atol=1e-2)  # the pose really moves points
    back = forward_lbs(canonical, weights, posed_bodies.joint_transforms)
    torch.testing.assert_close(back, points, atol=1e-5, rtol=0)


def test_canonical_vertices_are_the_shaped_rest_body(body_model):
    params = random_params(2, seed=5)
    output = body_model(params)
    body = PosedBody.from_body_model(body_model, params)
    torch.testing.assert_close(canonical_vertices(body), output.rest_vertices, atol=1e-4, rtol=0)
    # rest pose, no scale or translation: canonical space is the world itself
    rest = PosedBody.from_body_model(body_model, SMPLParams.zeros(1))
    torch.testing.assert_close(canonical_vertices(rest), rest.vertices, atol=1e-5, rtol=0)


def test_nearest_vertex_weights_map_posed_points_close_to_their_rest_position(body_model, posed_bodies):
    """The render path: a posed point near the surface takes its grid cell's vertex and lands near its rest point."""
    output = body_model(random_params(2, seed=3))
    grid = SurfaceProximityGrid(posed_bodies.vertices, band=0.05, cell_size=0.02)
    batch_index = torch.arange(2).repeat_interleave(posed_bodies.vertices.shape[1])
    nearest = grid.lookup(posed_bodies.vertices.reshape(-1, 3), batch_index).view(2, -1)
    assert bool((nearest >= 0).all())
    to_rest = invert_affine(vertex_transforms(posed_bodies))
    chosen = torch.stack([to_rest[b, nearest[b]] for b in range(2)])
    canonical = apply_affine(chosen, posed_bodies.vertices)
    error = (canonical - output.rest_vertices).norm(dim=-1)
    assert error.median() < 0.01 and torch.quantile(error, 0.95) < 0.05
    # the per-vertex transforms are the blended ones
    weights = torch.stack([posed_bodies.skinning_weights[nearest[b]] for b in range(2)])
    direct = inverse_lbs(posed_bodies.vertices, weights, posed_bodies.joint_transforms)
    torch.testing.assert_close(direct, canonical, atol=1e-4, rtol=0)
    assert blend_transforms(weights, posed_bodies.joint_transforms).shape == (2, weights.shape[1], 3, 4)


def test_vertex_normals_point_outwards(body_model):
    rest = PosedBody.from_body_model(body_model, SMPLParams.zeros(1))
    normals = vertex_normals(rest.vertices, rest.faces)
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(1, rest.vertices.shape[1]), atol=1e-4, rtol=0)
    centre = rest.vertices.mean(dim=1, keepdim=True)
    torso = (rest.vertices[..., 1] > centre[..., 1] - 0.1) & (rest.vertices[..., 1] < centre[..., 1] + 0.2) & \
            (rest.vertices[..., 0].abs() < 0.1)
    outward = ((rest.vertices - centre) * normals).sum(-1)[torso]
    assert (outward > 0).float().mean() > 0.9
