"""The GAS UNet: diffusers' ``UNetSpatioTemporalConditionModel`` (SVD) plus the view/pose switcher.

Stock diffusers is wrapped, not forked: :class:`GASUNet` subclasses
``diffusers.UNetSpatioTemporalConditionModel`` (checked against diffusers 0.42.1,
``diffusers/models/unets/unet_spatio_temporal_condition.py``) and leaves its ``forward`` untouched.
Two forward hooks inject the GAS inputs for the duration of one call:

- on ``time_embedding``: the switcher. The one-hot mode ``(B, 2)`` is sinusoid-encoded per element
  (``Timesteps(addition_time_embed_dim)``, the same encoding SVD uses for its added time ids),
  flattened to ``(B, 2 * addition_time_embed_dim)`` and mapped by a timestep-embedding MLP
  (``mode_embedding``) onto the time embedding, which it is added to. Stock diffusers then adds the
  added-time-id embedding, so the sum is ``(time + mode) + added_time``, the release's order.
- on ``conv_in``: the condition residuals ``(B*F, C, h, w)`` (normal-map encoder, then NeRF
  encoder) added, in that order, to the output of ``conv_in``.

The last layer of ``mode_embedding`` starts at zero, so a fresh GASUNet computes exactly what the
stock UNet with the same weights computes. The switcher's parameter names differ from the official
release's (``class_embedding`` there); :mod:`gas_core.diffusion.official` maps them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionModel
from torch import Tensor, nn

__all__ = ["GASUNet", "NUM_MODES"]

NUM_MODES = 2  # view, pose


class GASUNet(UNetSpatioTemporalConditionModel):
    """SVD's spatio-temporal UNet (8 input channels: noisy latents + reference latent) with the GAS switcher.

    The constructor arguments are exactly those of ``UNetSpatioTemporalConditionModel``; the switcher
    adds ``mode_proj`` (no weights) and ``mode_embedding`` (``TimestepEmbedding`` from
    ``2 * addition_time_embed_dim`` to the time-embedding width ``4 * block_out_channels[0]``).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 8,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types: tuple[str, ...] = (
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        addition_time_embed_dim: int = 256,
        projection_class_embeddings_input_dim: int = 768,
        layers_per_block: int | tuple[int, ...] = 2,
        cross_attention_dim: int | tuple[int, ...] = 1024,
        transformer_layers_per_block: int | tuple[int, ...] = 1,
        num_attention_heads: int | tuple[int, ...] = (5, 10, 20, 20),
        num_frames: int = 25,
    ):
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels),
            addition_time_embed_dim=addition_time_embed_dim,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=num_attention_heads,
            num_frames=num_frames,
        )
        if in_channels != 2 * out_channels:
            raise ValueError(f"in_channels must be 2 * out_channels (noisy + reference latents), "
                             f"got {in_channels} and {out_channels}")
        time_embed_dim = block_out_channels[0] * 4
        self.mode_proj = Timesteps(addition_time_embed_dim, True, downscale_freq_shift=0)
        self.mode_embedding = TimestepEmbedding(NUM_MODES * addition_time_embed_dim, time_embed_dim)
        self.zero_mode_embedding_()
        self._mode: Tensor | None = None
        self._conv_in_residuals: tuple[Tensor, ...] = ()
        self.time_embedding.register_forward_hook(self._add_mode_embedding)
        self.conv_in.register_forward_hook(self._add_conv_in_residuals)

    @torch.no_grad()
    def zero_mode_embedding_(self) -> None:
        """Zero the switcher MLP's last layer: the mode then contributes exactly nothing."""
        nn.init.zeros_(self.mode_embedding.linear_2.weight)
        nn.init.zeros_(self.mode_embedding.linear_2.bias)

    @torch.no_grad()
    def reset_mode_embedding_(self) -> None:
        """Initialise the whole switcher MLP afresh (first layer as ``nn.Linear`` does, last layer zero).

        For a UNet loaded from a stock SVD checkpoint, which has no switcher weights: diffusers'
        ``from_pretrained`` leaves weights missing from the checkpoint uninitialised (``torch.empty``),
        and uninitialised memory may hold NaN, which even a zero last layer would pass on.
        """
        self.mode_embedding.linear_1.reset_parameters()
        self.zero_mode_embedding_()

    def encode_mode(self, mode: Tensor, dtype: torch.dtype) -> Tensor:
        """Switcher embedding: one-hot ``mode`` ``(B, 2)`` -> ``(B, 4 * block_out_channels[0])``."""
        if mode.ndim != 2 or mode.shape[1] != NUM_MODES:
            raise ValueError(f"mode must be (B, {NUM_MODES}), got {tuple(mode.shape)}")
        encoded = self.mode_proj(mode.flatten()).reshape(mode.shape[0], -1)
        return self.mode_embedding(encoded.to(dtype))

    @contextlib.contextmanager
    def _injected(self, mode: Tensor | None, residuals: tuple[Tensor, ...]) -> Iterator[None]:
        if self._mode is not None or self._conv_in_residuals:
            raise RuntimeError("GASUNet.forward is not re-entrant")
        self._mode, self._conv_in_residuals = mode, residuals
        try:
            yield
        finally:
            self._mode, self._conv_in_residuals = None, ()

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float | int,
        encoder_hidden_states: Tensor,
        added_time_ids: Tensor,
        return_dict: bool = True,
        *,
        mode: Tensor | None = None,
        conv_in_residuals: tuple[Tensor, ...] = (),
    ):
        """Stock SVD forward plus the GAS inputs.

        ``sample``: ``(B, F, 8, h, w)`` noisy latents concatenated with the reference latent;
        ``timestep``: ``(B,)`` or scalar (SVD/EDM: ``ln(sigma) / 4``); ``encoder_hidden_states``:
        ``(B, 1, D)`` CLIP image embedding; ``added_time_ids``: ``(B, 3)``;
        ``mode``: ``(B, 2)`` one-hot switcher or None (no switcher term);
        ``conv_in_residuals``: tensors ``(B*F, block_out_channels[0], h, w)`` added in order to
        ``conv_in``'s output. Returns what the stock model returns: ``(B, F, 4, h, w)``.
        """
        if sample.ndim != 5:
            raise ValueError(f"sample must be (B, F, C, h, w), got {tuple(sample.shape)}")
        expected = (sample.shape[0] * sample.shape[1], self.config.block_out_channels[0], *sample.shape[-2:])
        for index, residual in enumerate(conv_in_residuals):
            if tuple(residual.shape) != expected:
                raise ValueError(f"conv_in_residuals[{index}] must have shape {expected}, got {tuple(residual.shape)}")
        if mode is not None and (mode.ndim != 2 or mode.shape != (sample.shape[0], NUM_MODES)):
            raise ValueError(f"mode must be ({sample.shape[0]}, {NUM_MODES}), got {tuple(mode.shape)}")
        with self._injected(mode, tuple(conv_in_residuals)):
            return super().forward(sample, timestep, encoder_hidden_states, added_time_ids, return_dict=return_dict)

    def _add_mode_embedding(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        """Forward hook on ``time_embedding``: add the switcher embedding when a mode is set."""
        if self._mode is None:
            return output
        return output + self.encode_mode(self._mode, output.dtype)

    def _add_conv_in_residuals(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        """Forward hook on ``conv_in``: add the condition residuals, in order."""
        for residual in self._conv_in_residuals:
            output = output + residual.to(output.dtype)
        return output
