"""GASModel / GASDenoiser at the tiny preset: shapes, step-0 equality with stock SVD, switcher, save/load, from_base_svd."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import AutoencoderKLTemporalDecoder
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionModel
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
from transformers import CLIPImageProcessor

from gas_core.diffusion import GASModel, GASModelPreset, GenerationMode

from .helpers import BATCH, FRAMES, LATENT, perturb_, random_conditions, random_noisy_latents, stock_twin

C_NOISE = torch.tensor([0.35, -0.2])


def _stock_output(stock: UNetSpatioTemporalConditionModel, noisy, conditions) -> torch.Tensor:
    """What stock diffusers computes for the same inputs: reference latent concatenated per frame, CLIP embedding, time ids."""
    reference = conditions.reference_latent[:, None].expand(-1, noisy.shape[1], -1, -1, -1)
    return stock(torch.cat([noisy, reference], dim=2), C_NOISE, encoder_hidden_states=conditions.image_embedding,
                 added_time_ids=conditions.added_time_ids).sample


def test_tiny_shapes(tiny_model):
    images = torch.rand(BATCH * FRAMES, 3, 8 * LATENT, 8 * LATENT) * 2 - 1
    latents = tiny_model.encode_latents(images)
    assert latents.shape == (BATCH * FRAMES, 4, LATENT, LATENT)
    # chunking changes the convolution batch size, so only closeness holds across CPUs (see test_cache_latents)
    torch.testing.assert_close(tiny_model.encode_latents(images, chunk_size=2), latents, rtol=0, atol=1e-4)
    embedding = tiny_model.encode_image_embedding(images[:BATCH])
    assert embedding.shape == (BATCH, 1, tiny_model.image_encoder.config.projection_dim)
    with torch.no_grad():
        output = tiny_model.denoiser(random_noisy_latents(), C_NOISE, random_conditions(tiny_model))
    assert output.shape == (BATCH, FRAMES, 4, LATENT, LATENT)
    assert torch.isfinite(output).all()
    decoded = tiny_model.decode_latents(latents * tiny_model.scaling_factor, num_frames=FRAMES)
    assert decoded.shape == images.shape
    assert tiny_model.scaling_factor == pytest.approx(0.18215)


def test_frozen_parts_and_trainable_denoiser(tiny_model):
    assert not any(p.requires_grad for p in tiny_model.vae.parameters())
    assert not any(p.requires_grad for p in tiny_model.image_encoder.parameters())
    assert all(p.requires_grad for p in tiny_model.denoiser.parameters())


def test_image_embedding_matches_svd_preprocessing(tiny_model):
    """Same pixels as SVD's pipeline route: antialiased resize on [-1, 1], to [0, 1], CLIPImageProcessor normalisation."""
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    size = tiny_model.image_encoder.config.image_size
    resized = (_resize_with_antialiasing(images, (size, size)) + 1.0) / 2.0
    pixels = tiny_model.feature_extractor(images=resized, do_normalize=True, do_center_crop=False, do_resize=False,
                                          do_rescale=False, return_tensors="pt").pixel_values
    with torch.no_grad():
        expected = tiny_model.image_encoder(pixel_values=pixels).image_embeds[:, None]
    torch.testing.assert_close(tiny_model.encode_image_embedding(images), expected, rtol=1e-5, atol=1e-6)


def test_step_zero_equals_stock_svd_unet(tiny_model):
    """Fresh model (zero-initialised encoder projections and switcher output layer) == stock diffusers UNet, bit for bit.

    Compared: ``GASDenoiser(noisy, c_noise, conditions)`` with non-zero random NeRF latents, normal maps and
    mode, against ``diffusers.UNetSpatioTemporalConditionModel`` holding the same UNet weights, called on
    ``cat([noisy, reference latent per frame], channels)`` with the same c_noise, CLIP embedding and time ids.
    """
    noisy, conditions = random_noisy_latents(), random_conditions(tiny_model)
    stock = stock_twin(tiny_model.denoiser.unet)
    with torch.no_grad():
        ours = tiny_model.denoiser(noisy, C_NOISE, conditions)
        expected = _stock_output(stock, noisy, conditions)
        pose = dataclasses.replace(conditions, mode=GenerationMode.POSE.one_hot(BATCH))
        pose_mode = tiny_model.denoiser(noisy, C_NOISE, pose)
    assert torch.equal(ours, expected)
    assert torch.equal(pose_mode, expected)


