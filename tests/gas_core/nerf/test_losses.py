"""SSIM, LPIPS from local weights and the combined reconstruction loss."""

from __future__ import annotations

import pytest
import torch

from gas_core.nerf.losses import LossWeights, load_lpips, reconstruction_losses, ssim


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
    expected = 100 * terms["rgb_mse"] + 10 * terms["mask_mse"] + (1 - terms["ssim"]) + terms["lpips"]
    torch.testing.assert_close(terms["total"], expected)
    terms["total"].backward()
    assert rendered.grad.abs().sum() > 0
    only_mask = reconstruction_losses(rendered, target, opacity, mask, LossWeights(rgb=0, ssim=0, lpips=0))
    torch.testing.assert_close(only_mask["total"], 10 * only_mask["mask_mse"])
    with pytest.raises(ValueError, match="weight"):
        LossWeights(rgb=-1)
