"""The run's checkpoint: ``<out>/checkpoint/{model/, training_state.pt, config.yaml}``, written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from gas_core.fileio import atomic_directory
from gas_core.nerf import GeneralizableHumanNeRF
from pipelines.train_nerf.config import NeRFTrainConfig, _plain, config_to_yaml


CHECKPOINT_DIRNAME = "checkpoint"
TRAINING_STATE = "training_state.pt"
CONFIG_FILE = "config.yaml"


def _write_checkpoint(out_dir: Path, model: GeneralizableHumanNeRF, optimizer: torch.optim.Optimizer, step: int,
                      config: NeRFTrainConfig, notes: Sequence[str]) -> Path:
    target = out_dir / CHECKPOINT_DIRNAME
    with atomic_directory(target, replace_existing=True) as folder:
        model.save_pretrained(folder / "model")
        torch.save({"optimizer": optimizer.state_dict(), "step": step, "config": _plain(config)},
                   folder / TRAINING_STATE)
        (folder / CONFIG_FILE).write_text(config_to_yaml(config, notes=notes))
    return target
