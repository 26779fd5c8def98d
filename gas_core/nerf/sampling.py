"""Rays of target pixels and where to sample them: only in a thin band around the posed body.

:class:`SurfaceProximityGrid` voxelises the band of width ``band`` around each posed body once per
render: every cell whose centre lies within ``band`` (plus half a cell diagonal) of a body vertex
stores the index of its nearest vertex (among the mesh thinned to one vertex per half-cell cube). A query point then costs one lookup: empty cells are empty
space, occupied ones give the vertex whose skinning weights drive inverse LBS.

:func:`sample_near_surface` walks each ray through the body's dilated box with cheap *probes*
(grid lookups, no network) and keeps the probe intervals inside the band within up to
``surface_crossings`` *depth windows*, each ``window_depth`` metres long: the first window starts
where the ray first enters the band, each further one at the first band interval past the end of
the previous window. ``samples_per_ray`` samples are spread over exactly the kept intervals (inverse
CDF of a piecewise-constant density), so the per-ray cost does not depend on ``surface_crossings``.
With one window (``surface_crossings=1``, the behaviour before the option existed) a ray that
grazes the band of an arm in front of the torso spends every sample in the empty space around the
arm and never reaches the torso: a zero-opacity hole. A second window gives such rays samples at
the torso too. Rays that never enter the band get no samples, and so zero opacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gas_core.nerf.types import CameraBatch

__all__ = ["SurfaceProximityGrid", "RaySamples", "pixel_centers", "camera_rays", "ray_box_intersection",
           "sample_near_surface"]

_SQUARED_DISTANCE_QUANTUM = 1e-8  # square metres; squared distances are quantised to pick the nearest vertex


class SurfaceProximityGrid:
    """Nearest-vertex lookup in a band around B posed meshes (one voxel grid per body, shared size).

    Args:
        vertices: (B, V, 3) posed vertices, metres.
        band: half-width of the band around the vertices, metres (> 0).
        cell_size: voxel edge, metres (> 0).
    """

    def __init__(self, vertices: Tensor, *, band: float, cell_size: float) -> None:
        if vertices.ndim != 3 or vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be (B, V, 3), got {tuple(vertices.shape)}")
        if band <= 0:
            raise ValueError(f"band must be positive, got {band}")
        if cell_size <= 0:
            raise ValueError(f"cell_size must be positive, got {cell_size}")
        vertices = vertices.detach().float()
        self.band = float(band)
        self.cell_size = float(cell_size)
        self.vertices = vertices
        batch, num_vertices, _ = vertices.shape
        device = vertices.device
        reach = band + 0.5 * math.sqrt(3.0) * cell_size  # a cell is kept if any of its points may be within band
        radius = math.ceil(reach / cell_size)
        self.box_min = vertices.amin(dim=1) - band  # (B, 3)
        self.box_max = vertices.amax(dim=1) + band
        self.origin = vertices.amin(dim=1) - (radius + 1) * cell_size  # padded: stencils never leave the grid
        extent = (vertices.amax(dim=1) - vertices.amin(dim=1)).amax(dim=0) + 2 * (radius + 1) * cell_size
        self.dims = tuple(int(d) for d in torch.ceil(extent / cell_size).long().tolist())
        steps = torch.arange(-radius, radius + 1, device=device)
        offsets = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=-1).reshape(-1, 3)
        # keep the offsets whose cell centre can be within reach of some point of the home cell
        nearest_gap = (offsets.abs().float() - 0.5).clamp_min(0.0) * cell_size
        offsets = offsets[nearest_gap.norm(dim=-1) <= reach]
        dims = self.dims
        offset_flat = (offsets[:, 0] * dims[1] + offsets[:, 1]) * dims[2] + offsets[:, 2]  # (O,)
        offset_metres = offsets.float() * cell_size  # (O, 3)
        stride = num_vertices + 1
        sentinel = torch.iinfo(torch.long).max
        keys = torch.full((batch, dims[0] * dims[1] * dims[2]), sentinel, dtype=torch.long, device=device)
        for b in range(batch):  # one body at a time bounds the temporary memory
            index = self._representatives(vertices[b], 0.5 * cell_size)
            points = vertices[b, index]
            home = torch.floor((points - self.origin[b]) / cell_size).long()  # (K, 3)
            to_centre = self.origin[b] + (home.float() + 0.5) * cell_size - points  # (K, 3)
            # |offset + to_centre|^2 without (K, O, 3) temporaries
            squared = ((offset_metres ** 2).sum(-1)[None] + 2.0 * to_centre @ offset_metres.T
                       + (to_centre ** 2).sum(-1, keepdim=True))  # (K, O)
            keep = squared <= reach * reach
            home_flat = (home[:, 0] * dims[1] + home[:, 1]) * dims[2] + home[:, 2]
            flat = (home_flat[:, None] + offset_flat[None])[keep]
            key = torch.round(squared.clamp_min(0.0) / _SQUARED_DISTANCE_QUANTUM).long() * stride + index[:, None]
            keys[b].scatter_reduce_(0, flat, key[keep], reduce="amin")
        empty = keys == sentinel
        self.nearest_vertex = torch.where(empty, torch.full_like(keys, -1), keys % stride).reshape(batch, *self.dims)

    @staticmethod
    def _representatives(vertices: Tensor, voxel: float) -> Tensor:
        """Indices (K,) of one vertex per occupied ``voxel``-sized cube of ``vertices`` (V, 3): a thinned mesh."""
        cube = torch.floor((vertices - vertices.amin(dim=0)) / voxel).long()
        size = cube.amax(dim=0) + 1
        flat = (cube[:, 0] * size[1] + cube[:, 1]) * size[2] + cube[:, 2]
        first = torch.full((int(size.prod()),), vertices.shape[0], dtype=torch.long, device=vertices.device)
        first.scatter_reduce_(0, flat, torch.arange(vertices.shape[0], device=vertices.device), reduce="amin")
        return first[first < vertices.shape[0]]

    @property
    def batch_size(self) -> int:
        return int(self.vertices.shape[0])

    def lookup(self, points: Tensor, batch_index: Tensor) -> Tensor:
        """Nearest-vertex index (M,) long of points (M, 3) of bodies ``batch_index`` (M,); -1 outside the band."""
        cell = torch.floor((points.float() - self.origin[batch_index]) / self.cell_size).long()
        dims = torch.tensor(self.dims, device=points.device)
        inside = ((cell >= 0) & (cell < dims)).all(dim=-1)
        cell = torch.minimum(cell.clamp_min(0), dims - 1)
        found = self.nearest_vertex[batch_index, cell[:, 0], cell[:, 1], cell[:, 2]]
        return torch.where(inside, found, torch.full_like(found, -1))

    def distance(self, points: Tensor, batch_index: Tensor) -> Tensor:
        """Distance (M,) metres from points (M, 3) to their cell's nearest vertex; inf outside the band."""
        index = self.lookup(points, batch_index)
        vertex = self.vertices[batch_index, index.clamp_min(0)]
        distance = (points.float() - vertex).norm(dim=-1)
        return torch.where(index >= 0, distance, torch.full_like(distance, math.inf))


