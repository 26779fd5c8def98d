"""Scoring one clip: PSNR, SSIM and LPIPS per frame under the paper's protocol and in the person's box, I3D features."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gas_core.metrics import LPIPS, PSNR, SSIM, composite_on_background, mask_bounding_box, psnr, ssim
from gas_core.metrics.fvd import I3D_MIN_FRAMES
from pipelines.evaluate.config import BOX_MIN_SIDE, BOX_REGION, PAPER_REGION
from pipelines.evaluate.metrics import MetricSuite


@dataclass(frozen=True)
class ClipScore:
    """One clip's numbers for one row: per scored frame ``psnr``, ``ssim``, ``lpips`` (None without
    LPIPS) under the paper's protocol and ``box_psnr``, ``box_ssim``, ``box_lpips`` inside the person's
    box, and the I3D ``features`` (400,) of the scored frames (None without I3D or with fewer than 9
    frames) plus the ground truth's ``target_features``."""

    key: str
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]
    lpips: tuple[float, ...] | None
    features: tuple[float, ...] | None
    target_features: tuple[float, ...] | None
    box_psnr: tuple[float, ...] | None = None
    box_ssim: tuple[float, ...] | None = None
    box_lpips: tuple[float, ...] | None = None

    @property
    def frames(self) -> int:
        return len(self.psnr)

    def frame_values(self) -> dict[str, tuple[float, ...] | None]:
        """Per-frame values by column key (``PSNR@paper`` …, ``LPIPS@box``); None where not computed."""
        return {f"{PSNR.name}@{PAPER_REGION}": self.psnr, f"{SSIM.name}@{PAPER_REGION}": self.ssim,
                f"{LPIPS.name}@{PAPER_REGION}": self.lpips, f"{PSNR.name}@{BOX_REGION}": self.box_psnr,
                f"{SSIM.name}@{BOX_REGION}": self.box_ssim, f"{LPIPS.name}@{BOX_REGION}": self.box_lpips}

    def means(self) -> dict[str, float]:
        """Per-clip means of the per-frame metrics (column key -> value)."""
        return {key: float(np.mean(values)) for key, values in self.frame_values().items() if values is not None}

    def as_json(self) -> dict[str, Any]:
        def listed(values: tuple[float, ...] | None) -> list[float] | None:
            return None if values is None else list(values)
        return {"key": self.key, "psnr": list(self.psnr), "ssim": list(self.ssim), "lpips": listed(self.lpips),
                "box_psnr": listed(self.box_psnr), "box_ssim": listed(self.box_ssim), "box_lpips": listed(self.box_lpips),
                "features": listed(self.features), "target_features": listed(self.target_features)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "ClipScore":
        def floats(name: str) -> tuple[float, ...] | None:
            return None if value.get(name) is None else tuple(float(v) for v in value[name])
        return cls(key=str(value["key"]), psnr=floats("psnr") or (), ssim=floats("ssim") or (), lpips=floats("lpips"),
                   features=floats("features"), target_features=floats("target_features"),
                   box_psnr=floats("box_psnr"), box_ssim=floats("box_ssim"), box_lpips=floats("box_lpips"))


def person_boxes(masks: Tensor, min_side: int = BOX_MIN_SIDE) -> Tensor:
    """The person's box in every frame: the bounding box of the ground-truth mask, widened about its
    centre to at least ``min_side`` pixels a side (within the frame); the whole frame where the mask is empty.

    Args:
        masks: ``(F, 1, H, W)`` ground-truth masks (foreground > 0.5).
        min_side: smallest box side in pixels (capped by the frame size).

    Returns:
        ``(F, 4)`` int64 corners ``x0, y0, x1, y1`` (end exclusive), the ``box`` argument of the metrics.
    """
    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks must be (F, 1, H, W), got {tuple(masks.shape)}")
    if isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 1:
        raise ValueError(f"min_side must be a positive int, got {min_side!r}")
    height, width = masks.shape[-2:]
    masks = masks.detach().cpu()
    found = (masks > 0.5).flatten(1).any(dim=1)
    boxes = torch.tensor([0, 0, width, height], dtype=torch.int64).repeat(masks.shape[0], 1)
    if bool(found.any()):
        boxes[found] = mask_bounding_box(masks[found])
    for index in torch.nonzero(found).flatten().tolist():
        x0, y0, x1, y1 = boxes[index].tolist()
        corners = []
        for low, high, limit in ((x0, x1, width), (y0, y1, height)):
            side = min(max(high - low, min_side), limit)
            start = min(max((low + high - side) // 2, 0), limit - side)
            corners.append((start, start + side))
        (x0, x1), (y0, y1) = corners
        boxes[index] = torch.tensor([x0, y0, x1, y1])
    return boxes


def score_clip(pred: Tensor, target: Tensor, masks: Tensor, *, mask_background: bool, background: float,
               metrics: MetricSuite, key: str = "", target_id: str | None = None) -> ClipScore:
    """Score predicted frames against the ground truth.

    Args:
        pred, target: ``(F, 3, H, W)`` in [0, 1] (the scored frames only).
        masks: ``(F, 1, H, W)`` ground-truth masks in [0, 1].
        mask_background: composite both onto ``background`` with ``masks`` before scoring (THuman);
            False scores the frames as they are (2K2K).
        metrics: LPIPS / I3D (either may be None).
        key: the clip's key (kept in the result).
        target_id: identifies the ground-truth video (clip digest and scoring settings): its I3D
            features are computed once per process and reused by the other rows.

    Returns:
        A :class:`ClipScore`: PSNR (dB), SSIM and LPIPS per frame under the paper's protocol (composited
        when ``mask_background``, whole frames) and inside the person's box (:func:`person_boxes` of
        ``masks``; both frames as they are, never composited), and the I3D features of both videos
        (paper protocol) when I3D is loaded and ``F >= 9``.
    """
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"pred and target must be equal (F, 3, H, W) tensors, got {tuple(pred.shape)}, {tuple(target.shape)}")
    if masks.shape != (pred.shape[0], 1, *pred.shape[-2:]):
        raise ValueError(f"masks must be ({pred.shape[0]}, 1, {pred.shape[2]}, {pred.shape[3]}), got {tuple(masks.shape)}")
    device = metrics.device
    pred, target = pred.to(device).float().clamp(0, 1), target.to(device).float().clamp(0, 1)
    masks = masks.to(device).float()
    boxes = person_boxes(masks)
    box_values = {"box_psnr": tuple(float(v) for v in psnr(pred, target, box=boxes)),
                  "box_ssim": tuple(float(v) for v in ssim(pred, target, box=boxes)),
                  "box_lpips": None if metrics.lpips is None else
                  tuple(float(v) for v in metrics.lpips(pred, target, box=boxes).cpu())}
    if mask_background:
        pred = composite_on_background(pred, masks, background)
        target = composite_on_background(target, masks, background)
    lpips_values = None
    if metrics.lpips is not None:
        lpips_values = tuple(float(v) for v in metrics.lpips(pred, target).cpu())
    features = target_features = None
    if metrics.i3d is not None and pred.shape[0] >= I3D_MIN_FRAMES:
        target_features = metrics.target_features.get(target_id) if target_id is not None else None
        if target_features is None:
            both = metrics.i3d(torch.stack([pred, target]))
            target_features = tuple(float(v) for v in both[1])
            if target_id is not None:
                metrics.target_features[target_id] = target_features
        else:
            both = metrics.i3d(pred[None])
        features = tuple(float(v) for v in both[0])
    return ClipScore(key=key, psnr=tuple(float(v) for v in psnr(pred, target)),
                     ssim=tuple(float(v) for v in ssim(pred, target)), lpips=lpips_values,
                     features=features, target_features=target_features, **box_values)
