"""The GAS video diffusion model: frozen VAE and CLIP image encoder, and the trainable denoiser.

:class:`GASDenoiser` is what training optimises: the :class:`~gas_core.diffusion.unet.GASUNet`, the
normal-map encoder (``pose_net``) and the NeRF encoder (``nerf_net``). Its forward takes noisy
latents already multiplied by the EDM ``c_in`` and returns the raw UNet output ``F_theta``.

:class:`GASModel` bundles the denoiser with the frozen parts and knows how to make one: from a
preset with random weights, from a local SVD 1.1 diffusers folder, from our own ``save_pretrained``
folder, or (with :mod:`gas_core.diffusion.official`) from the official release's ``.pth`` files.

Latent conventions (kept explicit, as in the official release): :meth:`GASModel.encode_latents`
returns UNSCALED latents (``latent_dist.mode()``). Diffusion targets are
``encode_latents(frames) * scaling_factor`` (SCALED); the reference latent and the NeRF latents
fed to the denoiser are UNSCALED. :meth:`GASModel.decode_latents` takes SCALED latents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
from torch import Tensor, nn
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from gas_core.diffusion.conditions import GASConditions, NeRFConditionEncoder, NormalConditionEncoder
from gas_core.diffusion.presets import ConditionEncoderSize, GASModelPreset
from gas_core.diffusion.unet import GASUNet
from gas_core.fileio import atomic_directory

__all__ = ["GASDenoiser", "GASModel", "DENOISER_PARTS"]


DENOISER_PARTS = ("unet", "pose_net", "nerf_net")
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP normalisation (SVD's feature extractor)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_MODEL_INFO = "gas_model.json"


class GASDenoiser(nn.Module):
    """The trainable parts: ``unet`` (GASUNet), ``pose_net`` (normal maps), ``nerf_net`` (NeRF latents)."""

    def __init__(self, unet: GASUNet, pose_net: NormalConditionEncoder, nerf_net: NeRFConditionEncoder):
        super().__init__()
        width = unet.config.block_out_channels[0]
        for name, encoder in (("pose_net", pose_net), ("nerf_net", nerf_net)):
            if encoder.config.out_channels != width:
                raise ValueError(f"{name}.out_channels must equal unet block_out_channels[0] = {width}, "
                                 f"got {encoder.config.out_channels}")
        self.unet = unet
        self.pose_net = pose_net
        self.nerf_net = nerf_net

    def forward(self, noisy_latents: Tensor, c_noise: Tensor, conditions: GASConditions) -> Tensor:
        """Raw UNet output ``F_theta``.

        ``noisy_latents``: ``(B, F, 4, h, w)``, SCALED latents plus noise, ALREADY multiplied by
        ``c_in``; ``c_noise``: ``(B,)`` (or a scalar) UNet timestep, EDM ``ln(sigma) / 4``;
        ``conditions``: see :class:`GASConditions` (reference latent concatenated per frame -> 8
        input channels; CLIP embedding through cross-attention; normal-map and NeRF encodings added
        to ``conv_in``'s output; the mode through the switcher). Returns ``(B, F, 4, h, w)``.
        """
        conditions.validate(noisy_latents)
        batch, frames, _, height, width = noisy_latents.shape
        if c_noise.ndim > 1 or (c_noise.ndim == 1 and c_noise.shape[0] != batch):
            raise ValueError(f"c_noise must be a scalar or have shape ({batch},), got {tuple(c_noise.shape)}")
        expected_normals = (height * self.pose_net.downscale_factor, width * self.pose_net.downscale_factor)
        if tuple(conditions.normal_maps.shape[-2:]) != expected_normals:
            raise ValueError(f"normal_maps must be {expected_normals[0]}x{expected_normals[1]} for {height}x{width} latents, "
                             f"got {tuple(conditions.normal_maps.shape[-2:])}")
        dtype = self.unet.dtype
        reference = conditions.reference_latent.to(dtype)[:, None].expand(batch, frames, -1, -1, -1)
        sample = torch.cat([noisy_latents.to(dtype), reference], dim=2)
        normal_residual = self.pose_net(conditions.normal_maps)
        nerf_residual = self.nerf_net(conditions.nerf_latents)
        return self.unet(
            sample,
            c_noise,
            encoder_hidden_states=conditions.image_embedding.to(dtype),
            added_time_ids=conditions.added_time_ids.to(dtype),
            mode=conditions.mode,
            conv_in_residuals=(normal_residual, nerf_residual),
        ).sample

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``unet/``, ``pose_net/``, ``nerf_net/`` (diffusers ``save_pretrained``) into ``directory``."""
        directory = Path(directory)
        for name in DENOISER_PARTS:
            getattr(self, name).save_pretrained(directory / name)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, torch_dtype: torch.dtype | None = None) -> "GASDenoiser":
        """Read what :meth:`save_pretrained` wrote."""
        directory = Path(directory)
        for name in DENOISER_PARTS:
            if not (directory / name).is_dir():
                raise FileNotFoundError(f"{directory / name} is missing (expected subfolders {DENOISER_PARTS})")
        return cls(
            unet=GASUNet.from_pretrained(directory / "unet", torch_dtype=torch_dtype),
            pose_net=NormalConditionEncoder.from_pretrained(directory / "pose_net", torch_dtype=torch_dtype),
            nerf_net=NeRFConditionEncoder.from_pretrained(directory / "nerf_net", torch_dtype=torch_dtype),
        )


