"""Training checkpoints: the run folder layout, progress state, save / load / list / prune."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gas_core.diffusion.model import DENOISER_PARTS
from gas_core.fileio import atomic_directory
from pipelines.train_diffusion.config import DiffusionTrainConfig, config_to_yaml


CHECKPOINTS_DIRNAME = "checkpoints"
CHECKPOINT_PREFIX = "step-"
FINAL_DIRNAME = "final"
TENSORBOARD_DIRNAME = "tensorboard"
_TRAINING_STATE = "training_state.pt"
_CONFIG_FILE = "config.yaml"


@dataclass
class TrainState:
    """Progress: ``step`` optimizer steps done; the data position (``epoch``, next ``batch_in_epoch``); clips seen (this rank)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    clips_seen: int = 0


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS_DIRNAME / f"{CHECKPOINT_PREFIX}{step:08d}"


def _list_checkpoints(out_dir: str | Path) -> list[Path]:
    folder = Path(out_dir) / CHECKPOINTS_DIRNAME
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX)
             and path.name[len(CHECKPOINT_PREFIX):].isdigit() and (path / _TRAINING_STATE).is_file()]
    return sorted(found, key=lambda path: int(path.name[len(CHECKPOINT_PREFIX):]))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``out_dir/checkpoints`` (None when there is none)."""
    found = _list_checkpoints(out_dir)
    return found[-1] if found else None


def _trainable(denoiser: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, parameter) for name, parameter in denoiser.named_parameters() if parameter.requires_grad]


def read_denoiser_weights(directory: Path) -> dict[str, Tensor]:
    """Weights of a ``save_pretrained`` folder of denoiser parts, named as in ``denoiser.state_dict()``.

    Raises FileNotFoundError naming the part folder that holds no ``.safetensors`` file.
    """
    from safetensors.torch import load_file

    weights: dict[str, Tensor] = {}
    for part in DENOISER_PARTS:
        files = sorted((directory / part).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{directory / part} holds no .safetensors weights")
        for file in files:
            weights.update({f"{part}.{key}": value for key, value in load_file(str(file)).items()})
    return weights


def save_checkpoint(directory: str | Path, *, denoiser: torch.nn.Module, ema: Any | None, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: torch.amp.GradScaler, state: TrainState, config: DiffusionTrainConfig) -> Path:
    """Write a checkpoint folder atomically: ``model/`` and ``ema/`` (denoiser parts, ``save_pretrained``),
    ``training_state.pt`` (optimizer, LR schedule, grad scaler, EMA counters, progress) and ``config.yaml``."""
    directory = Path(directory)
    parameters = [parameter for _, parameter in _trainable(denoiser)]
    with atomic_directory(directory, replace_existing=True) as staging:
        denoiser.save_pretrained(staging / "model")
        ema_state = None
        if ema is not None:
            ema.store(parameters)
            ema.copy_to(parameters)
            try:
                denoiser.save_pretrained(staging / "ema")
            finally:
                ema.restore(parameters)
            ema_state = {key: value for key, value in ema.state_dict().items() if key != "shadow_params"}
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "ema": ema_state, "state": asdict(state)},
                   staging / _TRAINING_STATE)
        (staging / _CONFIG_FILE).write_text(config_to_yaml(config))
    return directory


def load_checkpoint(directory: str | Path, *, denoiser: torch.nn.Module, ema: Any | None, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: torch.amp.GradScaler) -> TrainState:
    """Restore what :func:`save_checkpoint` wrote into the given objects (in place); returns the progress."""
    directory = Path(directory)
    weights = read_denoiser_weights(directory / "model")
    device = next(denoiser.parameters()).device
    denoiser.load_state_dict({key: value.to(device) for key, value in weights.items()}, strict=True)
    saved = torch.load(directory / _TRAINING_STATE, map_location=device, weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    if ema is not None:
        if saved["ema"] is None or not (directory / "ema").is_dir():
            raise ValueError(f"{directory} has no EMA weights but ema.enabled is true")
        ema_weights = read_denoiser_weights(directory / "ema")
        for (name, _), shadow in zip(_trainable(denoiser), ema.shadow_params):
            shadow.copy_(ema_weights[name].to(shadow.device))
        for key, value in saved["ema"].items():
            setattr(ema, key, value)
    return TrainState(**saved["state"])


def _prune_checkpoints(out_dir: str | Path, keep_last: int) -> None:
    for old in _list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
