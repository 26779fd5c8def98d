"""This process's place in a ``torchrun`` job, shared by the trainers (NeRF and diffusion).

A plain ``python`` run is a job of one. Under ``torchrun`` the environment gives ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; the process group uses NCCL on CUDA and gloo on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["DistributedContext", "init_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node, its ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the job described by ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (NCCL on CUDA, else gloo).

    ``device``: ``"auto"`` (``cuda:LOCAL_RANK`` when CUDA is present, else the CPU), ``"cuda"`` or
    ``"cpu"``. Raises ValueError for another value, or ``"cuda"`` without a CUDA device.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is 'cuda' but no CUDA device is available")
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        chosen = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(chosen)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    if torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)
