"""Sizes of the GAS video diffusion model: presets ``tiny`` (CPU, random weights) and ``paper`` (SVD-xt 1.1).

Each part has one frozen dataclass with the constructor arguments of its network; ``build()`` makes
the network with random weights (under ``torch.device("meta")`` it allocates nothing).
:class:`GASModelPreset` groups them with the clip size (frames, image resolution).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diffusers import AutoencoderKLTemporalDecoder
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from gas_core.diffusion.conditions import NeRFConditionEncoder, NormalConditionEncoder
from gas_core.diffusion.unet import GASUNet
from gas_core.presets import PaperDefaults

__all__ = ["UNetSize", "VAESize", "ImageEncoderSize", "ConditionEncoderSize", "GASModelPreset"]

_SVD_DOWN = ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",)
_SVD_UP = ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3


@dataclass(frozen=True)
class UNetSize:
    """``GASUNet`` arguments; defaults are SVD-xt 1.1's ``unet/config.json``."""

    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = _SVD_DOWN
    up_block_types: tuple[str, ...] = _SVD_UP
    layers_per_block: int = 2
    num_attention_heads: tuple[int, ...] = (5, 10, 20, 20)
    cross_attention_dim: int = 1024
    addition_time_embed_dim: int = 256
    transformer_layers_per_block: int = 1
    sample_size: int = 96
    num_frames: int = 25

    def build(self) -> GASUNet:
        """A GASUNet with random weights (8 input channels, 4 output channels)."""
        return GASUNet(
            sample_size=self.sample_size,
            in_channels=8,
            out_channels=4,
            down_block_types=self.down_block_types,
            up_block_types=self.up_block_types,
            block_out_channels=self.block_out_channels,
            addition_time_embed_dim=self.addition_time_embed_dim,
            projection_class_embeddings_input_dim=3 * self.addition_time_embed_dim,
            layers_per_block=self.layers_per_block,
            cross_attention_dim=self.cross_attention_dim,
            transformer_layers_per_block=self.transformer_layers_per_block,
            num_attention_heads=self.num_attention_heads,
            num_frames=self.num_frames,
        )


@dataclass(frozen=True)
class VAESize:
    """``AutoencoderKLTemporalDecoder`` arguments; defaults are SVD's ``vae/config.json`` (/8, 4 latent channels)."""

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    sample_size: int = 768
    scaling_factor: float = 0.18215

    def build(self) -> AutoencoderKLTemporalDecoder:
        """The VAE with random weights."""
        return AutoencoderKLTemporalDecoder(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(self.block_out_channels),
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            latent_channels=4,
            sample_size=self.sample_size,
            scaling_factor=self.scaling_factor,
        )


@dataclass(frozen=True)
class ImageEncoderSize:
    """``CLIPVisionModelWithProjection`` sizes; defaults are SVD's image encoder (OpenCLIP ViT-H/14)."""

    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    projection_dim: int = 1024

    def build(self) -> CLIPVisionModelWithProjection:
        """The CLIP image encoder with random weights."""
        config = CLIPVisionConfig(
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
            projection_dim=self.projection_dim,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
        )
        return CLIPVisionModelWithProjection(config)


@dataclass(frozen=True)
class ConditionEncoderSize:
    """Widths of the two condition encoders; defaults are the official release's."""

    normal_stage_channels: tuple[int, ...] = (16, 32, 64)
    normal_head_channels: int = 128
    nerf_hidden_channels: tuple[int, ...] = (4, 16, 32, 64, 128)
    output_scale_init: float = 2.0

    def build(self, out_channels: int) -> tuple[NormalConditionEncoder, NeRFConditionEncoder]:
        """``(pose_net, nerf_net)`` projecting to ``out_channels`` (the UNet's ``block_out_channels[0]``)."""
        pose_net = NormalConditionEncoder(out_channels=out_channels, stage_channels=self.normal_stage_channels,
                                          head_channels=self.normal_head_channels, output_scale_init=self.output_scale_init)
        nerf_net = NeRFConditionEncoder(out_channels=out_channels, hidden_channels=self.nerf_hidden_channels,
                                        output_scale_init=self.output_scale_init)
        return pose_net, nerf_net


@dataclass(frozen=True)
class GASModelPreset(PaperDefaults):
    """All sizes of a GAS model plus the clip it is made for (``num_frames`` frames of ``image_size`` pixels).

    Preset ``paper()`` (the defaults): SVD-xt 1.1 img2vid sizes (about 1.5 B UNet parameters), 512x512, 20
    frames.
    """

    unet: UNetSize = field(default_factory=UNetSize)
    vae: VAESize = field(default_factory=VAESize)
    image_encoder: ImageEncoderSize = field(default_factory=ImageEncoderSize)
    conditions: ConditionEncoderSize = field(default_factory=ConditionEncoderSize)
    image_size: int = 512
    num_frames: int = 20

    @classmethod
    def tiny(cls) -> "GASModelPreset":
        """A CPU preset for tests: 64x64 images -> 8x8 latents, 4 frames, a few hundred thousand parameters per part."""
        return cls(
            unet=UNetSize(
                block_out_channels=(32, 64),
                down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
                layers_per_block=2,
                num_attention_heads=(2, 4),
                cross_attention_dim=32,
                addition_time_embed_dim=16,
                sample_size=8,
                num_frames=4,
            ),
            vae=VAESize(block_out_channels=(32, 32, 32, 32), layers_per_block=1, sample_size=64),
            image_encoder=ImageEncoderSize(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, image_size=32, patch_size=8, projection_dim=32),
            conditions=ConditionEncoderSize(normal_stage_channels=(8, 8, 16), normal_head_channels=16,
                                            nerf_hidden_channels=(4, 8, 16)),
            image_size=64,
            num_frames=4,
        )

    @classmethod
    def named(cls, name: str) -> "GASModelPreset":
        """``"tiny"`` or ``"paper"``."""
        if name == "tiny":
            return cls.tiny()
        if name == "paper":
            return cls.paper()
        raise ValueError(f"preset name must be 'tiny' or 'paper', got {name!r}")