def test_switcher_changes_output_once_trained(tiny_model):
    perturb_(tiny_model.denoiser.unet.mode_embedding)
    noisy, view = random_noisy_latents(), random_conditions(tiny_model, mode=GenerationMode.VIEW)
    pose = dataclasses.replace(view, mode=GenerationMode.POSE.one_hot(BATCH))
    with torch.no_grad():
        view_out = tiny_model.denoiser(noisy, C_NOISE, view)
        pose_out = tiny_model.denoiser(noisy, C_NOISE, pose)
        stock_out = _stock_output(stock_twin(tiny_model.denoiser.unet), noisy, view)
    assert (view_out - pose_out).abs().max() > 1e-3
    assert (view_out - stock_out).abs().max() > 1e-3


@pytest.mark.parametrize("part", ["pose_net", "nerf_net"])
def test_conditions_change_output_once_trained(tiny_model, part):
    noisy, conditions = random_noisy_latents(), random_conditions(tiny_model)
    with torch.no_grad():
        before = tiny_model.denoiser(noisy, C_NOISE, conditions)
        perturb_(getattr(tiny_model.denoiser, part).output_projection)
        after = tiny_model.denoiser(noisy, C_NOISE, conditions)
    assert (after - before).abs().max() > 1e-3


def test_gradients_reach_zero_initialised_projections(tiny_model):
    """At step 0 the outputs are exactly the base model's, yet the zero layers get gradients (they can learn)."""
    output = tiny_model.denoiser(random_noisy_latents(), C_NOISE, random_conditions(tiny_model))
    output.square().mean().backward()
    denoiser = tiny_model.denoiser
    for layer in (denoiser.pose_net.output_projection, denoiser.nerf_net.output_projection,
                  denoiser.unet.mode_embedding.linear_2):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_save_load_round_trip(tiny_model, tmp_path):
    perturb_(tiny_model.denoiser)
    tiny_model.save_pretrained(tmp_path / "model")
    written = {p.name for p in (tmp_path / "model").iterdir()}
    assert written >= {"unet", "pose_net", "nerf_net", "vae", "image_encoder", "feature_extractor"}
    loaded = GASModel.from_pretrained(tmp_path / "model")
    noisy, conditions = random_noisy_latents(), random_conditions(tiny_model)
    with torch.no_grad():
        assert torch.equal(loaded.denoiser(noisy, C_NOISE, conditions), tiny_model.denoiser(noisy, C_NOISE, conditions))
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(loaded.encode_latents(images), tiny_model.encode_latents(images))
    assert torch.equal(loaded.encode_image_embedding(images), tiny_model.encode_image_embedding(images))
    assert loaded.scaling_factor == tiny_model.scaling_factor
    with pytest.raises(OSError):
        tiny_model.save_pretrained(tmp_path / "model")  # refuses to replace without overwrite=True
    tiny_model.save_pretrained(tmp_path / "model", overwrite=True)


