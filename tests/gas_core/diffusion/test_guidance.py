"""Guidance schedules: the paper's triangular view schedule and the fixed pose scale."""

from __future__ import annotations

import pytest
import torch

from gas_core.diffusion.guidance import apply_guidance, pose_guidance_scales, view_guidance_scales


def test_view_schedule_for_twenty_frames():
    scales = view_guidance_scales(20)
    expected = [1.0 + 0.1 * i for i in range(11)] + [2.0 - 0.1 * i for i in range(1, 10)]
    torch.testing.assert_close(scales, torch.tensor(expected), atol=1e-6, rtol=0)
    assert scales.argmax().item() == 10 and scales[0].item() == 1.0


@pytest.mark.parametrize("count", [1, 2, 7, 12, 21, 40])
def test_view_schedule_is_triangular_for_any_count(count):
    scales = view_guidance_scales(count, min_scale=1.0, max_scale=3.0)
    assert scales.shape == (count,)
    assert scales[0].item() == pytest.approx(1.0)
    assert scales.min().item() >= 1.0 - 1e-6 and scales.max().item() <= 3.0 + 1e-6
    # symmetric about the back view: frame i and frame count - i share the same azimuth distance
    for i in range(1, count):
        assert scales[i].item() == pytest.approx(scales[count - i].item(), abs=1e-6)
    if count % 2 == 0:
        assert scales[count // 2].item() == pytest.approx(3.0)
    half = scales[: count // 2 + 1]
    assert bool((half[1:] >= half[:-1]).all())  # rises to the back view


def test_pose_schedule_and_bad_arguments():
    assert pose_guidance_scales(5).tolist() == [2.0] * 5
    with pytest.raises(ValueError, match="num_frames"):
        view_guidance_scales(0)
    with pytest.raises(ValueError, match="scale"):
        pose_guidance_scales(3, scale=-1)


def test_apply_guidance_per_frame():
    uncond = torch.zeros(2, 3, 4, 2, 2)
    cond = torch.ones(2, 3, 4, 2, 2)
    out = apply_guidance(uncond, cond, torch.tensor([1.0, 2.0, 3.0]))
    assert out[:, 0].eq(1).all() and out[:, 1].eq(2).all() and out[:, 2].eq(3).all()
    with pytest.raises(ValueError, match="scales"):
        apply_guidance(uncond, cond, torch.ones(4))
