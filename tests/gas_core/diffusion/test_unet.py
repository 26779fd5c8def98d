"""GASUNet: parity with stock diffusers when the GAS inputs are absent, switcher and conv_in injection."""

from __future__ import annotations

import pytest
import torch

from gas_core.diffusion import GASModelPreset, GASUNet, GenerationMode

from .helpers import perturb_, stock_twin

BATCH, FRAMES, LATENT = 2, 3, 8


@pytest.fixture()
def unet() -> GASUNet:
    torch.manual_seed(0)
    return GASModelPreset.tiny().unet.build().eval()


def _inputs(unet: GASUNet, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(BATCH, FRAMES, 8, LATENT, LATENT, generator=generator)
    timestep = torch.tensor([0.4, -0.3])
    hidden = torch.randn(BATCH, 1, unet.config.cross_attention_dim, generator=generator)
    time_ids = torch.tensor([[6.0, 127.0, 0.02], [6.0, 127.0, 0.0]])
    return sample, timestep, hidden, time_ids


def test_parity_with_stock_diffusers_when_gas_inputs_absent(unet):
    """No mode and no residuals: identical output to ``UNetSpatioTemporalConditionModel`` with the same weights,
    even with a trained (non-zero) switcher."""
    perturb_(unet.mode_embedding)
    stock = stock_twin(unet)
    with torch.no_grad():
        ours = unet(*_inputs(unet)).sample
        expected = stock(*_inputs(unet)).sample
    assert ours.shape == (BATCH, FRAMES, 4, LATENT, LATENT)
    assert torch.equal(ours, expected)


def test_fresh_switcher_contributes_nothing(unet):
    stock = stock_twin(unet)
    mode = GenerationMode.POSE.one_hot(BATCH)
    with torch.no_grad():
        assert torch.equal(unet(*_inputs(unet), mode=mode).sample, stock(*_inputs(unet)).sample)


def test_switcher_embedding_is_added_to_the_time_embedding(unet):
    """The hook adds ``mode_embedding(sinusoid(mode))`` to ``time_embedding``'s output, per clip."""
    perturb_(unet.mode_embedding)
    mode = torch.stack([GenerationMode.VIEW.one_hot(1)[0], GenerationMode.POSE.one_hot(1)[0]])
    captured = []
    handle = unet.time_embedding.register_forward_hook(lambda m, i, o: captured.append(o.clone()))
    with torch.no_grad():
        view_pose = unet(*_inputs(unet), mode=mode).sample
        handle.remove()
        plain_time = unet.time_embedding(unet.time_proj(torch.tensor([0.4, -0.3])))
        torch.testing.assert_close(captured[0], plain_time + unet.encode_mode(mode, torch.float32))
    assert unet.encode_mode(mode, torch.float32).shape == (BATCH, 4 * unet.config.block_out_channels[0])
    with torch.no_grad():
        swapped = unet(*_inputs(unet), mode=mode.flip(0)).sample
    assert (view_pose - swapped).abs().max() > 1e-3


def test_conv_in_residuals_are_added_in_order(unet):
    """Adding residuals r1, r2 through the UNet equals stock diffusers with conv_in's output shifted by r1 + r2."""
    generator = torch.Generator().manual_seed(4)
    shape = (BATCH * FRAMES, unet.config.block_out_channels[0], LATENT, LATENT)
    first, second = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    stock = stock_twin(unet)
    handle = stock.conv_in.register_forward_hook(lambda m, i, o: o + first + second)
    with torch.no_grad():
        expected = stock(*_inputs(unet)).sample
        ours = unet(*_inputs(unet), conv_in_residuals=(first, second)).sample
        plain = unet(*_inputs(unet)).sample
    handle.remove()
    assert torch.equal(ours, expected)
    assert (ours - plain).abs().max() > 1e-3


def test_injected_state_is_cleared_after_errors(unet):
    bad = torch.zeros(1, 2, 3, 3)
    with pytest.raises(ValueError, match="conv_in_residuals"):
        unet(*_inputs(unet), conv_in_residuals=(bad,))
    sample, timestep, hidden, time_ids = _inputs(unet)
    with pytest.raises(RuntimeError):
        unet(sample, timestep, hidden, time_ids[:, :2], mode=GenerationMode.VIEW.one_hot(BATCH))  # fails inside diffusers
    assert unet._mode is None and unet._conv_in_residuals == ()
    with pytest.raises(ValueError, match="mode"):
        unet(*_inputs(unet), mode=torch.zeros(BATCH, 3))


def test_save_load_round_trip(unet, tmp_path):
    perturb_(unet)
    unet.save_pretrained(tmp_path / "unet")
    loaded = GASUNet.from_pretrained(tmp_path / "unet").eval()
    mode = GenerationMode.VIEW.one_hot(BATCH)
    with torch.no_grad():
        assert torch.equal(loaded(*_inputs(unet), mode=mode).sample, unet(*_inputs(unet), mode=mode).sample)


def test_in_channels_must_hold_noisy_and_reference_latents():
    with pytest.raises(ValueError, match="in_channels"):
        GASUNet(in_channels=4, out_channels=4, block_out_channels=(32, 64), num_attention_heads=(2, 4),
                down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"))