@dataclass
class RaySamples:
    """Samples of the rays that enter the band (R of the input rays, S samples each).

    Attributes:
        ray_index: (R,) long index of each sampled ray in the flattened input rays.
        batch_index: (R,) long body/camera index of each sampled ray.
        depths: (R, S) distance along the (unit) ray direction, metres, increasing.
        step: (R,) ray length each sample stands for, metres (occupied length / S).
        points: (R, S, 3) world positions, metres.
        nearest_vertex: (R, S) long nearest posed vertex of each sample (a sample whose own cell lies just
            outside the band takes the vertex of its occupied probe interval, so it is never -1).
    """

    ray_index: Tensor
    batch_index: Tensor
    depths: Tensor
    step: Tensor
    points: Tensor
    nearest_vertex: Tensor

    @property
    def num_rays(self) -> int:
        return int(self.ray_index.shape[0])


def pixel_centers(width: int, height: int, *, device: torch.device | str | None = None) -> Tensor:
    """(H * W, 2) pixel-centre coordinates (u, v) in row-major order, pixels."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                          torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([u, v], dim=-1).reshape(-1, 2) + 0.5


def camera_rays(camera: CameraBatch, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """World rays through pixel coordinates (B, N, 2): origins (B, N, 3) metres and unit directions (B, N, 3)."""
    if pixels.ndim != 3 or pixels.shape[0] != camera.batch_size or pixels.shape[-1] != 2:
        raise ValueError(f"pixels must be ({camera.batch_size}, N, 2), got {tuple(pixels.shape)}")
    homogeneous = torch.cat([pixels, torch.ones_like(pixels[..., :1])], dim=-1)
    directions_camera = torch.einsum("bij,bnj->bni", torch.linalg.inv(camera.K.float()), homogeneous.float())
    directions = torch.einsum("bji,bnj->bni", camera.R.float(), directions_camera)  # R^T d
    directions = torch.nn.functional.normalize(directions, dim=-1)
    origins = camera.centers.float()[:, None, :].expand_as(directions)
    return origins, directions


def ray_box_intersection(origins: Tensor, directions: Tensor, box_min: Tensor, box_max: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit distances (M,) of rays (M, 3) with axis-aligned boxes (M, 3); exit <= entry means a miss."""
    inverse = 1.0 / torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    first = (box_min - origins) * inverse
    second = (box_max - origins) * inverse
    entry = torch.minimum(first, second).amax(dim=-1).clamp_min(0.0)
    exit_ = torch.maximum(first, second).amin(dim=-1)
    return entry, exit_


