"""The diffusion checkpoints of a table's rows: names and paths on the command line, loading (once) for sampling."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from gas_core.diffusion import GASModel
from gas_core.diffusion.official import is_official_checkpoint, load_official_model
from pipelines.evaluate.config import NERF_ROW

logger = logging.getLogger(__name__)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class EvalCheckpoint:
    """A named diffusion checkpoint (one table row): ``name`` as printed (``"Ours"``, ``"w.o. NeRF"``),
    ``path`` a :meth:`GASModel.save_pretrained` folder, a training run's ``final/``, a training
    checkpoint ``checkpoints/step-XXXXXXXX/`` (its EMA weights when it has them) or a folder in the
    official release's layout (``unet.pth``, ``pose_net.pth``, ``nerf_net.pth``; needs ``model.base_svd_dir``)."""

    name: str
    path: str

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("checkpoint name must be non-empty")
        if self.name == NERF_ROW:
            raise ValueError(f"checkpoint name {NERF_ROW!r} is reserved for the NeRF row")

    @property
    def row_id(self) -> str:
        """File-safe id of the row's cache folder."""
        return "ckpt-" + (_SAFE_NAME.sub("_", self.name).strip("_") or "unnamed")


def parse_checkpoint_argument(text: str) -> EvalCheckpoint:
    """``NAME=PATH`` (``"w.o. NeRF=runs/ablation/final"``) or a bare ``PATH`` (named after its folder,
    or after the run folder for ``.../final``)."""
    name, sep, path = text.partition("=")
    if not sep:
        path = text
        folder = Path(text.rstrip("/"))
        name = folder.parent.name if folder.name == "final" and folder.parent.name else folder.name
    if not path:
        raise ValueError(f"--checkpoint must look like NAME=PATH or PATH, got {text!r}")
    return EvalCheckpoint(name.strip(), path.strip())


def load_diffusion_checkpoint(path: str | Path, *, base_svd_dir: str | Path | None = None) -> GASModel:
    """A :class:`GASModel` (float32, CPU) from a ``save_pretrained`` folder, a training run folder with
    ``final/``, a training checkpoint folder (``model/``, ``ema/``, ``training_state.pt``,
    ``config.yaml``: the model is built from the run's config and gets the EMA weights when present),
    or a folder in the official release's layout (any of ``unet.pth``, ``pose_net.pth``,
    ``nerf_net.pth``; all three are loaded strictly onto the SVD-xt 1.1 folder ``base_svd_dir``, the
    setting ``model.base_svd_dir``).

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when it is none of these, the release file and
        key that is missing or does not fit, or ``model.base_svd_dir`` when a release folder lacks it.
    """
    from pipelines.train_diffusion import load_train_config, read_denoiser_weights

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"diffusion checkpoint not found: {path}")
    if is_official_checkpoint(path):
        if base_svd_dir is None:
            raise ValueError(f"diffusion checkpoint {path} is in the official release's layout (unet.pth, pose_net.pth, "
                             "nerf_net.pth) and needs the SVD-xt 1.1 base folder: set model.base_svd_dir "
                             "(--set model.base_svd_dir=PATH)")
        logger.info("diffusion checkpoint %s: official release files on the base SVD folder %s", path, base_svd_dir)
        return load_official_model(path, base_svd_dir)
    if (path / "final").is_dir() and not (path / "unet").is_dir():
        path = path / "final"
    if (path / "unet").is_dir() and (path / "vae").is_dir():
        return GASModel.from_pretrained(path)
    if (path / "training_state.pt").is_file() and (path / "config.yaml").is_file():
        run_config = load_train_config(path / "config.yaml")
        model = run_config.model.build()
        weights_dir = path / "ema" if (path / "ema").is_dir() else path / "model"
        model.denoiser.load_state_dict(read_denoiser_weights(weights_dir), strict=True)
        return model
    raise ValueError(f"{path}: not a GASModel save_pretrained folder, a run folder with final/, a training "
                     "checkpoint (model/, training_state.pt, config.yaml) nor an official release folder "
                     "(unet.pth, pose_net.pth, nerf_net.pth)")


class CheckpointLoader:
    """Loads a checkpoint's model on first use (:meth:`get`) and keeps it, so several datasets share
    one load and fully cached rows load nothing."""

    def __init__(self, checkpoint: EvalCheckpoint, device: torch.device, *,
                 base_svd_dir: str | Path | None = None) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.base_svd_dir = base_svd_dir  # for a checkpoint in the release's layout (model.base_svd_dir)
        self._model: GASModel | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> GASModel:
        if self._model is None:
            logger.info("loading diffusion checkpoint %s (%s)", self.checkpoint.name, self.checkpoint.path)
            model = load_diffusion_checkpoint(self.checkpoint.path, base_svd_dir=self.base_svd_dir)  # float32, CPU
            self._model = model if self.device.type == "cpu" else model.to(self.device)
        return self._model
