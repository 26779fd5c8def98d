"""Official GAS release layout: key names and shapes, strict loading, and outputs equal to the release's computation.

The release's layout, read from its public code (humansensinglab/GAS):
- ``models/smpl_encoder.py`` (``PoseNet``): ``conv_layers`` = 3x3 3->3, 4x4/2 3->16, 3x3 16->16, 4x4/2 16->32,
  3x3 32->32, 4x4/2 32->64, 3x3 64->64, 3x3 64->128 (SiLU after each, so conv indices 0, 2, ..., 14);
  ``final_proj`` 1x1 128->C (zero-initialised); ``scale`` of shape (1,), initialised to 2.
- ``models/nerf_encoder.py`` (``NeRFNet``): ``conv_layers`` 3x3 stride 1, 4->4->16->32->64->128 (indices 0..8);
  ``final_proj`` 1x1 128->C; ``scale`` (1,).
- ``models/unet_spatio_temporal_condition.py``: SVD's UNet plus ``class_proj = Timesteps(addition_time_embed_dim)``
  and ``class_embedding = TimestepEmbedding(task_embed_input_dim=512, 4 * block_out_channels[0])``; in its forward the
  class embedding is added to the time embedding before the added-time-id embedding, and the pose and NeRF
  latents are added (in that order) to ``conv_in``'s output.
- ``inference_novel_views.py``: ``unet.pth``, ``pose_net.pth``, ``nerf_net.pth`` loaded with ``load_state_dict`` (strict).

The reference forward below re-derives the release's computation from that description using stock
diffusers modules and functional convolutions; it shares no code path with our hooks.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionModel

from gas_core.diffusion import ConditionEncoderSize, GASModel, GASModelPreset, NeRFConditionEncoder, NormalConditionEncoder
from gas_core.diffusion.official import (
    OFFICIAL_FILES,
    official_to_ours,
    ours_to_official,
    save_official_denoiser,
)

from .helpers import random_conditions, random_noisy_latents

# (release key prefix, out, in, kernel, stride) of each conv in the release's conv_layers; padding 1 throughout.
POSE_NET_CONVS = [("conv_layers.0", 3, 3, 3, 1), ("conv_layers.2", 16, 3, 4, 2), ("conv_layers.4", 16, 16, 3, 1),
                  ("conv_layers.6", 32, 16, 4, 2), ("conv_layers.8", 32, 32, 3, 1), ("conv_layers.10", 64, 32, 4, 2),
                  ("conv_layers.12", 64, 64, 3, 1), ("conv_layers.14", 128, 64, 3, 1)]
NERF_NET_CONVS = [("conv_layers.0", 4, 4, 3, 1), ("conv_layers.2", 16, 4, 3, 1), ("conv_layers.4", 32, 16, 3, 1),
                  ("conv_layers.6", 64, 32, 3, 1), ("conv_layers.8", 128, 64, 3, 1)]
C_NOISE = torch.tensor([0.2, -0.45])


def release_encoder_shapes(convs, out_channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, out, inp, kernel, _ in convs:
        shapes[f"{name}.weight"] = (out, inp, kernel, kernel)
        shapes[f"{name}.bias"] = (out,)
    shapes["final_proj.weight"] = (out_channels, 128, 1, 1)
    shapes["final_proj.bias"] = (out_channels,)
    shapes["scale"] = (1,)
    return shapes


def release_unet_shapes(stock: UNetSpatioTemporalConditionModel) -> dict[str, tuple[int, ...]]:
    """Stock SVD keys plus the release's class embedding (input 2 x addition_time_embed_dim)."""
    shapes = {key: tuple(value.shape) for key, value in stock.state_dict().items()}
    width, addition = 4 * stock.config.block_out_channels[0], stock.config.addition_time_embed_dim
    shapes.update({"class_embedding.linear_1.weight": (width, 2 * addition), "class_embedding.linear_1.bias": (width,),
                   "class_embedding.linear_2.weight": (width, width), "class_embedding.linear_2.bias": (width,)})
    return shapes