def sample_near_surface(origins: Tensor, directions: Tensor, batch_index: Tensor, grid: SurfaceProximityGrid, *,
                        probes_per_ray: int, samples_per_ray: int, window_depth: float, surface_crossings: int = 2,
                        jitter: bool = False, generator: torch.Generator | None = None) -> RaySamples:
    """Samples in the band around the posed body along rays of bodies ``batch_index`` (M,) long.

    Args:
        origins: (M, 3) ray origins, metres.
        directions: (M, 3) unit ray directions.
        batch_index: (M,) long body of each ray in ``grid``.
        grid: the bodies' :class:`SurfaceProximityGrid`.
        probes_per_ray: equal probe intervals between the ray's entry and exit of the body's dilated
            box; an interval is occupied when its midpoint's cell is in the band.
        samples_per_ray: samples per ray that enters the band (the network queries it costs).
        window_depth: length of one depth window along the ray, metres (> 0).
        surface_crossings: how many depth windows a ray may open (>= 1). Window 1 starts at the
            first occupied interval; window k + 1 at the first occupied interval that starts more
            than ``window_depth`` past the start of window k. Occupied intervals that start inside a
            window are kept; the rest are skipped. ``1`` keeps only the first window (the sampler's
            behaviour before this option); ``2`` (default) also reaches a surface behind a grazed
            limb, e.g. the torso behind an arm whose band the ray only brushes.
        jitter: random positions within each stratum (training) instead of stratum centres.
        generator: random generator of the jitter.

    Returns:
        :class:`RaySamples` of the R rays that enter the band: ``samples_per_ray`` samples each,
        spread uniformly over the total length of the kept intervals (stratified), depths increasing.

    Windows rather than runs of consecutive occupied probes: a ray that grazes a band at a shallow
    angle often leaves and re-enters it within a few centimetres (its probes flicker between occupied
    and empty); counting each such run as a crossing would spend the second crossing on the same limb.
    A window swallows every run that starts within ``window_depth``, so a new window opens only for a
    surface that lies deeper than that, and ``surface_crossings=1`` reproduces the old rule exactly.
    """
    if probes_per_ray < 1 or samples_per_ray < 1:
        raise ValueError(f"probes_per_ray and samples_per_ray must be >= 1, got {probes_per_ray}, {samples_per_ray}")
    if window_depth <= 0:
        raise ValueError(f"window_depth must be positive, got {window_depth}")
    if isinstance(surface_crossings, bool) or int(surface_crossings) != surface_crossings or surface_crossings < 1:
        raise ValueError(f"surface_crossings must be an integer >= 1, got {surface_crossings!r}")
    device = origins.device
    entry, exit_ = ray_box_intersection(origins, directions, grid.box_min[batch_index], grid.box_max[batch_index])
    candidates = torch.nonzero(exit_ > entry).squeeze(-1)
    entry, exit_ = entry[candidates], exit_[candidates]
    origins, directions, rays_batch = origins[candidates], directions[candidates], batch_index[candidates]
    width = (exit_ - entry) / probes_per_ray  # (C,)
    probe_depths = entry[:, None] + (torch.arange(probes_per_ray, device=device) + 0.5) * width[:, None]
    probe_points = origins[:, None] + probe_depths[..., None] * directions[:, None]
    count = candidates.shape[0]
    occupied = grid.lookup(probe_points.reshape(-1, 3), rays_batch.repeat_interleave(probes_per_ray))
    occupied = (occupied >= 0).reshape(count, probes_per_ray)
    hit = occupied.any(dim=-1)
    starts = torch.arange(probes_per_ray, device=device)[None].float() * width[:, None]  # (C, P) from the entry
    remaining = occupied  # occupied probes past every window opened so far
    kept = torch.zeros_like(occupied)
    for _ in range(int(surface_crossings)):
        first = torch.argmax(remaining.int(), dim=-1)  # the window's first probe (0 when none is left: no-op)
        inside = starts <= first[:, None].float() * width[:, None] + window_depth
        kept |= remaining & inside
        remaining = remaining & ~inside
    occupied = kept
    keep = torch.nonzero(hit).squeeze(-1)
    occupied, width, entry = occupied[keep], width[keep], entry[keep]
    origins, directions, rays_batch = origins[keep], directions[keep], rays_batch[keep]
    cumulative = torch.cumsum(occupied.float(), dim=-1)  # occupied intervals up to and including each probe
    total = cumulative[:, -1]  # (R,) number of occupied intervals
    strata = torch.arange(samples_per_ray, device=device).float()
    if jitter:
        offsets = torch.rand(keep.shape[0], samples_per_ray, device=device, generator=generator)
        offsets = offsets.clamp(1e-4, 1.0 - 1e-4)
    else:
        offsets = torch.full((keep.shape[0], samples_per_ray), 0.5, device=device)
    position = (strata + offsets) / samples_per_ray * total[:, None]  # in units of occupied intervals, (0, total)
    interval = torch.searchsorted(cumulative.contiguous(), position.contiguous(), right=False).clamp_max(probes_per_ray - 1)
    within = position - (torch.gather(cumulative, 1, interval) - 1.0)  # fraction inside the chosen interval
    depths = entry[:, None] + (interval.float() + within.clamp(0.0, 1.0)) * width[:, None]
    points = origins[:, None] + depths[..., None] * directions[:, None]
    nearest = grid.lookup(points.reshape(-1, 3), rays_batch.repeat_interleave(samples_per_ray)).reshape(-1, samples_per_ray)
    if bool((nearest < 0).any()):  # a sample past its interval's band edge: use the probe's vertex
        probe_vertex = grid.lookup(probe_points[keep].reshape(-1, 3), rays_batch.repeat_interleave(probes_per_ray))
        probe_vertex = probe_vertex.reshape(-1, probes_per_ray)
        nearest = torch.where(nearest >= 0, nearest, torch.gather(probe_vertex, 1, interval))
    return RaySamples(ray_index=candidates[keep], batch_index=rays_batch, depths=depths,
                      step=total * width / samples_per_ray, points=points, nearest_vertex=nearest)
