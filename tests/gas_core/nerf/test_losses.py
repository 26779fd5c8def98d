"""SSIM, LPIPS from local weights, the combined reconstruction loss and the outside-the-mask opacity term."""

from __future__ import annotations

import pytest
import torch

from gas_core.nerf import GeneralizableHumanNeRF
from gas_core.nerf.losses import (
    LossWeights,
    load_lpips,
    outside_band,
    outside_opacity_loss,
    reconstruction_losses,
    ssim,
)
from gas_core.nerf.sampling import pixel_centers

from .conftest import make_reference, orbit


def test_ssim_is_one_for_equal_images_and_drops_with_noise():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 24, 24, generator=generator)
    torch.testing.assert_close(ssim(image, image), torch.ones(2))
    noisy = (image + 0.3 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
    assert bool((ssim(noisy, image) < 0.9).all())
    assert ssim(image[..., :6, :6], image[..., :6, :6]).shape == (2,)  # smaller than the window
    with pytest.raises(ValueError, match="shapes"):
        ssim(image, image[:1])


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


def test_lpips_loads_its_trunk_from_a_local_file(vgg_weights, tmp_path):
    import torchvision

    model = load_lpips(vgg_weights)
    saved = torch.load(vgg_weights, weights_only=True)
    torch.testing.assert_close(model.net.slice1[0].weight, saved["features.0.weight"])
    torch.testing.assert_close(getattr(model.net.slice5, "28").bias, saved["features.28.bias"])
    assert not any(parameter.requires_grad for parameter in model.parameters())
    image = torch.rand(1, 3, 32, 32)
    assert model(image, image, normalize=True).item() == pytest.approx(0.0, abs=1e-6)
    assert model(image, torch.rand(1, 3, 32, 32), normalize=True).item() > 0
    features_only = tmp_path / "features.pth"
    torch.save(torchvision.models.vgg16(weights=None).features.state_dict(), features_only)
    load_lpips(features_only)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="resnet.pth: keys that are not torchvision feature layers"):
        load_lpips(tmp_path / "resnet.pth")
    with pytest.raises(FileNotFoundError):
        load_lpips(tmp_path / "none.pth")


def test_reconstruction_losses_weigh_the_terms(vgg_weights):
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 16, 16, generator=generator)
    mask = (torch.rand(2, 1, 16, 16, generator=generator) > 0.5).float()
    perfect = reconstruction_losses(target, target, mask, mask, LossWeights(), lpips_model=None)
    assert perfect["total"].item() == pytest.approx(0.0, abs=1e-5) and "lpips" not in perfect
    rendered = torch.rand(2, 3, 16, 16, generator=generator, requires_grad=True)
    opacity = torch.rand(2, 1, 16, 16, generator=generator)
    terms = reconstruction_losses(rendered, target, opacity, mask, LossWeights(), lpips_model=load_lpips(vgg_weights))
    expected = (100 * terms["rgb_mse"] + 10 * terms["mask_mse"] + (1 - terms["ssim"]) + terms["lpips"]
                + 1.0 * terms["outside"])
    torch.testing.assert_close(terms["total"], expected)
    terms["total"].backward()
    assert rendered.grad.abs().sum() > 0
    only_mask = reconstruction_losses(rendered, target, opacity, mask, LossWeights(rgb=0, ssim=0, lpips=0, outside=0))
    torch.testing.assert_close(only_mask["total"], 10 * only_mask["mask_mse"])
    with pytest.raises(ValueError, match="weight"):
        LossWeights(rgb=-1)


def _square_mask(size: int = 20, low: int = 6, high: int = 14) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size)
    mask[..., low:high, low:high] = 1.0
    return mask


def test_outside_band_is_the_ring_just_outside_the_mask():
    mask = _square_mask()
    band = outside_band(mask, 2)
    assert band.shape == mask.shape and band.dtype == torch.bool
    assert not bool(band[mask > 0.5].any())  # never inside the mask
    assert int(band.sum()) == 12 * 12 - 8 * 8  # the square grown by 2 px, less the square
    assert bool(band[0, 0, 4, 4]) and not bool(band[0, 0, 3, 3]) and not bool(band[0, 0, 0, 0])
    assert int(outside_band(mask, 1).sum()) == 10 * 10 - 8 * 8
    with pytest.raises(ValueError, match="band_px"):
        outside_band(mask, 0)
    with pytest.raises(ValueError, match="target_mask"):
        outside_band(mask[0], 2)


