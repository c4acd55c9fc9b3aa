"""Process-group setup for ``torchrun`` (gloo on CPU, NCCL on CUDA): each process's rank and device."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from aedenoise.hardware import resolve_device


@dataclass(frozen=True)
class Runtime:
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


def init_runtime(device_name: str) -> Runtime:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank=local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend=backend)
    return Runtime(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown(runtime: Runtime) -> None:
    if runtime.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        torch.distributed.barrier()
