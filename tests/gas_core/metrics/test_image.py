"""PSNR / SSIM against scikit-image on random images, and the mask / box variants against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gas_core.metrics.image import composite_on_background, mask_bounding_box, psnr, ssim, ssim_map


def _pair(seed: int, batch: int = 3, height: int = 37, width: int = 29) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, 3, height, width, generator=generator, dtype=torch.float64)
    noise = 0.1 * torch.randn(batch, 3, height, width, generator=generator, dtype=torch.float64)
    return (target + noise).clamp(0, 1), target


def _skimage_ssim(pred: np.ndarray, target: np.ndarray, **extra) -> float:
    return structural_similarity(pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1, channel_axis=0, **extra)


def test_psnr_matches_skimage():
    pred, target = _pair(0)
    ours = psnr(pred, target)
    assert ours.shape == (3,) and ours.dtype == torch.float64
    for i in range(3):
        reference = peak_signal_noise_ratio(target[i].numpy(), pred[i].numpy(), data_range=1)
        assert ours[i].item() == pytest.approx(reference, abs=1e-10)


def test_psnr_float32_input_and_identical_images():
    pred, target = _pair(1)
    assert torch.allclose(psnr(pred.float(), target.float()), psnr(pred, target), atol=1e-4)
    assert torch.isinf(psnr(target, target)).all()


def test_ssim_matches_skimage():
    pred, target = _pair(2)
    ours = ssim(pred, target)
    assert ours.shape == (3,)
    for i in range(3):
        assert ours[i].item() == pytest.approx(_skimage_ssim(pred[i].numpy(), target[i].numpy()), abs=1e-10)


def test_ssim_float32_close_to_skimage():
    pred, target = _pair(3)
    ours = ssim(pred.float(), target.float())
    reference = _skimage_ssim(pred[0].float().numpy(), target[0].float().numpy())
    assert ours[0].item() == pytest.approx(reference, abs=1e-5)


def test_ssim_map_is_skimage_full_map_cropped():
    pred, target = _pair(4, batch=1)
    _, full = _skimage_ssim(pred[0].numpy(), target[0].numpy(), full=True)
    ours = ssim_map(pred, target)[0].numpy()
    assert ours.shape == (3, 37 - 10, 29 - 10)
    np.testing.assert_allclose(ours, full[:, 5:-5, 5:-5], atol=1e-10)


def test_masked_psnr_and_ssim_match_manual_computation():
    pred, target = _pair(5)
    generator = torch.Generator().manual_seed(9)
    mask = (torch.rand(3, 1, 37, 29, generator=generator) > 0.4).double()
    ours_psnr = psnr(pred, target, mask=mask)
    ours_ssim = ssim(pred, target, mask=mask)
    for i in range(3):
        keep = mask[i, 0].numpy().astype(bool)
        squared = ((pred[i] - target[i]) ** 2).numpy()[:, keep]
        assert ours_psnr[i].item() == pytest.approx(10 * np.log10(1 / squared.mean()), abs=1e-10)
        _, full = _skimage_ssim(pred[i].numpy(), target[i].numpy(), full=True)
        inner = keep[5:-5, 5:-5]
        expected = np.mean([full[c, 5:-5, 5:-5][inner].mean() for c in range(3)])
        assert ours_ssim[i].item() == pytest.approx(expected, abs=1e-10)


def test_box_variants_score_the_crop_alone():
    pred, target = _pair(6, batch=2, height=48, width=40)
    box = torch.tensor([[3, 5, 30, 40], [0, 0, 40, 48]])
    ours_psnr = psnr(pred, target, box=box)
    ours_ssim = ssim(pred, target, box=box)
    for i, (x0, y0, x1, y1) in enumerate(box.tolist()):
        crop_pred, crop_target = pred[i, :, y0:y1, x0:x1].numpy(), target[i, :, y0:y1, x0:x1].numpy()
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(crop_target, crop_pred, data_range=1), abs=1e-10)
        assert ours_ssim[i].item() == pytest.approx(_skimage_ssim(crop_pred, crop_target), abs=1e-10)


def test_mask_bounding_box_and_margin():
    mask = torch.zeros(2, 1, 20, 30)
    mask[0, 0, 4:9, 10:21] = 1
    mask[1, 0, 0:20, 29] = 1
    assert mask_bounding_box(mask).tolist() == [[10, 4, 21, 9], [29, 0, 30, 20]]
    assert mask_bounding_box(mask, margin=2).tolist() == [[8, 2, 23, 11], [27, 0, 30, 20]]
    with pytest.raises(ValueError, match=r"mask\[0\]"):
        mask_bounding_box(torch.zeros(1, 1, 5, 5))


def test_composite_on_background():
    images = torch.full((1, 3, 4, 4), 0.25)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    out = composite_on_background(images, mask, background=1.0)
    assert torch.all(out[..., :2, :] == 0.25) and torch.all(out[..., 2:, :] == 1.0)


def test_bad_arguments_raise_value_errors_naming_them():
    pred, target = _pair(7)
    with pytest.raises(ValueError, match="pred"):
        psnr(pred[:, :1], target[:, :1])
    with pytest.raises(ValueError, match="same shape"):
        ssim(pred, target[:2])
    with pytest.raises(ValueError, match="mask"):
        psnr(pred, target, mask=torch.ones(3, 1, 5, 5))
    with pytest.raises(ValueError, match="mask has no weight"):
        psnr(pred, target, mask=torch.zeros(3, 1, 37, 29))
    with pytest.raises(ValueError, match=r"box\[0\]"):
        ssim(pred, target, box=torch.tensor([[0, 0, 5, 5]] * 3))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(pred[..., :8, :8], target[..., :8, :8])