@pytest.mark.parametrize("variant", [None, "fp16"])
def test_from_base_svd_on_a_tiny_diffusers_folder(tmp_path, variant):
    """A diffusers SVD folder saved from stock classes loads; the model then computes what stock SVD computes."""
    preset = GASModelPreset.tiny()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        donor = GASModel.from_sizes(preset, seed=5)
        stock_unet = stock_twin(donor.denoiser.unet)
    svd_dir = tmp_path / "svd"
    stock_unet.save_pretrained(svd_dir / "unet", variant=variant)  # weights stay fp32; only the file name differs
    donor.vae.save_pretrained(svd_dir / "vae", variant=variant)
    donor.image_encoder.save_pretrained(svd_dir / "image_encoder", variant=variant)
    CLIPImageProcessor().save_pretrained(svd_dir / "feature_extractor")

    model = GASModel.from_base_svd(svd_dir, variant=variant)
    assert isinstance(model.vae, AutoencoderKLTemporalDecoder)
    unet_state = model.denoiser.unet.state_dict()
    for key, value in stock_unet.state_dict().items():
        assert torch.equal(unet_state[key], value), key
    assert not model.denoiser.unet.mode_embedding.linear_2.weight.any()
    # the switcher is absent from the checkpoint: its first layer gets nn.Linear's init, never leftover memory
    first = model.denoiser.unet.mode_embedding.linear_1.weight
    assert torch.isfinite(first).all() and first.abs().max() <= first.shape[1] ** -0.5 and first.abs().max() > 0
    noisy, conditions = random_noisy_latents(), random_conditions(model)
    with torch.no_grad():
        assert torch.equal(model.denoiser(noisy, C_NOISE, conditions), _stock_output(stock_unet, noisy, conditions))
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(model.encode_latents(images), donor.encode_latents(images))


def test_from_base_svd_rejects_incomplete_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="unet"):
        GASModel.from_base_svd(tmp_path)


def test_bad_inputs_raise_value_error(tiny_model):
    noisy, conditions = random_noisy_latents(), random_conditions(tiny_model)
    with pytest.raises(ValueError, match="nerf_latents"):
        tiny_model.denoiser(noisy, C_NOISE, dataclasses.replace(conditions, nerf_latents=conditions.nerf_latents[:, :1]))
    with pytest.raises(ValueError, match="normal_maps"):
        tiny_model.denoiser(noisy, C_NOISE, dataclasses.replace(conditions, normal_maps=conditions.normal_maps[..., :32, :32]))
    with pytest.raises(ValueError, match="c_noise"):
        tiny_model.denoiser(noisy, torch.zeros(3), conditions)
    with pytest.raises(ValueError, match="images"):
        tiny_model.encode_latents(torch.rand(1, 3, 64, 64) * 255)
    with pytest.raises(ValueError, match="num_frames"):
        tiny_model.decode_latents(torch.zeros(5, 4, 8, 8), num_frames=2)
    with pytest.raises(ValueError, match="preset"):
        GASModel.from_preset("huge")


def test_from_preset_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    first, second = GASModel.from_preset("tiny", seed=4), GASModel.from_preset("tiny", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(first.denoiser.parameters(), second.denoiser.parameters()):
        assert torch.equal(a, b)


def test_deep_copy_keeps_its_own_hooks(tiny_model):
    """EMA copies are made with deepcopy: the copy's hooks must read the copy's state and weights."""
    import copy

    perturb_(tiny_model.denoiser)
    twin = copy.deepcopy(tiny_model.denoiser)
    noisy, conditions = random_noisy_latents(), random_conditions(tiny_model)
    with torch.no_grad():
        assert torch.equal(twin(noisy, C_NOISE, conditions), tiny_model.denoiser(noisy, C_NOISE, conditions))
        perturb_(twin.unet.mode_embedding, seed=9)
        original = tiny_model.denoiser(noisy, C_NOISE, conditions)
        assert not torch.equal(twin(noisy, C_NOISE, conditions), original)
        assert torch.equal(tiny_model.denoiser(noisy, C_NOISE, conditions), original)


def test_gradient_checkpointing_gives_the_same_output_and_gradients(tiny_model):
    perturb_(tiny_model.denoiser)
    noisy, conditions = random_noisy_latents(), random_conditions(tiny_model)
    denoiser = tiny_model.denoiser.train()
    plain = denoiser(noisy, C_NOISE, conditions)
    plain.square().mean().backward()
    reference_grad = denoiser.unet.mode_embedding.linear_2.weight.grad.clone()
    denoiser.zero_grad(set_to_none=True)
    denoiser.unet.enable_gradient_checkpointing()
    checkpointed = denoiser(noisy, C_NOISE, conditions)
    checkpointed.square().mean().backward()
    torch.testing.assert_close(checkpointed, plain)
    torch.testing.assert_close(denoiser.unet.mode_embedding.linear_2.weight.grad, reference_grad)