def test_outside_loss_is_zero_on_the_mask_and_rises_with_opacity_outside_it():
    mask = _square_mask()
    assert outside_opacity_loss(mask, mask, 2).item() == 0.0
    band = outside_band(mask, 2).float()
    previous = 0.0
    for level in (0.1, 0.5, 0.9, 1.0):
        value = outside_opacity_loss((mask + level * band).clamp(0, 1), mask, 2).item()
        assert value > previous
        previous = value
    assert outside_opacity_loss(mask + band, mask, 2).item() == pytest.approx(-torch.log(torch.tensor(1e-4)).item(), rel=1e-3)
    # opacity inside the mask, or far from it, costs nothing; an empty mask has no band
    far = mask.clone()
    far[..., 0, 0] = 1.0
    assert outside_opacity_loss(far, mask, 2).item() == 0.0
    assert outside_opacity_loss(torch.ones(1, 1, 20, 20), torch.zeros(1, 1, 20, 20), 2).item() == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        outside_opacity_loss(mask[..., :10], mask, 2)


def test_reconstruction_losses_add_the_outside_term_only_when_weighted():
    generator = torch.Generator().manual_seed(2)
    target = torch.rand(1, 3, 20, 20, generator=generator)
    mask = _square_mask()
    opacity = (mask + 0.5 * outside_band(mask, 3).float()).requires_grad_(True)
    off = reconstruction_losses(target, target, opacity, mask, LossWeights(ssim=0, outside=0))
    assert "outside" not in off
    on = reconstruction_losses(target, target, opacity, mask, LossWeights(ssim=0, outside=2.0, outside_band_px=3))
    torch.testing.assert_close(on["outside"], outside_opacity_loss(opacity, mask, 3))
    torch.testing.assert_close(on["total"], off["total"] + 2.0 * on["outside"])
    on["total"].backward()
    assert bool((opacity.grad[outside_band(mask, 3)] > 0).all())  # pushes the ring's opacity down
    for bad in (dict(outside=-1.0), dict(outside_band_px=0)):
        with pytest.raises(ValueError, match="outside"):
            LossWeights(**bad)


def test_training_with_the_outside_term_lowers_opacity_just_outside_the_mask(posed_bodies):
    """A few Adam steps of a tiny model on the term alone: the ring outside a mask tighter than the render clears."""
    size = 24
    torch.manual_seed(0)
    model = GeneralizableHumanNeRF.from_preset(
        "tiny", image_size=size, triplane_resolution=8, volume_resolution=8, probes_per_ray=24, samples_per_ray=6,
        chunk_rays=1024, visibility_resolution=16, body_prior_density=0.0, density_mask_gate=False).train()
    reference = make_reference(posed_bodies.index(0), size)
    camera, body = orbit(size, views=4).index(torch.tensor([1])), posed_bodies.index(0)
    pixels = pixel_centers(size, size)[None]

    def opacity() -> torch.Tensor:
        return model(reference, camera, body, pixels, jitter=False).opacity.view(1, 1, size, size)

    with torch.no_grad():
        start = opacity()
    covered = (start > 0.05).float()
    assert covered.sum() > 20  # the untrained network renders something to clear
    # the target mask: what the model covers, eroded by 2 px, so its rim lies in the band
    mask = 1.0 - torch.nn.functional.max_pool2d(1.0 - covered, kernel_size=5, stride=1, padding=2)
    band = outside_band(mask, 3)
    weights = LossWeights(rgb=0.0, mask=0.0, ssim=0.0, lpips=0.0, outside=1.0, outside_band_px=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = outside_opacity_loss(start, mask, 3).item()
    for _ in range(8):
        rendered = opacity()
        terms = reconstruction_losses(rendered.new_zeros(1, 3, size, size), rendered.new_zeros(1, 3, size, size),
                                      rendered, mask, weights)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
    with torch.no_grad():
        end = opacity()
    assert outside_opacity_loss(end, mask, 3).item() < 0.5 * before
    assert end[band].mean() < 0.5 * start[band].mean()
