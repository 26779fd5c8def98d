"""Linear blend skinning between posed (world) space and the canonical space of the shaped rest body.

A posed body's joint transforms ``G_j`` (B, 24, 4, 4) map the shaped rest body to the world
(:class:`gas_core.body.smpl.BodyOutput`), so a point with skinning weights ``w`` moves as
``x_world = (sum_j w_j G_j) [x_rest; 1]``. Inverse LBS solves the same blended affine map for
``x_rest``. Canonical space here is the rest pose (zero pose) of the subject's own shape, with the
body model's scale and translation removed. A sample point borrows the weights of its nearest body
vertex, so the blended transforms are computed once per vertex (:func:`vertex_transforms`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gas_core.nerf.types import PosedBody

__all__ = ["blend_transforms", "vertex_transforms", "invert_affine", "apply_affine", "forward_lbs", "inverse_lbs",
           "canonical_vertices", "vertex_normals"]


def _check_points(name: str, points: Tensor) -> None:
    if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name} must be a (B, N, 3) tensor, got {getattr(points, 'shape', type(points).__name__)}")


def blend_transforms(weights: Tensor, joint_transforms: Tensor) -> Tensor:
    """Blended affine transforms ``sum_j w_j G_j[:3]``.

    Args:
        weights: (B, N, J) or (N, J) skinning weights (rows summing to 1).
        joint_transforms: (B, J, 4, 4) rest-to-world joint transforms.
    Returns:
        (B, N, 3, 4) affine maps rest -> world (metres).
    """
    if joint_transforms.ndim != 4 or joint_transforms.shape[-2:] != (4, 4):
        raise ValueError(f"joint_transforms must be (B, J, 4, 4), got {tuple(joint_transforms.shape)}")
    if weights.ndim == 2:
        return torch.einsum("nj,bjxy->bnxy", weights, joint_transforms[:, :, :3, :])
    if weights.ndim != 3 or weights.shape[0] != joint_transforms.shape[0] or weights.shape[-1] != joint_transforms.shape[1]:
        raise ValueError(f"weights must be (B, N, {joint_transforms.shape[1]}) or (N, J), got {tuple(weights.shape)}")
    return torch.einsum("bnj,bjxy->bnxy", weights, joint_transforms[:, :, :3, :])


def vertex_transforms(body: PosedBody) -> Tensor:
    """(B, V, 3, 4) blended rest -> world transform of every vertex of ``body``."""
    return blend_transforms(body.skinning_weights, body.joint_transforms)


def invert_affine(transforms: Tensor) -> Tensor:
    """Inverse of affine maps (..., 3, 4) (``[A | b]`` -> ``[A^-1 | -A^-1 b]``), computed in float32 or wider."""
    if transforms.shape[-2:] != (3, 4):
        raise ValueError(f"transforms must end in (3, 4), got {tuple(transforms.shape)}")
    dtype = torch.promote_types(transforms.dtype, torch.float32)
    linear = transforms[..., :3].to(dtype)
    inverse = torch.linalg.inv(linear)
    offset = -torch.einsum("...ij,...j->...i", inverse, transforms[..., 3].to(dtype))
    return torch.cat([inverse, offset[..., None]], dim=-1).to(transforms.dtype)


def apply_affine(transforms: Tensor, points: Tensor) -> Tensor:
    """Apply affine maps (..., 3, 4) to points (..., 3) (matching leading dimensions)."""
    return torch.einsum("...ij,...j->...i", transforms[..., :3], points) + transforms[..., 3]


def forward_lbs(points: Tensor, weights: Tensor, joint_transforms: Tensor) -> Tensor:
    """Canonical points (B, N, 3) with weights (B, N, J) -> posed world points (B, N, 3), metres."""
    _check_points("points", points)
    return apply_affine(blend_transforms(weights, joint_transforms), points)


def inverse_lbs(points: Tensor, weights: Tensor, joint_transforms: Tensor) -> Tensor:
    """Posed world points (B, N, 3) with weights (B, N, J) -> canonical points (B, N, 3), metres.

    Exact inverse of :func:`forward_lbs` for the same weights (the blended map is solved, not
    approximated by blending inverses).
    """
    _check_points("points", points)
    return apply_affine(invert_affine(blend_transforms(weights, joint_transforms)), points)


def canonical_vertices(body: PosedBody) -> Tensor:
    """(B, V, 3) the body's vertices in canonical space (its shaped rest pose, scale and translation removed)."""
    return apply_affine(invert_affine(vertex_transforms(body)), body.vertices)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (B, V, 3) of meshes ``vertices`` (B, V, 3), ``faces`` (F, 3)."""
    _check_points("vertices", vertices)
    corners = vertices[:, faces]  # (B, F, 3, 3)
    face_normals = torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(1, faces[:, corner], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