def _shapes(state) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def test_paper_sizes_match_the_release_layout():
    """At SVD-xt sizes (built on the meta device) our parameters map one-to-one onto the release's names and shapes."""
    preset = GASModelPreset.paper()
    with torch.device("meta"):
        unet = preset.unet.build()
        stock = UNetSpatioTemporalConditionModel(
            in_channels=8, out_channels=4, block_out_channels=(320, 640, 1280, 1280), num_attention_heads=(5, 10, 20, 20),
            cross_attention_dim=1024, addition_time_embed_dim=256, projection_class_embeddings_input_dim=768,
            layers_per_block=2, sample_size=96, num_frames=25)
    expected_unet = release_unet_shapes(stock)
    assert expected_unet["class_embedding.linear_1.weight"] == (1280, 512)  # the release's task_embed_input_dim
    assert _shapes(ours_to_official("unet", unet.state_dict())) == expected_unet
    pose_net, nerf_net = preset.conditions.build(out_channels=320)
    assert _shapes(ours_to_official("pose_net", pose_net.state_dict())) == release_encoder_shapes(POSE_NET_CONVS, 320)
    assert _shapes(ours_to_official("nerf_net", nerf_net.state_dict())) == release_encoder_shapes(NERF_NET_CONVS, 320)
    assert pose_net.output_scale.item() == 2.0 and nerf_net.output_scale.item() == 2.0


def test_key_mapping_round_trips():
    encoder = NormalConditionEncoder(out_channels=8)
    ours = encoder.state_dict()
    official = ours_to_official("pose_net", ours)
    assert "scale" in official and "final_proj.weight" in official and "conv_layers.14.bias" in official
    assert official_to_ours("pose_net", official).keys() == ours.keys()
    with pytest.raises(ValueError, match="part"):
        ours_to_official("vae", ours)


# ------------------------------------------------------------------ a tiny random checkpoint in the release's layout
def _release_preset() -> GASModelPreset:
    """The tiny preset with the release's encoder widths (its encoders have fixed widths; only C = 32 is tiny)."""
    return dataclasses.replace(GASModelPreset.tiny(), conditions=ConditionEncoderSize())


def _stock_tiny_unet() -> UNetSpatioTemporalConditionModel:
    size = _release_preset().unet
    return UNetSpatioTemporalConditionModel(
        in_channels=8, out_channels=4, block_out_channels=size.block_out_channels, down_block_types=size.down_block_types,
        up_block_types=size.up_block_types, layers_per_block=size.layers_per_block,
        num_attention_heads=size.num_attention_heads,
        cross_attention_dim=size.cross_attention_dim, addition_time_embed_dim=size.addition_time_embed_dim,
        projection_class_embeddings_input_dim=3 * size.addition_time_embed_dim, sample_size=size.sample_size,
        num_frames=size.num_frames)


def write_release_checkpoint(directory, seed: int = 11) -> dict[str, dict[str, torch.Tensor]]:
    """Random tensors under the release's names and shapes, saved as plain state dicts (``torch.save``)."""
    generator = torch.Generator().manual_seed(seed)

    def random_state(shapes):
        return {key: 0.1 * torch.randn(shape, generator=generator) for key, shape in shapes.items()}

    width = _release_preset().unet.block_out_channels[0]
    states = {
        "unet": random_state(release_unet_shapes(_stock_tiny_unet())),
        "pose_net": random_state(release_encoder_shapes(POSE_NET_CONVS, width)),
        "nerf_net": random_state(release_encoder_shapes(NERF_NET_CONVS, width)),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for part, filename in OFFICIAL_FILES.items():
        torch.save(states[part], directory / filename)
    return states


def _release_conv_stack(state, convs, inputs):
    hidden = inputs.flatten(0, 1)
    for name, _, _, _, stride in convs:
        hidden = F.silu(F.conv2d(hidden, state[f"{name}.weight"], state[f"{name}.bias"], stride=stride, padding=1))
    return F.conv2d(hidden, state["final_proj.weight"], state["final_proj.bias"]) * state["scale"]


@torch.no_grad()
def release_reference_forward(states, noisy, c_noise, conditions) -> torch.Tensor:
    """The release's computation, re-derived: stock diffusers blocks, the release's class embedding and conv_in additions."""
    stock = _stock_tiny_unet().eval()
    stock.load_state_dict({k: v for k, v in states["unet"].items() if not k.startswith("class_embedding.")}, strict=True)
    batch, frames = noisy.shape[:2]
    reference = conditions.reference_latent[:, None].expand(-1, frames, -1, -1, -1)
    sample = torch.cat([noisy, reference], dim=2)

    emb = stock.time_embedding(stock.time_proj(c_noise.expand(batch)))
    addition = stock.config.addition_time_embed_dim
    labels = get_timestep_embedding(conditions.mode.flatten(), addition, flip_sin_to_cos=True, downscale_freq_shift=0)
    unet_state = states["unet"]
    class_emb = F.linear(labels.reshape(batch, -1), unet_state["class_embedding.linear_1.weight"],
                         unet_state["class_embedding.linear_1.bias"])
    class_emb = F.linear(F.silu(class_emb), unet_state["class_embedding.linear_2.weight"],
                         unet_state["class_embedding.linear_2.bias"])
    emb = emb + class_emb
    time_ids = stock.add_time_proj(conditions.added_time_ids.flatten()).reshape(batch, -1)
    emb = (emb + stock.add_embedding(time_ids)).repeat_interleave(frames, dim=0)
    hidden_states = conditions.image_embedding.repeat_interleave(frames, dim=0)

    x = stock.conv_in(sample.flatten(0, 1))
    x = x + _release_conv_stack(states["pose_net"], POSE_NET_CONVS, conditions.normal_maps)
    x = x + _release_conv_stack(states["nerf_net"], NERF_NET_CONVS, conditions.nerf_latents)
    indicator = torch.zeros(batch, frames)
    skips = (x,)
    for block in stock.down_blocks:
        if getattr(block, "has_cross_attention", False):
            x, res = block(hidden_states=x, temb=emb, encoder_hidden_states=hidden_states, image_only_indicator=indicator)
        else:
            x, res = block(hidden_states=x, temb=emb, image_only_indicator=indicator)
        skips += res
    x = stock.mid_block(hidden_states=x, temb=emb, encoder_hidden_states=hidden_states, image_only_indicator=indicator)
    for block in stock.up_blocks:
        res, skips = skips[-len(block.resnets):], skips[:-len(block.resnets)]
        if getattr(block, "has_cross_attention", False):
            x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res, encoder_hidden_states=hidden_states,
                      image_only_indicator=indicator)
        else:
            x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res, image_only_indicator=indicator)
    x = stock.conv_out(stock.conv_act(stock.conv_norm_out(x)))
    return x.reshape(batch, frames, *x.shape[1:])


