"""Loading the diffusion model from any folder the project writes (GASModel folder, training run or checkpoint)
or from the official GAS release's files (``unet.pth``, ``pose_net.pth``, ``nerf_net.pth``) with an SVD base folder."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from gas_core.diffusion import GASModel
from gas_core.diffusion.model import GASDenoiser
from gas_core.diffusion.official import is_official_checkpoint, load_official_model
from pipelines.generate.files import GenerateInputError

logger = logging.getLogger(__name__)


def load_diffusion_model(path: str | Path, *, prefer_ema: bool = True, torch_dtype: torch.dtype | None = None,
                         base_svd_dir: str | Path | None = None) -> GASModel:
    """A :class:`GASModel` from any folder the project writes, or from the official release's files:

    * a :meth:`GASModel.save_pretrained` folder (``gas_model.json``; e.g. a run's ``final/``);
    * a training run's ``out_dir`` (its ``final/``, else its newest ``checkpoints/step-*``);
    * a training checkpoint ``checkpoints/step-XXXXXXXX/`` (``model/``, ``ema/``, ``training_state.pt``,
      ``config.yaml``): the frozen VAE and CLIP encoder come from the model source its ``config.yaml``
      names (preset and seed, base SVD folder or pretrained folder), the denoiser from ``ema/`` (when
      ``prefer_ema`` and present) or ``model/``.

    Raises :class:`GenerateInputError` naming the folder when it is none of these.
    """
    from pipelines.train_diffusion import FINAL_DIRNAME, latest_checkpoint, load_train_config

    folder = Path(path)
    if not folder.is_dir():
        raise GenerateInputError(f"diffusion checkpoint {folder} is not a folder")
    if (folder / "gas_model.json").is_file():
        return GASModel.from_pretrained(folder, torch_dtype=torch_dtype)
    if (folder / FINAL_DIRNAME / "gas_model.json").is_file():
        return GASModel.from_pretrained(folder / FINAL_DIRNAME, torch_dtype=torch_dtype)
    if is_official_checkpoint(folder):
        if base_svd_dir is None:
            raise GenerateInputError(
                f"diffusion checkpoint {folder} is in the official release's layout (unet.pth, pose_net.pth, "
                "nerf_net.pth) and needs the SVD-xt 1.1 base folder: set model.base_svd_dir "
                "(--set model.base_svd_dir=PATH)")
        logger.info("diffusion model: official release files in %s, base SVD folder %s", folder, base_svd_dir)
        try:
            return load_official_model(folder, base_svd_dir, torch_dtype=torch_dtype)
        except (FileNotFoundError, OSError, ValueError) as error:
            raise GenerateInputError(f"diffusion checkpoint {folder} (official layout, model.base_svd_dir "
                                     f"{base_svd_dir}): {error}") from error
    if not (folder / "config.yaml").is_file() or not (folder / "model").is_dir():
        newest = latest_checkpoint(folder)
        if newest is None:
            raise GenerateInputError(
                f"diffusion checkpoint {folder} is neither a GASModel folder (gas_model.json), a training run "
                "(final/ or checkpoints/step-*), a training checkpoint (model/, config.yaml) nor an official "
                "release folder (unet.pth, pose_net.pth, nerf_net.pth)")
        folder = newest
    try:
        train_config = load_train_config(folder / "config.yaml", preset="tiny")
    except (ValueError, TypeError) as error:
        raise GenerateInputError(f"diffusion checkpoint {folder}: config.yaml is unreadable ({error})") from error
    weights = folder / "ema" if prefer_ema and (folder / "ema").is_dir() else folder / "model"
    logger.info("diffusion model: frozen parts from %s, denoiser from %s", train_config.model, weights)
    base = train_config.model.build()
    try:
        base.denoiser = GASDenoiser.from_pretrained(weights, torch_dtype=torch_dtype)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise GenerateInputError(f"diffusion checkpoint {weights}: {error}") from error
    if torch_dtype is not None:
        base.to(dtype=torch_dtype)
    return base
