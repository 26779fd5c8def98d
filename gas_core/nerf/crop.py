"""Zooming the reference view onto its subject before it is encoded (``reference_crop``).

A person who covers a few percent of the reference image reaches the image encoder as a few feature
cells, and the network, trained on people who fill most of the frame, sees a scale it never learned.
:func:`crop_reference` resamples each reference to a window around its subject (the box of the mask
and of the projected body, padded) at the reference's own pixel size, and moves the camera's
intrinsics with it, so a small and a large person reach the network at about the same size. It is
applied inside :meth:`gas_core.nerf.GeneralizableHumanNeRF.encode_reference`, so training, bake and
evaluation all see the same crop.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from gas_core.nerf.types import CameraBatch, ReferenceView

__all__ = ["subject_window", "crop_reference"]


def subject_window(mask: Tensor, uv: Tensor | None, width: int, height: int, *,
                   padding: float) -> Tensor:
    """The crop window (B, 4) = (x0, y0, x1, y1) in pixels around each subject.

    Args:
        mask: (B, 1, H, W) foreground in [0, 1]; pixels above 0.5 are the subject.
        uv: (B, V, 2) projected body vertices in pixels (points outside the image are ignored), or None.
        width, height: the image size in pixels (``W``, ``H``).
        padding: the margin added on every side, as a fraction of the box's longer side (in units of
            the window's aspect, which is the image's).
    Returns:
        (B, 4) float windows with the image's aspect ratio, centred on the subject's box; a subject
        with neither a mask pixel nor a projected vertex in the image gets the whole image.
    """
    if not math.isfinite(float(padding)) or padding < 0:
        raise ValueError(f"padding must be a finite number >= 0, got {padding}")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != (height, width):
        raise ValueError(f"mask must have shape (B, 1, {height}, {width}), got {tuple(mask.shape)}")
    batch = mask.shape[0]
    device = mask.device
    windows = torch.tensor([[0.0, 0.0, float(width), float(height)]], device=device).repeat(batch, 1)
    columns = torch.arange(width, device=device, dtype=torch.float32)
    rows = torch.arange(height, device=device, dtype=torch.float32)
    aspect = width / height
    for b in range(batch):
        inside = mask[b, 0] > 0.5
        lows, highs = [], []
        if bool(inside.any()):
            xs, ys = columns[inside.any(dim=0)], rows[inside.any(dim=1)]
            lows.append(torch.stack([xs.min(), ys.min()]))
            highs.append(torch.stack([xs.max() + 1.0, ys.max() + 1.0]))
        if uv is not None:
            points = uv[b].float()
            seen = ((points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) & (points[:, 1] <= height)
                    & torch.isfinite(points).all(dim=-1))
            if bool(seen.any()):
                lows.append(points[seen].amin(dim=0))
                highs.append(points[seen].amax(dim=0))
        if not lows:
            continue
        low = torch.stack(lows).amin(dim=0)
        high = torch.stack(highs).amax(dim=0)
        centre = 0.5 * (low + high)
        box_width = torch.maximum(high[0] - low[0], (high[1] - low[1]) * aspect).clamp_min(1.0)
        half_width = 0.5 * box_width * (1.0 + 2.0 * padding)
        half_height = half_width / aspect
        windows[b] = torch.stack([centre[0] - half_width, centre[1] - half_height,
                                  centre[0] + half_width, centre[1] + half_height])
    return windows


def crop_reference(reference: ReferenceView, *, padding: float) -> ReferenceView:
    """``reference`` zoomed onto its subject, at the same pixel size (H, W) and with matching cameras.

    Each view is resampled (bilinear; antialiased first where the window is larger than the image) to
    the :func:`subject_window` of its mask and projected body, ``padding`` (a fraction of the box's
    longer side) around it; pixels of the window outside the original image are black and unmasked.
    The camera's intrinsics ``K`` (pixels) follow exactly: a world point that projected to pixel
    ``u`` projects to ``(u - x0) * W / (x1 - x0)`` (likewise ``v``), so the returned view sees the same
    scene; ``R``, ``t`` and the body are unchanged.

    Args:
        reference: B reference views, image (B, 3, H, W) in [0, 1], mask (B, 1, H, W).
        padding: >= 0.
    Returns:
        a :class:`ReferenceView` with image (B, 3, H, W), mask (B, 1, H, W) and the cropped cameras.
    """
    if not isinstance(reference, ReferenceView):
        raise ValueError(f"reference must be a ReferenceView, got {type(reference).__name__}")
    camera = reference.camera
    width, height = camera.width, camera.height
    with torch.no_grad():
        uv, depth = camera.project(reference.body.vertices.to(camera.K))
        uv = torch.where((depth > 1e-3)[..., None], uv, torch.full_like(uv, math.nan))
        windows = subject_window(reference.mask, uv, width, height, padding=padding)
    images, masks = [], []
    pixels_x = torch.arange(width, device=windows.device, dtype=torch.float32) + 0.5
    pixels_y = torch.arange(height, device=windows.device, dtype=torch.float32) + 0.5
    for b in range(reference.batch_size):
        x0, y0, x1, y1 = windows[b]
        zoom = float(width / (x1 - x0))  # output pixels per input pixel
        source = torch.cat([reference.image[b:b + 1].float(), reference.mask[b:b + 1].float()], dim=1)
        if zoom < 1.0:  # the window is larger than the image: low-pass before resampling
            source = F.interpolate(source, scale_factor=zoom, mode="bilinear", antialias=True, align_corners=False)
        # output pixel centre i + 0.5 samples the source at x0 + (i + 0.5) / zoom (grid_sample's [-1, 1] is
        # the source's full extent with align_corners=False, whatever its resolution)
        source_x = x0 + pixels_x * (x1 - x0) / width
        source_y = y0 + pixels_y * (y1 - y0) / height
        grid = torch.stack(torch.meshgrid(2.0 * source_y / height - 1.0, 2.0 * source_x / width - 1.0,
                                          indexing="ij")[::-1], dim=-1)[None]  # (1, H, W, 2) as (x, y)
        sampled = F.grid_sample(source, grid.to(source.dtype), mode="bilinear", padding_mode="zeros",
                                align_corners=False)
        images.append(sampled[:, :3].clamp(0.0, 1.0))
        masks.append(sampled[:, 3:].clamp(0.0, 1.0))
    K = camera.K.clone()
    scale_x = width / (windows[:, 2] - windows[:, 0])
    scale_y = height / (windows[:, 3] - windows[:, 1])
    K[:, 0] = (camera.K[:, 0] - windows[:, 0, None] * camera.K[:, 2]) * scale_x[:, None]
    K[:, 1] = (camera.K[:, 1] - windows[:, 1, None] * camera.K[:, 2]) * scale_y[:, None]
    cropped = CameraBatch(K=K, R=camera.R, t=camera.t, width=width, height=height)
    return ReferenceView(image=torch.cat(images).to(reference.image.dtype),
                         mask=torch.cat(masks).to(reference.mask.dtype), camera=cropped, body=reference.body)