def test_release_checkpoint_loads_strictly_and_reproduces_the_release(tmp_path):
    states = write_release_checkpoint(tmp_path / "GAS")
    model = GASModel.load_official(GASModel.from_sizes(_release_preset(), seed=0), tmp_path / "GAS")
    assert torch.equal(model.denoiser.pose_net.output_scale, states["pose_net"]["scale"])
    assert torch.equal(model.denoiser.unet.mode_embedding.linear_1.weight, states["unet"]["class_embedding.linear_1.weight"])
    noisy, conditions = random_noisy_latents(), random_conditions(model)
    with torch.no_grad():
        ours = model.denoiser(noisy, C_NOISE, conditions)
    expected = release_reference_forward(states, noisy, C_NOISE, conditions)
    assert torch.equal(ours, expected)  # same operations in the same order: bit-identical
    assert ours.abs().max() > 1e-2  # the conditions and switcher are active (non-zero random weights)


def test_save_official_writes_the_release_layout(tmp_path):
    states = write_release_checkpoint(tmp_path / "in")
    model = GASModel.load_official(GASModel.from_sizes(_release_preset(), seed=0), tmp_path / "in")
    save_official_denoiser(model.denoiser, tmp_path / "out")
    for part, filename in OFFICIAL_FILES.items():
        written = torch.load(tmp_path / "out" / filename, map_location="cpu", weights_only=True)
        assert written.keys() == states[part].keys()
        assert all(torch.equal(written[key], states[part][key]) for key in written)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s["pose_net"].update(extra=torch.zeros(1)), "unexpected"),
    (lambda s: s["nerf_net"].pop("scale"), "missing"),
    (lambda s: s["unet"].pop("class_embedding.linear_2.bias"), "missing"),
    (lambda s: s["pose_net"].update({"final_proj.weight": torch.zeros(320, 128, 1, 1)}), "mismatched"),
])
def test_loading_is_strict(tmp_path, damage, message):
    states = write_release_checkpoint(tmp_path / "GAS")
    damage(states)
    for part, filename in OFFICIAL_FILES.items():
        torch.save(states[part], tmp_path / "GAS" / filename)
    with pytest.raises(ValueError, match=message):
        GASModel.load_official(GASModel.from_sizes(_release_preset(), seed=0), tmp_path / "GAS")


def test_missing_file_is_reported(tmp_path):
    write_release_checkpoint(tmp_path / "GAS")
    (tmp_path / "GAS" / "nerf_net.pth").unlink()
    with pytest.raises(FileNotFoundError, match="nerf_net.pth"):
        GASModel.load_official(GASModel.from_sizes(_release_preset(), seed=0), tmp_path / "GAS")


def test_encoder_classes_accept_release_widths():
    """The release's fixed widths are our defaults."""
    assert NormalConditionEncoder().config.stage_channels == (16, 32, 64)
    assert NeRFConditionEncoder().config.hidden_channels == (4, 16, 32, 64, 128)
