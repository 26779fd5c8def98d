"""Condition encoders, the switcher's codes, SVD time ids and the conditions bundle."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gas_core.diffusion import GASConditions, GenerationMode, NeRFConditionEncoder, NormalConditionEncoder, svd_added_time_ids

from .helpers import perturb_


def test_normal_encoder_reaches_latent_size_and_starts_at_zero():
    encoder = NormalConditionEncoder(out_channels=32, stage_channels=(8, 8, 16), head_channels=16)
    maps = torch.rand(2, 3, 3, 64, 48)
    output = encoder(maps)
    assert output.shape == (6, 32, 8, 6)
    assert not output.any()
    assert torch.equal(encoder(maps.flatten(0, 1)), output)
    perturb_(encoder.output_projection)
    assert encoder(maps).abs().max() > 0
    assert encoder.output_scale.item() == 2.0


def test_nerf_encoder_keeps_latent_size_and_starts_at_zero():
    encoder = NeRFConditionEncoder(out_channels=32, hidden_channels=(4, 8))
    latents = torch.randn(2, 4, 4, 8, 8)
    output = encoder(latents)
    assert output.shape == (8, 32, 8, 8)
    assert not output.any()
    perturb_(encoder.output_projection)
    scaled = encoder(latents)
    with torch.no_grad():
        encoder.output_scale.mul_(0.5)
    torch.testing.assert_close(encoder(latents), 0.5 * scaled)


def test_encoders_reject_bad_inputs():
    normal = NormalConditionEncoder(out_channels=8)
    with pytest.raises(ValueError, match="normal_maps"):
        normal(torch.rand(2, 4, 64, 64))
    with pytest.raises(ValueError, match="divisible"):
        normal(torch.rand(2, 3, 60, 64))
    with pytest.raises(ValueError, match="nerf_latents"):
        NeRFConditionEncoder(out_channels=8)(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="stage_channels"):
        NormalConditionEncoder(stage_channels=())


def test_encoder_save_load_round_trip(tmp_path):
    encoder = NormalConditionEncoder(out_channels=16, stage_channels=(8, 8, 16), head_channels=16)
    perturb_(encoder)
    encoder.save_pretrained(tmp_path / "pose_net")
    loaded = NormalConditionEncoder.from_pretrained(tmp_path / "pose_net")
    maps = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(maps), encoder(maps))
    assert tuple(loaded.config.stage_channels) == (8, 8, 16)


def test_generation_mode_codes_are_the_releases():
    assert GenerationMode.VIEW.one_hot(2).tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert GenerationMode.POSE.one_hot(1).tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="batch_size"):
        GenerationMode.VIEW.one_hot(0)


def test_svd_added_time_ids():
    assert svd_added_time_ids(2).tolist() == [[6.0, 127.0, 0.0]] * 2
    custom = svd_added_time_ids(1, fps=8, motion_bucket_id=100, noise_aug_strength=0.02)
    assert custom.tolist() == [[7.0, 100.0, pytest.approx(0.02)]]
    with pytest.raises(ValueError, match="fps"):
        svd_added_time_ids(1, fps=0)


def _conditions(batch: int = 2, frames: int = 3) -> GASConditions:
    return GASConditions(
        reference_latent=torch.randn(batch, 4, 8, 8), image_embedding=torch.randn(batch, 1, 32),
        nerf_latents=torch.randn(batch, frames, 4, 8, 8), normal_maps=torch.rand(batch, frames, 3, 64, 64),
        mode=GenerationMode.POSE.one_hot(batch), added_time_ids=svd_added_time_ids(batch),
    )


def test_conditions_validate_names_the_bad_field():
    conditions, noisy = _conditions(), torch.randn(2, 3, 4, 8, 8)
    conditions.validate(noisy)
    for name, bad in [("reference_latent", torch.randn(2, 4, 4, 4)), ("mode", torch.zeros(2, 3)),
                      ("added_time_ids", torch.zeros(1, 3)), ("image_embedding", torch.zeros(2, 32)),
                      ("normal_maps", torch.rand(2, 2, 3, 64, 64)), ("nerf_latents", torch.randn(2, 3, 4, 8, 4))]:
        with pytest.raises(ValueError, match=name):
            dataclasses.replace(conditions, **{name: bad}).validate(noisy)


def test_without_reference_and_concatenate():
    conditions = _conditions()
    dropped = conditions.without_reference()
    assert not dropped.reference_latent.any() and not dropped.image_embedding.any()
    assert torch.equal(dropped.nerf_latents, conditions.nerf_latents)
    assert torch.equal(dropped.normal_maps, conditions.normal_maps)
    both = GASConditions.concatenate([dropped, conditions])
    assert both.mode.shape == (4, 2) and both.normal_maps.shape == (4, 3, 3, 64, 64)
    assert both.to(dtype=torch.float64).nerf_latents.dtype == torch.float64
