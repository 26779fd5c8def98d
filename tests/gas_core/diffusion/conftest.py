"""Fixtures for the diffusion-model tests."""

from __future__ import annotations

import pytest
import torch

from gas_core.diffusion import GASModel


@pytest.fixture(autouse=True)
def _few_threads():
    """Small models run fastest on one thread (and the machine is shared)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture()
def tiny_model() -> GASModel:
    return GASModel.from_preset("tiny", seed=0)
