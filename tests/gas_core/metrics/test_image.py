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


def _uint8_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 256, size=(2, 3, 24, 20), dtype=np.uint8)
    pred = np.clip(target.astype(np.int16) + rng.integers(-12, 13, size=target.shape), 0, 255).astype(np.uint8)
    return pred, target


def test_uint8_images_are_scored_on_their_0_255_scale_like_skimage():
    pred, target = _uint8_pair(11)
    ours_psnr = psnr(torch.from_numpy(pred), torch.from_numpy(target))
    ours_ssim = ssim(torch.from_numpy(pred), torch.from_numpy(target))
    for i in range(2):  # skimage takes the data range of uint8 input from its dtype (255)
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(target[i], pred[i]), abs=1e-9)
        expected = structural_similarity(pred[i], target[i], gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, channel_axis=0)
        assert ours_ssim[i].item() == pytest.approx(expected, abs=1e-9)
    assert ours_psnr.min().item() > 25.0  # +-12 grey levels of noise, not the -17 dB of raw 0-255 values
    # the same images as 0-255 floats with data_range=255, or divided by 255, score the same
    as_float = torch.from_numpy(pred).double(), torch.from_numpy(target).double()
    assert torch.allclose(psnr(*as_float, data_range=255), ours_psnr, atol=1e-9)
    assert torch.allclose(ssim(*as_float, data_range=255.0), ours_ssim, atol=1e-9)
    assert torch.allclose(psnr(as_float[0] / 255, as_float[1] / 255), ours_psnr, atol=1e-9)
    box = torch.tensor([[2, 3, 17, 20], [0, 0, 20, 24]])
    assert torch.allclose(ssim(torch.from_numpy(pred), torch.from_numpy(target), box=box),
                          ssim(as_float[0] / 255, as_float[1] / 255, box=box), atol=1e-9)


def test_float_images_off_the_unit_scale_are_refused_naming_the_argument():
    pred, target = _pair(12)
    with pytest.raises(ValueError, match="pred holds values in .*not in \\[0, 1\\]"):
        psnr(pred * 255, target)
    with pytest.raises(ValueError, match="target holds values"):
        ssim(pred, target * 2 - 1)
    with pytest.raises(ValueError, match="target holds values"):
        ssim_map(pred, target * 255)
    nan_pred = pred.clone()
    nan_pred[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pred holds values"):
        psnr(nan_pred, target)
    with pytest.raises(ValueError, match="pred has dtype torch.int32"):
        psnr(pred.mul(255).int(), target)
    with pytest.raises(ValueError, match="data_range must be a positive"):
        psnr(pred, target, data_range=0)
    # rounding just outside [0, 1] is tolerated
    assert torch.isfinite(psnr((pred + 5e-4), target)).all()
    # with data_range the scale is the caller's: no range check, same values as on [0, 1]
    assert torch.allclose(psnr(pred * 255, target * 255, data_range=255), psnr(pred, target), atol=1e-9)
    assert torch.allclose(ssim(pred * 255, target * 255, data_range=255), ssim(pred, target), atol=1e-9)
