"""What a training step and validation work on: the noisy input, the level a model is told, the clean target.

:func:`step_inputs` turns the batches of any training data into :class:`StepInputs`:

* clean batches (Fashion-MNIST, image folders): flipped (``hflip``), then noised with the
  configured ``[noise]``, drawing from the step's generator, for supervised and
  self-supervised objectives alike (a self-supervised objective never sees the clean batch);
* :class:`~aedenoise.data.noisy.NoisyBatch` (noisy folders, fixed noisy copies): used as they are.

The level (``sigma`` [B] on [0, 1]) follows :func:`aedenoise.training.selfsupervised.level_source`:
supervised training gets the level the noise drew; self-supervised training
``objective.sigma`` when set, else an estimate (per image at load time for noisy data, per
patch for noise added on the fly, by :func:`aedenoise.noise.estimate_sigma`), and nothing
where neither the model nor the objective reads a level. :func:`validation_set` builds the
fixed validation set the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from aedenoise.benchmark.scoring import add_noise
from aedenoise.config import TrainConfig
from aedenoise.data.noisy import NoisyBatch, NoisyPatchData
from aedenoise.data.sources import TrainingData
from aedenoise.metrics import psnr
from aedenoise.noise import NoiseModel, estimate_sigma, noisy_batch
from aedenoise.training.selfsupervised import Level

VAL_SEED_OFFSET = 7919  # validation noise seed = config.seed + this


@dataclass(frozen=True)
class StepInputs:
    """``y`` [B, C, H, W] the noisy batch, ``sigma`` [B] the level a model is told (or ``None``),
    ``x`` the clean target (supervised training only; ``None`` for self-supervised objectives)."""

    y: Tensor
    sigma: Tensor | None
    x: Tensor | None


@dataclass(frozen=True)
class ValidationSet:
    """Fixed validation patches (CPU): ``y`` noisy, ``sigma`` as for :class:`StepInputs`, ``x`` clean or ``None``."""

    y: Tensor
    sigma: Tensor | None
    x: Tensor | None

    @property
    def noisy_psnr(self) -> float | None:
        """Mean PSNR (dB) of the noisy inputs (clamped to [0, 1]), where clean images exist."""
        return None if self.x is None else float(psnr(self.y.clamp(0, 1), self.x).mean())


def random_hflip(x: Tensor, g: torch.Generator) -> Tensor:
    """``x`` [B, C, H, W] with each image flipped left-right with probability 1/2 (draws from ``g``)."""
    flip = torch.rand(x.shape[0], generator=g, device=g.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def told_level(level: Level, y: Tensor, *, given: float | None, carried: Tensor | None) -> Tensor | None:
    """The ``[B]`` level for noisy ``y`` under ``level``: ``given``, the ``carried`` one (drawn, or estimated
    at load time), else estimated on ``y`` itself (``estimated`` with nothing carried); ``None`` for ``none``."""
    if level == "none":
        return None
    if level == "given":
        return torch.full((y.shape[0],), float(given), device=y.device)
    if carried is not None or level == "drawn":
        return carried
    return estimate_sigma(y)


def step_inputs(config: TrainConfig, noise: NoiseModel, level: Level) -> Callable[[Tensor | NoisyBatch, torch.Generator], StepInputs]:
    """The function from one batch of the training data (and the step's generator) to :class:`StepInputs`."""
    supervised, given = not config.objective.self_supervised, config.objective.sigma

    def inputs(batch: Tensor | NoisyBatch, g: torch.Generator) -> StepInputs:
        if isinstance(batch, NoisyBatch):
            y, x, carried = batch.y, batch.x, batch.sigma
            if config.hflip:
                flip = (torch.rand(y.shape[0], generator=g, device=g.device) < 0.5).to(y.device)[:, None, None, None]
                y, x = torch.where(flip, y.flip(-1), y), None if x is None else torch.where(flip, x.flip(-1), x)
        else:
            x = random_hflip(batch, g) if config.hflip else batch
            y, carried = noisy_batch(noise, x, g)
            carried = carried if supervised else None
        return StepInputs(y=y, sigma=told_level(level, y, given=given, carried=carried), x=x if supervised else None)

    return inputs


def validation_set(config: TrainConfig, data: TrainingData | NoisyPatchData, noise: NoiseModel, level: Level) -> ValidationSet:
    """The fixed validation set: noisy data's own, or clean ``val_x`` with noise seeded ``config.seed + VAL_SEED_OFFSET``."""
    given = config.objective.sigma
    if isinstance(data, NoisyPatchData):
        return ValidationSet(y=data.val_y, sigma=told_level(level, data.val_y, given=given, carried=data.val_sigma), x=data.val_x)
    y, drawn = add_noise(data.val_x, noise, seed=config.seed + VAL_SEED_OFFSET)
    carried = drawn if level == "drawn" else None
    return ValidationSet(y=y, sigma=told_level(level, y, given=given, carried=carried), x=data.val_x)
