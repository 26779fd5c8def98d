"""EDM maths: preconditioning against the formulas, loss weight, sigma sampling, noise augmentation."""

from __future__ import annotations

import math

import pytest
import torch

from gas_core.diffusion.edm import (
    SVD_SIGMA_LOG_MEAN,
    SVD_SIGMA_LOG_STD,
    add_noise,
    append_dims,
    denoise,
    denoising_loss,
    edm_loss_weight,
    edm_preconditioning,
    karras_sigmas,
    noise_augment,
    sample_log_normal_sigmas,
)


@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_preconditioning_matches_formulas(sigma_data):
    sigmas = torch.tensor([0.002, 0.1, 1.0, 2.0, 80.0, 700.0], dtype=torch.float64)
    pre = edm_preconditioning(sigmas, sigma_data=sigma_data)
    for index, sigma in enumerate(sigmas.tolist()):
        total = sigma**2 + sigma_data**2
        assert pre.c_in[index].item() == pytest.approx(1 / math.sqrt(total), rel=1e-12)
        assert pre.c_noise[index].item() == pytest.approx(math.log(sigma) / 4, rel=1e-12, abs=1e-15)
        assert pre.c_skip[index].item() == pytest.approx(sigma_data**2 / total, rel=1e-12)
        assert pre.c_out[index].item() == pytest.approx(-sigma * sigma_data / math.sqrt(total), rel=1e-12)
    weight = edm_loss_weight(sigmas, sigma_data=sigma_data)
    expected = (sigmas**2 + sigma_data**2) / (sigmas * sigma_data) ** 2
    torch.testing.assert_close(weight, expected)


def test_svd_values_at_sigma_one():
    pre = edm_preconditioning(torch.tensor([1.0]))
    assert pre.c_in.item() == pytest.approx(1 / math.sqrt(2))
    assert pre.c_noise.item() == 0.0
    assert pre.c_skip.item() == pytest.approx(0.5)
    assert pre.c_out.item() == pytest.approx(-1 / math.sqrt(2))
    assert edm_loss_weight(torch.tensor([1.0])).item() == pytest.approx(2.0)


def test_perfect_v_prediction_gives_zero_loss():
    """With F = (c_skip * x_sigma - x) / -c_out (the ideal output), D equals x and the loss is 0."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(3, 2, 4, 5, 5, generator=generator, dtype=torch.float64)
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float64)
    sigmas = torch.tensor([0.05, 1.0, 30.0], dtype=torch.float64)
    noisy = add_noise(latents, noise, sigmas)
    torch.testing.assert_close(noisy, latents + sigmas[:, None, None, None, None] * noise)
    pre = edm_preconditioning(sigmas)
    ideal = (latents - append_dims(pre.c_skip, 5) * noisy) / append_dims(pre.c_out, 5)
    denoised = denoise(ideal, noisy, pre)
    torch.testing.assert_close(denoised, latents)
    loss = denoising_loss(denoised, latents, sigmas)
    assert loss.shape == (3,)
    assert float(loss.abs().max()) < 1e-9
    # a constant error e gives lambda(sigma) * e^2 per sample
    loss = denoising_loss(latents + 0.1, latents, sigmas)
    torch.testing.assert_close(loss, edm_loss_weight(sigmas).float() * 0.01, rtol=1e-5, atol=1e-7)


def test_effective_target_has_unit_variance():
    """EDM's point: lambda * E||D - x||^2 with F = 0 is the variance of the target of F, ~1 at any sigma."""
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(4, 20000, generator=generator)  # sigma_data = 1
    noise = torch.randn(latents.shape, generator=generator)
    for sigma in (0.1, 1.0, 10.0):
        sigmas = torch.full((4,), sigma)
        noisy = add_noise(latents, noise, sigmas)
        denoised = denoise(torch.zeros_like(noisy), noisy, edm_preconditioning(sigmas))
        loss = denoising_loss(denoised, latents, sigmas)
        assert loss.mean().item() == pytest.approx(1.0, abs=0.05)


def test_log_normal_sigmas_statistics_and_reproducibility():
    first = sample_log_normal_sigmas(20000, generator=torch.Generator().manual_seed(3))
    again = sample_log_normal_sigmas(20000, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again)
    assert first.shape == (20000,) and bool((first > 0).all())
    logs = first.log()
    assert logs.mean().item() == pytest.approx(SVD_SIGMA_LOG_MEAN, abs=0.05)
    assert logs.std().item() == pytest.approx(SVD_SIGMA_LOG_STD, abs=0.05)
    constant = sample_log_normal_sigmas(5, log_mean=math.log(2.0), log_std=0.0)
    torch.testing.assert_close(constant, torch.full((5,), 2.0))


def test_noise_augment_scales_noise_per_sample():
    images = torch.zeros(3, 3, 32, 32)
    strengths = torch.tensor([0.0, 0.02, 0.5])
    out = noise_augment(images, strengths, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[0], images[0])
    assert out[1].std().item() == pytest.approx(0.02, rel=0.1)
    assert out[2].std().item() == pytest.approx(0.5, rel=0.1)


def test_karras_sigmas_range():
    sigmas = karras_sigmas(10)
    assert sigmas.shape == (11,)
    assert sigmas[0].item() == pytest.approx(700.0, rel=1e-5)
    assert sigmas[-2].item() == pytest.approx(0.002, rel=1e-4)
    assert sigmas[-1].item() == 0.0
    assert bool((sigmas[:-1] > sigmas[1:]).all())


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: edm_preconditioning(torch.tensor([0.0, 1.0])), "sigmas"),
        (lambda: edm_preconditioning(torch.ones(2, 2)), "sigmas"),
        (lambda: edm_preconditioning(torch.ones(2), sigma_data=0.0), "sigma_data"),
        (lambda: sample_log_normal_sigmas(0), "batch_size"),
        (lambda: sample_log_normal_sigmas(2, log_std=-1.0), "log_std"),
        (lambda: add_noise(torch.ones(2, 3), torch.ones(2, 4), torch.ones(2)), "noise"),
        (lambda: add_noise(torch.ones(2, 3), torch.ones(2, 3), torch.ones(3)), "sigmas"),
        (lambda: noise_augment(torch.ones(2, 3, 4, 4), torch.tensor([-1.0, 0.0])), "strengths"),
        (lambda: karras_sigmas(0), "num_steps"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()
