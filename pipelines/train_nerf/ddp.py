"""Data parallel by hand: gradients averaged, rank 0's parameters and buffers broadcast, rank 0's decisions shared."""

from __future__ import annotations

import torch
from torch import distributed as dist

from pipelines.distributed import DistributedContext


def _average_gradients(model: torch.nn.Module, world_size: int) -> None:
    """All-reduce and average the gradients of every trainable parameter (missing gradients count as zero)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([p.grad.reshape(-1) for p in parameters])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.grad.copy_(flat[offset:offset + count].view_as(parameter))
        offset += count


def _broadcast_state(model: torch.nn.Module, *, parameters: bool = True) -> None:
    """Copy rank 0's parameters (optional) and buffers (batch-norm statistics) to every rank, as DDP does."""
    tensors = (list(model.parameters()) if parameters else []) + list(model.buffers())
    for tensor in tensors:
        dist.broadcast(tensor.data, src=0)


def _agree(flag: bool, process: DistributedContext) -> bool:
    """Rank 0's decision, shared with every rank (wall-clock limits differ slightly between processes)."""
    if not process.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=process.device if process.device.type == "cuda" else "cpu")
    dist.broadcast(value, src=0)
    return bool(value.item() > 0)
