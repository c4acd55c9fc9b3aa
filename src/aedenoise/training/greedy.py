"""Greedy layer-wise pretraining of stacked autoencoders (Bengio et al. 2007, Vincent et al. 2010).

For a model with stages (``model.encoders[k]``, ``model.decoders[k]``, ``model.encode_to``,
e.g. :class:`aedenoise.models.stacked_ae.StackedAE`), stage ``k`` is trained alone as a
denoising autoencoder on the codes the stages below it produce, with those stages frozen:

* stage 0: noisy image ``y`` -> ``decoders[0](encoders[0](y))``, target the clean image ``x``;
* stage ``k >= 1``: ``encode_to(y, k)`` (noisy codes) -> ``decoders[k](encoders[k](.))``,
  target ``encode_to(x, k)`` (the codes of the clean image).

After the last stage every parameter is trainable again and the caller fine-tunes
the whole network end to end (:mod:`aedenoise.training.loop` does so with its normal loop when
``greedy_epochs_per_stage > 0``).

Batches and noise follow the training loop's rules: every rank draws the same
global batch and noise from a seeded generator and keeps its own slice; under
``torch.distributed`` the trainable gradients are averaged over the ranks, so the
result equals a single process's with the same global batch.
"""

from __future__ import annotations

import time
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from aedenoise.data.sources import TrainingData, epoch_generator
from aedenoise.errors import ConfigError
from aedenoise.noise import NoiseModel, noisy_batch
from aedenoise.training.optimizers import make_optimizer

#: Seed offset of the pretraining batches/noise, so they differ from the fine-tuning epochs'.
PRETRAIN_SEED_OFFSET = 7_777_777


def check_stacked(model: nn.Module) -> None:
    """Raise :class:`ConfigError` unless ``model`` exposes stages for greedy training."""
    if not all(hasattr(model, a) for a in ("encoders", "decoders", "encode_to")):
        name = getattr(model, "arch", {}).get("name", type(model).__name__)
        raise ConfigError(f"greedy pretraining needs a model built of stages (e.g. stacked_ae); {name!r} has none: set greedy_epochs_per_stage = 0")


def stage_parameters(model: nn.Module, stage: int) -> list[nn.Parameter]:
    """The parameters stage ``stage`` trains: those of ``encoders[stage]`` and ``decoders[stage]``."""
    return [*model.encoders[stage].parameters(), *model.decoders[stage].parameters()]


def freeze_all_but(model: nn.Module, stage: int | None) -> None:
    """``requires_grad`` only for stage ``stage``'s parameters; ``None`` unfreezes everything."""
    keep = {id(p) for p in stage_parameters(model, stage)} if stage is not None else None
    for p in model.parameters():
        p.requires_grad_(keep is None or id(p) in keep)


def stage_loss(model: nn.Module, stage: int, x: Tensor, y: Tensor, loss_fn: nn.Module) -> Tensor:
    """Loss of stage ``stage`` on clean ``x`` / noisy ``y`` [B, C, H, W] (lower stages run without gradients)."""
    with torch.no_grad():
        z_in, z_target = model.encode_to(y, stage), model.encode_to(x, stage)
    return loss_fn(model.decoders[stage](model.encoders[stage](z_in)), z_target)


def train_stage(
    model: nn.Module,
    stage: int,
    data: TrainingData,
    noise: NoiseModel,
    *,
    epochs: int,
    batch_size: int,
    optimizer: Literal["adam", "adamw", "sgd"] = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    loss: Literal["mse", "l1"] = "mse",
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, float]]:
    """Train stage ``stage`` alone (all other parameters frozen) for ``epochs`` epochs.

    A fresh ``optimizer`` (as in the training loop: SGD has momentum 0.9) at a constant
    ``lr``. ``batch_size`` is the global batch; with ``world_size > 1`` (an initialised process
    group) this rank uses its ``1/world_size`` slice and gradients are averaged.
    Leaves only this stage trainable; returns one record per epoch
    (``stage`` counted from 1, ``epoch``, ``train_loss``, ``seconds``).
    """
    check_stacked(model)
    if not 0 <= stage < len(model.encoders):
        raise ValueError(f"stage must be in 0..{len(model.encoders) - 1} (got {stage})")
    freeze_all_but(model, stage)
    params = stage_parameters(model, stage)
    opt = make_optimizer(optimizer, params, lr=lr, weight_decay=weight_decay)
    loss_fn = nn.L1Loss() if loss == "l1" else nn.MSELoss()
    distributed = world_size > 1
    stage_seed = seed + PRETRAIN_SEED_OFFSET * (stage + 1)
    records: list[dict[str, float]] = []
    model.train()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        g = epoch_generator(stage_seed, epoch, device)
        total, count = torch.zeros((), device=device), 0
        for x in data.epoch_batches(epoch, batch_size, seed=stage_seed, drop_last=distributed, device=torch.device(device)):
            y = noisy_batch(noise, x, g)[0]
            if distributed:
                x, y = x.chunk(world_size)[rank], y.chunk(world_size)[rank]
            value = stage_loss(model, stage, x, y, loss_fn)
            opt.zero_grad(set_to_none=True)
            value.backward()
            if distributed:
                _average_gradients(params, world_size)
            opt.step()
            total += value.detach() * x.shape[0]
            count += x.shape[0]
        record = {"stage": stage + 1, "epoch": epoch + 1, "train_loss": float(total) / max(count, 1), "seconds": time.perf_counter() - t0}
        records.append(record)
        if log is not None:
            log(f"greedy stage {stage + 1}/{len(model.encoders)} epoch {epoch + 1}/{epochs}  loss {record['train_loss']:.6f}  {record['seconds']:.1f} s")
    return records


def greedy_pretrain(
    model: nn.Module,
    data: TrainingData,
    noise: NoiseModel,
    *,
    epochs_per_stage: int,
    batch_size: int,
    optimizer: Literal["adam", "adamw", "sgd"] = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    loss: Literal["mse", "l1"] = "mse",
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, float]]:
    """Pretrain every stage of ``model`` in turn (stage 0 first), ``epochs_per_stage`` epochs each.

    Returns all per-epoch records (see :func:`train_stage`). Afterwards every parameter
    is trainable again, ready for end-to-end fine-tuning.
    """
    check_stacked(model)
    if epochs_per_stage < 1:
        raise ConfigError(f"greedy pretraining needs epochs_per_stage >= 1 (got {epochs_per_stage})")
    records: list[dict[str, float]] = []
    try:
        for stage in range(len(model.encoders)):
            records += train_stage(
                model, stage, data, noise, epochs=epochs_per_stage, batch_size=batch_size, optimizer=optimizer, lr=lr,
                weight_decay=weight_decay, seed=seed, loss=loss, device=device, rank=rank, world_size=world_size, log=log,
            )
    finally:
        freeze_all_but(model, None)
    return records


def _average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
