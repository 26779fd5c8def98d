"""One step's pieces: the target windows rendered, their pixels and crops, the learning rate, and box metrics."""

from __future__ import annotations

import random

import torch
from torch import Tensor
from torch.nn import functional as F

from gas_core.nerf import CameraBatch, PosedBody
from gas_core.nerf.losses import ssim
from gas_core.nerf.sampling import pixel_centers
from pipelines.train_nerf.config import NeRFOptimConfig


def target_windows(target_camera: CameraBatch, target_body: PosedBody, patch_size: int | None,
                   rng: random.Random) -> tuple[Tensor, int, int]:
    """Pixel windows to render per target: top-left corners (B, 2) (x, y) and the shared window size (h, w).

    The body's box is the projection of its posed vertices, grown by 4% of the image. With
    ``patch_size`` a random square patch overlapping the box; without it the box itself (all boxes
    of the batch padded to the largest, centred, clamped to the image).
    """
    width, height = target_camera.width, target_camera.height
    uv, _ = target_camera.project(target_body.vertices.float())
    margin = 0.04 * max(width, height)
    low = (uv.amin(dim=1) - margin).floor().clamp_min(0)
    high = (uv.amax(dim=1) + margin).ceil()
    high = torch.minimum(high, torch.tensor([width, height], dtype=high.dtype))
    corners = []
    if patch_size is not None:
        size_w, size_h = min(patch_size, width), min(patch_size, height)
        for b in range(target_camera.batch_size):
            x = rng.uniform(float(low[b, 0]) - size_w / 2, float(high[b, 0]) - size_w / 2)
            y = rng.uniform(float(low[b, 1]) - size_h / 2, float(high[b, 1]) - size_h / 2)
            corners.append((min(max(int(x), 0), width - size_w), min(max(int(y), 0), height - size_h)))
        return torch.tensor(corners), size_h, size_w
    size = (high - low).amax(dim=0)
    size_w, size_h = int(min(size[0].item(), width)), int(min(size[1].item(), height))
    for b in range(target_camera.batch_size):
        centre = (low[b] + high[b]) / 2
        x = int(round(float(centre[0]) - size_w / 2))
        y = int(round(float(centre[1]) - size_h / 2))
        corners.append((min(max(x, 0), width - size_w), min(max(y, 0), height - size_h)))
    return torch.tensor(corners), size_h, size_w


def _window_pixels(corners: Tensor, height: int, width: int) -> Tensor:
    """Pixel centres (B, h * w, 2) of windows with top-left ``corners`` (B, 2)."""
    local = pixel_centers(width, height)
    return local[None] + corners[:, None, :].float()


def _crop(images: Tensor, corners: Tensor, height: int, width: int) -> Tensor:
    return torch.stack([images[b, :, y:y + height, x:x + width] for b, (x, y) in enumerate(corners.tolist())])


def box_metrics(rgb: Tensor, opacity: Tensor, target_rgb: Tensor, target_mask: Tensor) -> dict[str, Tensor]:
    """Per-image quality (B,) inside each target's person box (the mask's bounding box), as SHERF reports.

    Args: rendered rgb (B, 3, H, W), opacity (B, 1, H, W); targets masked to black and masks, same sizes.
    Returns ``psnr`` (dB), ``ssim`` in the box, and ``mask_iou`` of opacity > 0.5 against mask > 0.5 (whole image).
    """
    psnr, similarity, iou = [], [], []
    for b in range(rgb.shape[0]):
        rows = torch.nonzero(target_mask[b, 0].amax(dim=1) > 0.5).squeeze(-1)
        cols = torch.nonzero(target_mask[b, 0].amax(dim=0) > 0.5).squeeze(-1)
        if rows.numel() == 0:
            y0, y1, x0, x1 = 0, rgb.shape[-2], 0, rgb.shape[-1]
        else:
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        crop, truth = rgb[b:b + 1, :, y0:y1, x0:x1].float().clamp(0, 1), target_rgb[b:b + 1, :, y0:y1, x0:x1].float()
        mse = F.mse_loss(crop, truth)
        psnr.append(-10.0 * torch.log10(mse.clamp_min(1e-10)))
        similarity.append(ssim(crop, truth)[0])
        predicted, actual = opacity[b] > 0.5, target_mask[b] > 0.5
        union = (predicted | actual).sum()
        iou.append((predicted & actual).sum() / union.clamp_min(1))
    return {"psnr": torch.stack(psnr), "ssim": torch.stack(similarity), "mask_iou": torch.stack(iou).float()}


def _learning_rate(config: NeRFOptimConfig, step: int) -> float:
    return config.learning_rate * 0.5 ** (step // config.lr_halving_steps)