@dataclass
class GASModel:
    """Everything needed to train or sample GAS.

    ``vae`` and ``image_encoder`` are frozen (``requires_grad`` False, eval mode); ``denoiser`` is
    trainable; ``scaling_factor`` is ``vae.config.scaling_factor`` (0.18215 for SVD);
    ``feature_extractor`` holds the CLIP normalisation (OpenAI CLIP's when None).
    """

    vae: AutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
    denoiser: GASDenoiser
    scaling_factor: float
    feature_extractor: CLIPImageProcessor | None = None

    def __post_init__(self) -> None:
        embedding_width = self.image_encoder.config.projection_dim
        cross_attention = self.denoiser.unet.config.cross_attention_dim
        widths = {cross_attention} if isinstance(cross_attention, int) else set(cross_attention)
        if widths != {embedding_width}:
            raise ValueError(f"image_encoder projection_dim ({embedding_width}) must equal the UNet's "
                             f"cross_attention_dim ({cross_attention})")
        vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if vae_factor != self.denoiser.pose_net.downscale_factor:
            raise ValueError(f"the VAE downsamples by {vae_factor} but pose_net by {self.denoiser.pose_net.downscale_factor}")
        for frozen in (self.vae, self.image_encoder):
            frozen.requires_grad_(False)
            frozen.eval()

    # ---------------------------------------------------------------------------------- construction
    @classmethod
    def from_preset(cls, name: str, *, seed: int = 0) -> "GASModel":
        """Random weights at preset ``name``: ``"tiny"`` (CPU, 64x64, a few frames) or ``"paper"``.

        ``"paper"`` has SVD-xt sizes: about 2.26 B parameters, 9 GB in fp32 (allocated on the CPU).
        """
        return cls.from_sizes(GASModelPreset.named(name), seed=seed)

    @classmethod
    def from_sizes(cls, preset: GASModelPreset, *, seed: int = 0) -> "GASModel":
        """Random-weight model of the given sizes; the global RNG state is left untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = preset.unet.build()
            pose_net, nerf_net = preset.conditions.build(unet.config.block_out_channels[0])
            vae = preset.vae.build()
            image_encoder = preset.image_encoder.build()
        size = preset.image_encoder.image_size
        feature_extractor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                               image_mean=list(_CLIP_MEAN), image_std=list(_CLIP_STD))
        return cls(vae=vae, image_encoder=image_encoder, denoiser=GASDenoiser(unet, pose_net, nerf_net),
                   scaling_factor=float(vae.config.scaling_factor), feature_extractor=feature_extractor)

    @classmethod
    def from_base_svd(cls, svd_dir: str | Path, *, torch_dtype: torch.dtype | None = None, variant: str | None = None,
                      condition_sizes: ConditionEncoderSize = ConditionEncoderSize()) -> "GASModel":
        """Start from a local diffusers folder of SVD 1.1 img2vid.

        ``svd_dir`` holds ``unet/``, ``vae/``, ``image_encoder/`` and optionally ``feature_extractor/``.

        The UNet's weights are loaded (the checkpoint must hold every UNet weight; only the
        switcher's are new); the switcher's last layer and both condition encoders' projections
        start at zero, so the model initially computes exactly what SVD computes. ``variant``:
        diffusers weight-file variant (``"fp16"`` for ``diffusion_pytorch_model.fp16.safetensors``).
        """
        svd_dir = Path(svd_dir)
        for name in ("unet", "vae", "image_encoder"):
            if not (svd_dir / name).is_dir():
                raise FileNotFoundError(f"{svd_dir / name} is missing: svd_dir must be a diffusers SVD folder")
        unet, info = GASUNet.from_pretrained(svd_dir / "unet", torch_dtype=torch_dtype, variant=variant,
                                             low_cpu_mem_usage=False, output_loading_info=True)
        new_keys = {key for key in info["missing_keys"] if not key.startswith("mode_embedding.")}
        if new_keys or info["unexpected_keys"] or info["mismatched_keys"]:
            raise ValueError(f"{svd_dir / 'unet'} does not match the SVD UNet: missing {sorted(new_keys)}, "
                             f"unexpected {sorted(info['unexpected_keys'])}, mismatched {info['mismatched_keys']}")
        unet.reset_mode_embedding_()  # the switcher is not in the checkpoint: never leave it uninitialised
        pose_net, nerf_net = condition_sizes.build(unet.config.block_out_channels[0])
        if torch_dtype is not None:
            pose_net, nerf_net = pose_net.to(torch_dtype), nerf_net.to(torch_dtype)
        vae = AutoencoderKLTemporalDecoder.from_pretrained(svd_dir / "vae", torch_dtype=torch_dtype, variant=variant)
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(svd_dir / "image_encoder", dtype=torch_dtype,
                                                                      variant=variant)
        extractor_dir = svd_dir / "feature_extractor"
        feature_extractor = CLIPImageProcessor.from_pretrained(extractor_dir) if extractor_dir.is_dir() else None
        return cls(vae=vae, image_encoder=image_encoder, denoiser=GASDenoiser(unet, pose_net, nerf_net),
                   scaling_factor=float(vae.config.scaling_factor), feature_extractor=feature_extractor)

    @classmethod
    def load_official(cls, base: "GASModel", checkpoint_dir: str | Path) -> "GASModel":
        """Load the official release's ``unet.pth``, ``pose_net.pth``, ``nerf_net.pth`` strictly into ``base.denoiser``.

        ``base`` (usually :meth:`from_base_svd`) supplies the VAE, the CLIP encoder and correctly
        sized networks; its denoiser is overwritten in place and ``base`` is returned.
        """
        from gas_core.diffusion.official import load_official_denoiser

        load_official_denoiser(base.denoiser, checkpoint_dir)
        return base

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> None:
        """Write ``unet/``, ``pose_net/``, ``nerf_net/``, ``vae/``, ``image_encoder/``, ``feature_extractor/`` atomically."""
        with atomic_directory(Path(directory), replace_existing=overwrite) as staging:
            self.denoiser.save_pretrained(staging)
            self.vae.save_pretrained(staging / "vae")
            self.image_encoder.save_pretrained(staging / "image_encoder")
            if self.feature_extractor is not None:
                self.feature_extractor.save_pretrained(staging / "feature_extractor")
            (staging / _MODEL_INFO).write_text(json.dumps({"scaling_factor": self.scaling_factor}, indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, torch_dtype: torch.dtype | None = None) -> "GASModel":
        """Read what :meth:`save_pretrained` wrote."""
        directory = Path(directory)
        if not (directory / _MODEL_INFO).is_file():
            raise FileNotFoundError(f"{directory / _MODEL_INFO} is missing: not a GASModel folder")
        info = json.loads((directory / _MODEL_INFO).read_text())
        extractor_dir = directory / "feature_extractor"
        return cls(
            vae=AutoencoderKLTemporalDecoder.from_pretrained(directory / "vae", torch_dtype=torch_dtype),
            image_encoder=CLIPVisionModelWithProjection.from_pretrained(directory / "image_encoder", dtype=torch_dtype),
            denoiser=GASDenoiser.from_pretrained(directory, torch_dtype=torch_dtype),
            scaling_factor=float(info["scaling_factor"]),
            feature_extractor=CLIPImageProcessor.from_pretrained(extractor_dir) if extractor_dir.is_dir() else None,
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GASModel":
        """Move (and optionally cast) every network in place; returns self."""
        for module in (self.vae, self.image_encoder, self.denoiser):
            module.to(device=device, dtype=dtype)
        return self

    # ---------------------------------------------------------------------------------- encoding
    @torch.no_grad()
    def encode_latents(self, images: Tensor, *, chunk_size: int | None = None) -> Tensor:
        """``(N, 3, H, W)`` images in [-1, 1] -> ``(N, 4, H/8, W/8)`` VAE ``latent_dist.mode()``, UNSCALED.

        ``chunk_size``: encode at most this many images per VAE call (None: all at once).
        """
        _check_images(images, "images")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        weight = next(self.vae.parameters())
        images = images.to(device=weight.device, dtype=weight.dtype)
        step = chunk_size or images.shape[0]
        return torch.cat([self.vae.encode(images[i:i + step]).latent_dist.mode() for i in range(0, images.shape[0], step)])

    @torch.no_grad()
    def encode_image_embedding(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` images in [-1, 1] -> ``(B, 1, D)`` CLIP image embeddings (``image_embeds``).

        Preprocessing as SVD's pipeline: antialiased bicubic resize to the encoder's input size
        (224 for SVD) on the [-1, 1] image, back to [0, 1], then CLIP mean/std normalisation.
        """
        _check_images(images, "images")
        weight = next(self.image_encoder.parameters())
        size = self.image_encoder.config.image_size
        pixels = _resize_with_antialiasing(images.float(), (size, size))
        pixels = (pixels + 1.0) / 2.0
        mean, std = _CLIP_MEAN, _CLIP_STD
        if self.feature_extractor is not None:
            mean, std = tuple(self.feature_extractor.image_mean), tuple(self.feature_extractor.image_std)
        mean_t = torch.tensor(mean, device=pixels.device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, device=pixels.device).view(1, 3, 1, 1)
        pixels = ((pixels - mean_t) / std_t).to(device=weight.device, dtype=weight.dtype)
        return self.image_encoder(pixel_values=pixels).image_embeds.unsqueeze(1)

    @torch.no_grad()
    def decode_latents(self, latents: Tensor, num_frames: int) -> Tensor:
        """``(N, 4, h, w)`` SCALED latents of ``N / num_frames`` clips -> ``(N, 3, 8h, 8w)`` images in about [-1, 1].

        The temporal decoder mixes frames within each clip of ``num_frames`` consecutive latents.
        """
        if latents.ndim != 4 or latents.shape[1] != self.vae.config.latent_channels:
            raise ValueError(f"latents must be (N, {self.vae.config.latent_channels}, h, w), got {tuple(latents.shape)}")
        if num_frames < 1 or latents.shape[0] % num_frames:
            raise ValueError(f"num_frames must divide the number of latents {latents.shape[0]}, got {num_frames}")
        weight = next(self.vae.parameters())
        latents = latents.to(device=weight.device, dtype=weight.dtype) / self.scaling_factor
        return self.vae.decode(latents, num_frames=num_frames).sample


def _check_images(images: Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3, H, W), got {tuple(images.shape)}")
    if images.numel() and (images.min() < -1.001 or images.max() > 1.001):
        raise ValueError(f"{name} must be in [-1, 1], got range [{images.min().item():.3g}, {images.max().item():.3g}]")
