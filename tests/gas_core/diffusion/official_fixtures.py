"""A tiny checkpoint in the official release's layout plus the tiny SVD base folder it goes with.

The base folder is a diffusers SVD folder (``unet/``, ``vae/``, ``image_encoder/``,
``feature_extractor/``) saved from stock classes at the tiny sizes; the release files are the random
tensors of :func:`tests.gas_core.diffusion.test_official.write_release_checkpoint` (release names and
shapes at the same sizes, written with ``torch.save``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers import CLIPImageProcessor

from gas_core.diffusion import ConditionEncoderSize, GASModel, GASModelPreset
from tests.gas_core.diffusion.helpers import stock_twin
from tests.gas_core.diffusion.test_official import write_release_checkpoint

__all__ = ["write_tiny_base_svd", "write_tiny_official_checkpoint"]


def write_tiny_base_svd(directory: Path, *, seed: int = 5) -> GASModel:
    """Save a tiny SVD base folder at ``directory``; returns the donor model whose VAE and CLIP encoder it holds."""
    preset = dataclasses.replace(GASModelPreset.tiny(), conditions=ConditionEncoderSize())
    donor = GASModel.from_sizes(preset, seed=seed)
    stock_twin(donor.denoiser.unet).save_pretrained(directory / "unet")
    donor.vae.save_pretrained(directory / "vae")
    donor.image_encoder.save_pretrained(directory / "image_encoder")
    CLIPImageProcessor().save_pretrained(directory / "feature_extractor")
    return donor


def write_tiny_official_checkpoint(directory: Path, *, seed: int = 11) -> dict[str, dict[str, torch.Tensor]]:
    """Write ``unet.pth``, ``pose_net.pth``, ``nerf_net.pth`` (release names, tiny sizes) into ``directory``."""
    return write_release_checkpoint(directory, seed=seed)
