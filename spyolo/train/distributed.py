"""Distributed data parallel set-up under ``torchrun``.

With ``WORLD_SIZE`` > 1 in the environment the process group is initialised (NCCL on CUDA,
gloo on the CPU), the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`
(each replica keeps its own neuron states), and rank 0 alone logs, evaluates and saves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as dist
from torch import nn

from spyolo.utils.runtime import Runtime

__all__ = ["DistInfo", "barrier", "init_distributed", "shutdown", "wrap_ddp"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the process that logs, evaluates and saves)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def wrap_ddp(model: nn.Module, runtime: Runtime, info: DistInfo) -> nn.Module:
    """``model`` in DistributedDataParallel when running distributed, else unchanged."""
    if not info.enabled:
        return model
    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group (no-op in a single process)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
