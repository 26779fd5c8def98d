"""benchmarks/nerf_mask_errors.py: each wrong pixel lands in the column that names where it is."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from nerf_mask_errors import pixel_errors  # noqa: E402


def test_pixel_errors_split_outline_body_and_clothes():
    body = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    body[..., 3:6, 3:6] = True  # the fitted body: a 3x3 square
    target = body.clone()
    target[..., 6, 3:6] = True  # clothes below it (3 pixels)
    opacity = body.float().clone()
    opacity[..., 4, 4] = 0.0  # a hole in the body
    opacity[..., 6, 3] = 1.0  # one clothes pixel covered
    opacity[..., 3:6, 2] = 1.0  # an outline left of the body, outside the target (3 pixels)
    opacity[..., 0, 8] = 1.0  # a blob far away
    errors = {name: float(value[0]) for name, value in pixel_errors(opacity, body, target).items()}
    assert errors["FP ring"] == 3 and errors["FP far"] == 1
    assert errors["FN body"] == 1 and errors["FN cloth"] == 2 and errors["cloth hit"] == 1
    assert errors["target"] == 12
    assert abs(errors["iou"] - 9 / 16) < 1e-6  # 8 body + 1 clothes pixels of a union of 12 target + 4 wrong
