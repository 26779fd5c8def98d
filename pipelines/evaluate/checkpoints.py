"""The diffusion checkpoints of a table's rows: names and paths on the command line, loading (once) for sampling."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gas_core.diffusion import GASModel
from gas_core.diffusion.model import DENOISER_PARTS
from pipelines.evaluate.config import NERF_ROW

logger = logging.getLogger(__name__)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class EvalCheckpoint:
    """A named diffusion checkpoint (one table row): ``name`` as printed (``"Ours"``, ``"w.o. NeRF"``),
    ``path`` a :meth:`GASModel.save_pretrained` folder, a training run's ``final/`` or a training
    checkpoint ``checkpoints/step-XXXXXXXX/`` (its EMA weights when it has them)."""

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


def load_diffusion_checkpoint(path: str | Path) -> GASModel:
    """A :class:`GASModel` (float32, CPU) from a ``save_pretrained`` folder, a training run folder with
    ``final/``, or a training checkpoint folder (``model/``, ``ema/``, ``training_state.pt``,
    ``config.yaml``: the model is built from the run's config and gets the EMA weights when present).

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when it is none of these.
    """
    from safetensors.torch import load_file

    from pipelines.train_diffusion import load_train_config

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"diffusion checkpoint not found: {path}")
    if (path / "final").is_dir() and not (path / "unet").is_dir():
        path = path / "final"
    if (path / "unet").is_dir() and (path / "vae").is_dir():
        return GASModel.from_pretrained(path)
    if (path / "training_state.pt").is_file() and (path / "config.yaml").is_file():
        run_config = load_train_config(path / "config.yaml")
        model = run_config.model.build()
        weights_dir = path / "ema" if (path / "ema").is_dir() else path / "model"
        weights: dict[str, Tensor] = {}
        for part in DENOISER_PARTS:
            files = sorted((weights_dir / part).glob("*.safetensors"))
            if not files:
                raise ValueError(f"{weights_dir / part} holds no .safetensors weights")
            for file in files:
                weights.update({f"{part}.{key}": value for key, value in load_file(str(file)).items()})
        model.denoiser.load_state_dict(weights, strict=True)
        return model
    raise ValueError(f"{path}: not a GASModel save_pretrained folder, a run folder with final/, nor a training "
                     "checkpoint (model/, training_state.pt, config.yaml)")


class CheckpointLoader:
    """Loads a checkpoint's model on first use (:meth:`get`) and keeps it, so several datasets share
    one load and fully cached rows load nothing."""

    def __init__(self, checkpoint: EvalCheckpoint, device: torch.device) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self._model: GASModel | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> GASModel:
        if self._model is None:
            logger.info("loading diffusion checkpoint %s (%s)", self.checkpoint.name, self.checkpoint.path)
            model = load_diffusion_checkpoint(self.checkpoint.path)  # float32 on the CPU
            self._model = model if self.device.type == "cpu" else model.to(self.device)
        return self._model
