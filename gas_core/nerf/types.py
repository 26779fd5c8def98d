"""Batched inputs and outputs of the generalizable human NeRF: cameras, posed bodies, the reference view, renders.

All tensors of one object share a device; geometry is kept in float32 (see :meth:`CameraBatch.to`).
Conventions are the project's (:mod:`gas_core.cameras`): OpenCV cameras, world-to-camera ``R``, ``t``
in metres, ``K`` in pixels with (0, 0) at the top-left corner of the top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import Camera

__all__ = ["CameraBatch", "PosedBody", "ReferenceView", "NeRFRender"]


def _check_shape(name: str, value: Tensor, shape: tuple[int | None, ...]) -> None:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(value.shape)}")


@dataclass(frozen=True)
class CameraBatch:
    """B pinhole cameras sharing one image size.

    Attributes:
        K: (B, 3, 3) intrinsics, pixels.
        R: (B, 3, 3) world-to-camera rotations.
        t: (B, 3) world-to-camera translations, metres.
        width, height: image size in pixels.
    """

    K: Tensor
    R: Tensor
    t: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        _check_shape("K", self.K, (None, 3, 3))
        batch = self.K.shape[0]
        _check_shape("R", self.R, (batch, 3, 3))
        _check_shape("t", self.t, (batch, 3))
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"width and height must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def batch_size(self) -> int:
        return int(self.K.shape[0])

    @property
    def centers(self) -> Tensor:
        """(B, 3) camera centres in world coordinates, metres."""
        return -torch.einsum("bji,bj->bi", self.R, self.t)

    @classmethod
    def from_cameras(cls, cameras: Sequence[Camera], *, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> "CameraBatch":
        """Stack :class:`gas_core.cameras.Camera` objects of one image size."""
        cameras = list(cameras)
        if not cameras:
            raise ValueError("cameras must not be empty")
        sizes = {(camera.width, camera.height) for camera in cameras}
        if len(sizes) != 1:
            raise ValueError(f"cameras must share one image size, got {sorted(sizes)}")
        width, height = sizes.pop()

        def stack(name: str) -> Tensor:
            return torch.as_tensor(np.stack([getattr(camera, name) for camera in cameras]), dtype=dtype, device=device)

        return cls(K=stack("K"), R=stack("R"), t=stack("t"), width=width, height=height)

    def to_cameras(self) -> list[Camera]:
        """The inverse of :meth:`from_cameras` (numpy float64 cameras)."""
        return [Camera(K=self.K[i].detach().cpu().double().numpy(), R=self.R[i].detach().cpu().double().numpy(),
                       t=self.t[i].detach().cpu().double().numpy(), width=self.width, height=self.height)
                for i in range(self.batch_size)]

    def scaled(self, factor: float) -> "CameraBatch":
        """The same cameras for images resized by ``factor`` (e.g. 0.25 for 512 -> 128 pixels)."""
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        K = self.K.clone()
        K[:, :2] *= factor
        return CameraBatch(K=K, R=self.R, t=self.t, width=round(self.width * factor), height=round(self.height * factor))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "CameraBatch":
        return CameraBatch(K=self.K.to(device=device, dtype=dtype), R=self.R.to(device=device, dtype=dtype),
                           t=self.t.to(device=device, dtype=dtype), width=self.width, height=self.height)

    def index(self, rows: Tensor | slice | int) -> "CameraBatch":
        """The cameras at ``rows`` (an int keeps a batch of one)."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1)
        return CameraBatch(K=self.K[rows], R=self.R[rows], t=self.t[rows], width=self.width, height=self.height)

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points (B, N, 3) metres -> pixel coordinates (B, N, 2) and camera depth z (B, N) metres."""
        _check_shape("points", points, (self.batch_size, None, 3))
        camera_points = torch.einsum("bij,bnj->bni", self.R, points) + self.t[:, None]
        depth = camera_points[..., 2]
        pixels = torch.einsum("bij,bnj->bni", self.K, camera_points)
        uv = pixels[..., :2] / depth.clamp_min(1e-6)[..., None]
        return uv, depth


@dataclass(frozen=True)
class PosedBody:
    """B posed bodies of one body model (one topology).

    Attributes:
        vertices: (B, V, 3) posed vertices, world metres.
        joint_transforms: (B, 24, 4, 4) per-joint transforms mapping the shaped rest body to the world
            (:attr:`gas_core.body.smpl.BodyOutput.joint_transforms`, scale and translation included).
        faces: (F, 3) long triangle indices.
        skinning_weights: (V, 24) linear-blend-skinning weights.
    """

    vertices: Tensor
    joint_transforms: Tensor
    faces: Tensor
    skinning_weights: Tensor

    def __post_init__(self) -> None:
        _check_shape("vertices", self.vertices, (None, None, 3))
        batch, num_vertices = self.vertices.shape[:2]
        _check_shape("joint_transforms", self.joint_transforms, (batch, None, 4, 4))
        _check_shape("faces", self.faces, (None, 3))
        _check_shape("skinning_weights", self.skinning_weights, (num_vertices, self.joint_transforms.shape[1]))
        if self.faces.dtype != torch.long:
            raise ValueError(f"faces must be a long tensor, got {self.faces.dtype}")

    @property
    def batch_size(self) -> int:
        return int(self.vertices.shape[0])

    @classmethod
    def from_body_model(cls, body_model: BodyModel, params: SMPLParams) -> "PosedBody":
        """Pose ``body_model`` with ``params`` (batch B); tensors on the body model's device."""
        if not isinstance(body_model, BodyModel):
            raise ValueError(f"body_model must be a BodyModel, got {type(body_model).__name__}")
        with torch.no_grad():
            output = body_model(params)
        return cls(vertices=output.vertices, joint_transforms=output.joint_transforms,
                   faces=body_model.faces.long(), skinning_weights=body_model.skinning_weights)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "PosedBody":
        return PosedBody(vertices=self.vertices.to(device=device, dtype=dtype),
                         joint_transforms=self.joint_transforms.to(device=device, dtype=dtype),
                         faces=self.faces.to(device=device),
                         skinning_weights=self.skinning_weights.to(device=device, dtype=dtype))

    def index(self, rows: Tensor | slice | int) -> "PosedBody":
        """The bodies at ``rows`` (an int keeps a batch of one)."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1)
        return PosedBody(vertices=self.vertices[rows], joint_transforms=self.joint_transforms[rows],
                         faces=self.faces, skinning_weights=self.skinning_weights)


@dataclass(frozen=True)
class ReferenceView:
    """The single observed image of each subject.

    Attributes:
        image: (B, 3, H, W) RGB in [0, 1].
        mask: (B, 1, H, W) foreground in [0, 1].
        camera: its cameras, ``width == W`` and ``height == H``.
        body: the bodies posed as in the image.
    """

    image: Tensor
    mask: Tensor
    camera: CameraBatch
    body: PosedBody

    def __post_init__(self) -> None:
        _check_shape("image", self.image, (None, 3, None, None))
        batch, _, height, width = self.image.shape
        _check_shape("mask", self.mask, (batch, 1, height, width))
        if not isinstance(self.camera, CameraBatch) or self.camera.batch_size != batch:
            raise ValueError(f"camera must be a CameraBatch of {batch} cameras")
        if (self.camera.width, self.camera.height) != (width, height):
            raise ValueError(f"camera size {self.camera.width}x{self.camera.height} differs from the image's {width}x{height}")
        if not isinstance(self.body, PosedBody) or self.body.batch_size != batch:
            raise ValueError(f"body must be a PosedBody of {batch} bodies")

    @property
    def batch_size(self) -> int:
        return int(self.image.shape[0])

    def to(self, device: torch.device | str | None = None) -> "ReferenceView":
        return ReferenceView(image=self.image.to(device), mask=self.mask.to(device), camera=self.camera.to(device),
                             body=self.body.to(device))

    def index(self, rows: Tensor | slice | int) -> "ReferenceView":
        if isinstance(rows, int):
            rows = slice(rows, rows + 1)
        return ReferenceView(image=self.image[rows], mask=self.mask[rows], camera=self.camera.index(rows),
                             body=self.body.index(rows))


@dataclass
class NeRFRender:
    """A rendered batch.

    Attributes:
        rgb: (B, 3, H, W) colour in [0, 1] composited on black.
        opacity: (B, 1, H, W) accumulated opacity in [0, 1].
        depth: (B, 1, H, W) expected depth along the camera z axis, metres, normalised by the opacity
            (the depth of the rendered surface); 0 where the opacity is 0.
        mlp_queries: network queries (samples) the render cost.
    """

    rgb: Tensor
    opacity: Tensor
    depth: Tensor
    mlp_queries: int = 0
