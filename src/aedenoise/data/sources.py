"""What the training loop consumes: clean training batches and a fixed validation set.

A :class:`TrainingData` yields *global* batches of clean images ``[B, C, H, W]`` in
``[0, 1]`` for an epoch, in an order fixed by ``(seed, epoch)``; under
``torchrun`` every rank draws the same global batch and keeps its own slice, so
distributed training computes what one process with the same batch would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import torch
from torch import Tensor


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator that fixes one epoch's order and noise (resume-exact)."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


class TrainingData(Protocol):
    channels: int
    val_x: Tensor  # [N, C, H, W] clean validation images in [0, 1]

    def batches_per_epoch(self, batch_size: int, *, drop_last: bool) -> int: ...

    def epoch_batches(
        self, epoch: int, batch_size: int, *, seed: int, drop_last: bool, device: torch.device
    ) -> Iterator[Tensor]: ...


@dataclass
class TensorData:
    """A training set held in memory as one tensor (Fashion-MNIST), reshuffled each epoch."""

    train_x: Tensor  # [N, C, H, W]
    val_x: Tensor

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    def batches_per_epoch(self, batch_size: int, *, drop_last: bool) -> int:
        n = self.train_x.shape[0]
        return n // batch_size if drop_last else -(-n // batch_size)

    def epoch_batches(
        self, epoch: int, batch_size: int, *, seed: int, drop_last: bool, device: torch.device
    ) -> Iterator[Tensor]:
        """Consecutive slices of the set shuffled once for the epoch (one gather, not one per batch)."""
        order = torch.randperm(self.train_x.shape[0], generator=epoch_generator(seed, epoch))
        shuffled = self.train_x[order].to(device, non_blocking=True)
        for i in range(self.batches_per_epoch(batch_size, drop_last=drop_last)):
            yield shuffled[i * batch_size : (i + 1) * batch_size]
