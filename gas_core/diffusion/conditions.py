"""GAS conditions: the two condition encoders, the generation-mode switcher and the conditions bundle.

- :class:`NormalConditionEncoder` (the release's ``pose_net``): SMPL normal maps in [0, 1],
  ``(N, 3, H, W)``, through a stride-2 conv stack down to latent size ``(N, C, H/8, W/8)``.
- :class:`NeRFConditionEncoder` (the release's ``nerf_net``): VAE latents of the NeRF renderings
  (``latent_dist.mode()``, **unscaled**), ``(N, 4, h, w)``, through a stride-1 conv stack to
  ``(N, C, h, w)``.

Both stacks end in a zero-initialised 1x1 projection multiplied by a learnable scalar, so a fresh
encoder outputs exactly zero and the UNet starts as the base SVD UNet. ``C`` is the UNet's
``block_out_channels[0]``: the outputs are added to the output of the UNet's ``conv_in``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields, replace

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

__all__ = [
    "GenerationMode",
    "NormalConditionEncoder",
    "NeRFConditionEncoder",
    "GASConditions",
    "svd_added_time_ids",
]


class GenerationMode(enum.Enum):
    """The switcher's two tasks and their one-hot codes (as in the official release)."""

    VIEW = (0.0, 1.0)  # novel-view synthesis (multi-view orbit)
    POSE = (1.0, 0.0)  # novel-pose animation

    def one_hot(self, batch_size: int, *, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
        """The mode code repeated over a batch: ``(batch_size, 2)``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return torch.tensor(self.value, device=device, dtype=dtype).expand(batch_size, 2).clone()


def svd_added_time_ids(batch_size: int, *, fps: int = 7, motion_bucket_id: int = 127, noise_aug_strength: float = 0.0,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """SVD's micro-conditioning ``(batch_size, 3)``: ``[fps - 1, motion_bucket_id, noise_aug_strength]``.

    SVD was trained on ``fps - 1`` (as its pipeline and the release pass it); the release samples with
    fps 7, motion bucket 127 and no noise augmentation, the defaults here.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    values = torch.tensor([fps - 1, motion_bucket_id, noise_aug_strength], device=device, dtype=dtype)
    return values.expand(batch_size, 3).clone()


def _he_init_(conv: nn.Conv2d) -> None:
    """He-normal weights (fan-in = k*k*in_channels) and zero bias."""
    fan_in = conv.kernel_size[0] * conv.kernel_size[1] * conv.in_channels
    nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class _ZeroProjectedConvStack(ModelMixin, ConfigMixin):
    """Shared behaviour: ``layers`` (conv/SiLU pairs) -> zero-init 1x1 ``output_projection`` * ``output_scale``."""

    layers: nn.Sequential
    output_projection: nn.Conv2d
    output_scale: nn.Parameter

    def _finish(self, layers: list[nn.Module], last_channels: int, out_channels: int, output_scale_init: float) -> None:
        self.layers = nn.Sequential(*layers)
        self.output_projection = nn.Conv2d(last_channels, out_channels, kernel_size=1)
        self.output_scale = nn.Parameter(torch.full((1,), float(output_scale_init)))
        for module in self.layers:
            if isinstance(module, nn.Conv2d):
                _he_init_(module)
        self.zero_output_projection_()

    @torch.no_grad()
    def zero_output_projection_(self) -> None:
        """Zero the final projection (weights and bias): the encoder then outputs exactly zero."""
        nn.init.zeros_(self.output_projection.weight)
        nn.init.zeros_(self.output_projection.bias)

    def _encode(self, inputs: Tensor, in_channels: int, name: str) -> Tensor:
        if inputs.ndim == 5:
            inputs = inputs.flatten(0, 1)
        if inputs.ndim != 4 or inputs.shape[1] != in_channels:
            raise ValueError(f"{name} must be (N, {in_channels}, H, W) or (B, F, {in_channels}, H, W), got {tuple(inputs.shape)}")
        inputs = inputs.to(self.output_projection.weight.dtype)
        return self.output_projection(self.layers(inputs)) * self.output_scale


class NormalConditionEncoder(_ZeroProjectedConvStack):
    """Normal maps ``(N, 3, H, W)`` (or ``(B, F, 3, H, W)``, flattened) in [0, 1] -> ``(N, C, H/2^k, W/2^k)``.

    Layout (the release's ``PoseNet`` at the default sizes): a 3x3 conv ``in -> in``; per entry of
    ``stage_channels`` a 4x4 stride-2 conv to that width and a 3x3 conv at it (k = number of
    stages, 3 -> /8); a 3x3 conv to ``head_channels``; SiLU after each conv; then a zero-initialised
    1x1 projection to ``out_channels`` times a learnable scale (``output_scale_init``).
    """

    @register_to_config
    def __init__(self, out_channels: int = 320, in_channels: int = 3, stage_channels: tuple[int, ...] = (16, 32, 64),
                 head_channels: int = 128, output_scale_init: float = 2.0):
        super().__init__()
        if out_channels < 1 or in_channels < 1 or head_channels < 1:
            raise ValueError("out_channels, in_channels and head_channels must be >= 1")
        if not stage_channels or min(stage_channels) < 1:
            raise ValueError(f"stage_channels must be a non-empty tuple of positive widths, got {stage_channels}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.SiLU()]
        previous = in_channels
        for width in stage_channels:
            layers += [nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.SiLU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.SiLU()]
            previous = width
        layers += [nn.Conv2d(previous, head_channels, 3, padding=1), nn.SiLU()]
        self._finish(layers, head_channels, out_channels, output_scale_init)

    @property
    def downscale_factor(self) -> int:
        """Spatial reduction: 2 ** len(stage_channels) (8 at the default sizes, the VAE's factor)."""
        return 2 ** len(self.config.stage_channels)

    def forward(self, normal_maps: Tensor) -> Tensor:
        """``(N, 3, H, W)`` or ``(B, F, 3, H, W)`` in [0, 1] -> ``(N or B*F, C, H/8, W/8)`` (H, W divisible by 8)."""
        height, width = normal_maps.shape[-2:]
        if height % self.downscale_factor or width % self.downscale_factor:
            raise ValueError(f"normal_maps height/width must be divisible by {self.downscale_factor}, got {height}x{width}")
        return self._encode(normal_maps, self.config.in_channels, "normal_maps")


class NeRFConditionEncoder(_ZeroProjectedConvStack):
    """NeRF-frame VAE latents ``(N, 4, h, w)`` (mode, UNSCALED) -> ``(N, C, h, w)``.

    Layout (the release's ``NeRFNet`` at the default sizes): 3x3 stride-1 convs
    ``in -> hidden_channels[0] -> ... -> hidden_channels[-1]``, SiLU after each, then a
    zero-initialised 1x1 projection to ``out_channels`` times a learnable scale.
    """

    @register_to_config
    def __init__(self, out_channels: int = 320, in_channels: int = 4, hidden_channels: tuple[int, ...] = (4, 16, 32, 64, 128),
                 output_scale_init: float = 2.0):
        super().__init__()
        if out_channels < 1 or in_channels < 1:
            raise ValueError("out_channels and in_channels must be >= 1")
        if not hidden_channels or min(hidden_channels) < 1:
            raise ValueError(f"hidden_channels must be a non-empty tuple of positive widths, got {hidden_channels}")
        layers: list[nn.Module] = []
        previous = in_channels
        for width in hidden_channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.SiLU()]
            previous = width
        self._finish(layers, previous, out_channels, output_scale_init)

    def forward(self, nerf_latents: Tensor) -> Tensor:
        """``(N, 4, h, w)`` or ``(B, F, 4, h, w)`` unscaled VAE latents -> ``(N or B*F, C, h, w)``."""
        return self._encode(nerf_latents, self.config.in_channels, "nerf_latents")


@dataclass
class GASConditions:
    """Everything the GAS denoiser is conditioned on, for a batch of B clips of F frames.

    ``reference_latent``: ``(B, 4, h, w)`` VAE latent of the reference image, ``latent_dist.mode()``,
    UNSCALED (zeros = dropped); concatenated to every noisy frame -> 8 UNet input channels.
    ``image_embedding``: ``(B, 1, D)`` CLIP image embedding of the reference (zeros = dropped).
    ``nerf_latents``: ``(B, F, 4, h, w)`` VAE latents of the NeRF frames, mode, UNSCALED.
    ``normal_maps``: ``(B, F, 3, H, W)`` SMPL normal maps in [0, 1], ``H = 8h``, ``W = 8w``.
    ``mode``: ``(B, 2)`` one-hot switcher, view = [0, 1], pose = [1, 0] (:class:`GenerationMode`).
    ``added_time_ids``: ``(B, 3)`` SVD's fps (already minus one, as SVD was trained), motion bucket
    id and noise-augmentation strength.
    """

    reference_latent: Tensor
    image_embedding: Tensor
    nerf_latents: Tensor
    normal_maps: Tensor
    mode: Tensor
    added_time_ids: Tensor

    def validate(self, noisy_latents: Tensor) -> None:
        """Raise ValueError naming the field whose shape does not fit ``noisy_latents`` ``(B, F, 4, h, w)``."""
        if noisy_latents.ndim != 5:
            raise ValueError(f"noisy_latents must be (B, F, C, h, w), got {tuple(noisy_latents.shape)}")
        batch, frames, channels, height, width = noisy_latents.shape
        expected = {
            "reference_latent": (batch, channels, height, width),
            "nerf_latents": (batch, frames, channels, height, width),
            "mode": (batch, 2),
            "added_time_ids": (batch, 3),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"{name} must have shape {shape} for noisy_latents {tuple(noisy_latents.shape)}, got {actual}")
        embedding = self.image_embedding
        if embedding.ndim != 3 or embedding.shape[0] != batch:
            raise ValueError(f"image_embedding must be (B={batch}, 1, D), got {tuple(embedding.shape)}")
        normals = self.normal_maps
        if normals.ndim != 5 or normals.shape[:3] != (batch, frames, 3):
            raise ValueError(f"normal_maps must be (B={batch}, F={frames}, 3, H, W), got {tuple(normals.shape)}")

    def without_reference(self) -> "GASConditions":
        """The unconditional branch of guidance: reference latent and CLIP embedding zeroed, the rest kept."""
        return replace(self, reference_latent=torch.zeros_like(self.reference_latent),
                       image_embedding=torch.zeros_like(self.image_embedding))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GASConditions":
        """Move every tensor to ``device``; floating tensors also cast to ``dtype`` when given."""
        return GASConditions(**{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)})

    @staticmethod
    def concatenate(parts: list["GASConditions"]) -> "GASConditions":
        """Stack several condition batches along the batch dimension (e.g. guidance's two branches)."""
        if not parts:
            raise ValueError("parts must not be empty")
        return GASConditions(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(GASConditions)})
