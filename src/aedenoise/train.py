"""The training loop: one process, or many under ``torchrun`` (DistributedDataParallel).

Reads on one screen: build data, model and optimizer; resume if asked; for each
epoch draw global batches, add seeded noise, step, validate, checkpoint. Rank 0
alone writes files. A run folder holds ``config.json`` (resolved configuration),
``last.safetensors`` (model + optimizer, for ``--resume``), ``model.safetensors``
(final weights), ``history.json`` (per-epoch metrics) and, for Fashion-MNIST,
``metrics.json`` plus the report.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aedenoise import __version__
from aedenoise.atomic import write_json
from aedenoise.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from aedenoise.config import TrainConfig
from aedenoise.data.sources import TrainingData, epoch_generator
from aedenoise.distributed import Runtime, barrier, init_runtime, shutdown
from aedenoise.errors import ConfigError
from aedenoise.evaluate import add_noise, denoise_batched
from aedenoise.metrics import psnr
from aedenoise.models import Denoiser, create_model, model_entry
from aedenoise.noise import GaussianNoise, NoiseModel

LAST = "last.safetensors"
FINAL = "model.safetensors"


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict[str, float]]
    train_seconds: float
    model: Denoiser


def build_training_data(config: TrainConfig) -> TrainingData:
    """The data a config names: Fashion-MNIST (train minus validation) or image-folder patches."""
    if config.data.kind == "fashion_mnist":
        from aedenoise.data.fashion_mnist import load_fashion_mnist, split_validation
        from aedenoise.data.sources import TensorData

        fmnist = load_fashion_mnist(data_dir=config.data.data_dir)
        train_x, val_x = split_validation(fmnist.train_x, count=config.data.val_count, seed=config.seed)
        return TensorData(train_x=train_x, val_x=val_x)
    from aedenoise.data.images import patch_training_data

    return patch_training_data(config.data, seed=config.seed)


def build_model(config: TrainConfig, channels: int) -> Denoiser:
    args = dict(config.model.args)
    if "in_channels" in inspect.signature(model_entry(config.model.name).builder).parameters:
        args.setdefault("in_channels", channels)
    return create_model(config.model.name, **args)


def build_optimizer(config: TrainConfig, model: nn.Module, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    o = config.optim
    if o.name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)
    elif o.name == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    if o.schedule == "cosine":
        floor = o.min_lr / o.lr

        def factor(step: int) -> float:
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    else:

        def factor(step: int) -> float:
            return 1.0

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def noisy_batch(noise: NoiseModel, x: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor | None]:
    if isinstance(noise, GaussianNoise):
        return noise.apply(x, generator=g)
    return noise(x, generator=g), None


def _check_resumable(out_dir: Path, config: TrainConfig) -> dict[str, Any]:
    meta = read_metadata(out_dir / LAST)
    saved = dict(meta.get("config", {}))
    mine = config.to_json_dict()
    for key in ("epochs", "device", "threads"):  # may change on resume
        saved.pop(key, None)
        mine.pop(key, None)
    if saved != mine:
        diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        raise ConfigError(f"{out_dir}: cannot resume, the configuration differs in: {', '.join(diff)}")
    return meta


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    data: TrainingData | None = None,
) -> TrainResult:
    """Train ``config`` into ``out_dir``; returns the history and the trained model (on the CPU)."""
    out = Path(out_dir)
    rt = init_runtime(config.device)
    try:
        return _train(config, out, rt, resume=resume, progress=progress, data=data)
    finally:
        shutdown(rt)


def _train(config: TrainConfig, out: Path, rt: Runtime, *, resume: bool, progress: bool, data: TrainingData | None) -> TrainResult:
    if (out / LAST).exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if config.threads:
        torch.set_num_threads(config.threads)
    if rt.distributed and config.batch_size % rt.world_size:
        raise ConfigError(f"batch size {config.batch_size} is not divisible by the {rt.world_size} processes")
    torch.manual_seed(config.seed)
    data = data if data is not None else build_training_data(config)
    model = build_model(config, data.channels).to(rt.device)
    drop_last = rt.distributed  # equal shards on every rank
    steps_per_epoch = data.batches_per_epoch(config.batch_size, drop_last=drop_last)
    opt, sched = build_optimizer(config, model, config.epochs * steps_per_epoch)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume and (out / LAST).exists():
        meta = _check_resumable(out, config)
        ckpt = load_checkpoint(out / LAST, map_location=rt.device)
        model.load_state_dict(ckpt.model.state_dict())
        if ckpt.optimizer_state is not None:
            opt.load_state_dict(ckpt.optimizer_state)
        start_epoch, history = int(meta["epoch"]), list(meta["history"])
        sched.last_epoch = start_epoch * steps_per_epoch - 1
        sched.step()
    if rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"aedenoise": __version__, "world_size": rt.world_size, **config.to_json_dict()})

    noise = config.noise.build()
    net: nn.Module = model
    if rt.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    loss_fn = nn.L1Loss() if config.optim.loss == "l1" else nn.MSELoss()
    val_y, val_sigma = add_noise(data.val_x, noise, seed=config.seed + 7919)
    autocast = torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=config.amp and rt.device.type == "cuda")
    train_seconds = sum(h["seconds"] for h in history)

    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        net.train()
        g = epoch_generator(config.seed, epoch, rt.device)
        total, count = torch.zeros((), device=rt.device), 0
        batches = data.epoch_batches(epoch, config.batch_size, seed=config.seed, drop_last=drop_last, device=rt.device)
        for x in _progress(batches, steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", progress and rt.is_main):
            y, sigma = noisy_batch(noise, x, g)
            if rt.distributed:  # same global batch everywhere, keep this rank's share
                x, y = x.chunk(rt.world_size)[rt.rank], y.chunk(rt.world_size)[rt.rank]
                sigma = None if sigma is None else sigma.chunk(rt.world_size)[rt.rank]
            with autocast:
                loss = loss_fn(net(y, sigma).float(), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * x.shape[0]
            count += x.shape[0]
        val = _validate(model, data.val_x, val_y, val_sigma, loss_fn, config, rt)
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        record = {"epoch": epoch + 1, "train_loss": float(total) / max(count, 1), **val, "seconds": seconds, "lr": opt.param_groups[0]["lr"]}
        history.append(record)
        if rt.is_main:
            meta = {"epoch": epoch + 1, "history": history, "config": config.to_json_dict(), "noise": noise.describe()}
            save_checkpoint(out / LAST, model, metadata=meta, optimizer=opt)
            write_json(out / "history.json", history)
            print(f"epoch {epoch + 1}/{config.epochs}  loss {record['train_loss']:.5f}  val loss {val['val_loss']:.5f}  "
                  f"val PSNR {val['val_psnr']:.2f} dB  {seconds:.1f} s", flush=True)
        barrier(rt)

    if rt.is_main:
        meta = {"epoch": config.epochs, "history": history, "config": config.to_json_dict(), "noise": noise.describe(),
                "data": config.data.kind, "train_seconds": train_seconds}
        save_checkpoint(out / FINAL, model, metadata=meta)
    return TrainResult(out_dir=out, history=history, train_seconds=train_seconds, model=model.cpu())


@torch.inference_mode()
def _validate(model: Denoiser, x: Tensor, y: Tensor, sigma: Tensor | None, loss_fn: nn.Module, config: TrainConfig, rt: Runtime) -> dict[str, float]:
    x_hat = denoise_batched(model, y, sigma, batch_size=config.eval_batch_size, device=rt.device)
    return {"val_loss": float(loss_fn(x_hat, x)), "val_psnr": float(psnr(x_hat, x).mean())}


def _progress(it: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, leave=False, unit="batch", mininterval=0.5)
