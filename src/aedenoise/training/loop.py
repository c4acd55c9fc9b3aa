"""The training loop: one process, or many under ``torchrun`` (DistributedDataParallel).

Reads on one screen: build data, model and optimizer; resume if asked; for each
epoch draw global batches, add seeded noise (:mod:`aedenoise.training.inputs`), step on
the supervised loss or a self-supervised objective
(:mod:`aedenoise.training.selfsupervised`), validate, checkpoint. Rank 0
alone writes files. A run folder holds ``config.json`` (resolved configuration),
``last.safetensors`` (model + optimizer, for ``--resume``), ``model.safetensors``
(final weights) and ``history.json`` (per-epoch metrics); :func:`finish_run` adds
``metrics.json``, the per-image ``test_scores.csv`` and the report.

On the CPU the seed ``conv_ae`` trains and evaluates through its GEMM formulation
(:mod:`aedenoise.models.conv_ae_fast`: same parameters, same function, faster).
Optimizers: :mod:`aedenoise.training.optimizers`; greedy layer-wise pretraining:
:mod:`aedenoise.training.greedy`.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aedenoise.atomic import write_json, write_text
from aedenoise.benchmark.scoring import denoise_batched, evaluate_images
from aedenoise.config import TrainConfig, validate_config
from aedenoise.data.fashion_mnist import FashionMNIST, load_fashion_mnist, split_validation
from aedenoise.data.images import patch_training_data
from aedenoise.data.noisy import Levels, NoisyPatchData, fixed_noise_data, noisy_folder_data
from aedenoise.data.sources import TensorData, TrainingData, epoch_generator
from aedenoise.errors import AedenoiseError, ConfigError
from aedenoise.hardware import cpu_description, native_bf16
from aedenoise.metrics import SSIM_VARIANT, psnr
from aedenoise.models import Denoiser, create_model, load_checkpoint, model_entry, read_metadata, save_checkpoint
from aedenoise.models.conv_ae_choice import best_conv_ae
from aedenoise.models.conv_ae_fast import fast_conv_ae, kernel_threads
from aedenoise.pretrained import list_pretrained, pretrained_weights
from aedenoise.report.run import Examples, write_run_report
from aedenoise.training.distributed import Runtime, barrier, init_runtime, shutdown
from aedenoise.training.greedy import greedy_pretrain
from aedenoise.training.inputs import random_hflip  # noqa: F401 (its old home: benchmarks and tests import it from here)
from aedenoise.training.inputs import VAL_SEED_OFFSET, ValidationSet, step_inputs, validation_set
from aedenoise.training.losses import build_loss
from aedenoise.training.optimizers import build_optimizer, load_optimizer_state
from aedenoise.training.selfsupervised import Objective, build_objective, check_patch_size, level_source, objective_score
from aedenoise.version import __version__

LAST = "last.safetensors"
FINAL = "model.safetensors"


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict[str, float]]
    train_seconds: float
    model: Denoiser
    device: str = "cpu"
    threads: int = 1
    train_images: int = 0  # per epoch
    val_images: int = 0
    val_noisy_psnr: float | None = None  # mean PSNR of the noisy validation inputs
    load_average: float | None = None  # 1-minute load average when training started (other processes)
    fast_path: str | None = None  # the seed model's CPU path: "native" (compiled kernel), "parity", "nn"; None: other models
    fast_path_reason: str | None = None  # why that path (measured step times, or forced)
    amp: bool = False  # whether training ran under bfloat16 autocast (config.amp resolved)


def build_training_data(config: TrainConfig, *, levels: Levels | None = None) -> TrainingData | NoisyPatchData:
    """The data a config names: Fashion-MNIST (train minus validation), image-folder patches, or noisy patches.

    Noisy data (``noisy_folder``, ``fixed_noise``) carry a noise level per image: ``levels``
    says which (:mod:`aedenoise.data.noisy`; ``None``: none).
    """
    if config.data.kind == "fashion_mnist":
        fmnist = load_fashion_mnist(data_dir=config.data.data_dir)
        train_x, val_x = split_validation(fmnist.train_x, count=config.data.val_count, seed=config.seed)
        return TensorData(train_x=train_x, val_x=val_x)
    if config.data.kind == "noisy_folder":
        return noisy_folder_data(config.data, seed=config.seed, estimate_levels=levels == "estimated")
    if config.data.fixed_noise:
        return fixed_noise_data(config.data, config.noise.build(), seed=config.seed, levels=levels)
    return patch_training_data(config.data, seed=config.seed)


def build_model(config: TrainConfig, channels: int) -> Denoiser:
    args = dict(config.model.args)
    if "in_channels" in inspect.signature(model_entry(config.model.name).builder).parameters:
        args.setdefault("in_channels", channels)
    return create_model(config.model.name, **args)


def init_from_checkpoint(model: nn.Module, source: str | os.PathLike[str]) -> None:
    """Load the weights of ``source`` (a checkpoint file, or the name of shipped weights) into ``model``.

    The architectures must match, with one exception: a blind ``unet`` (``noise_map=False``)
    may start from the same ``unet`` with a noise-level map; the head's weights for the map
    channel are dropped, which is that network told ``sigma = 0``.
    """
    path = Path(source)
    if not path.is_file() and os.fspath(source) in list_pretrained():
        path = pretrained_weights(os.fspath(source)).path
    ckpt = load_checkpoint(path, map_location="cpu")
    mine, theirs = getattr(model, "arch", None), ckpt.model.arch
    state = ckpt.model.state_dict()
    if mine is not None and theirs is not None and _map_to_blind(theirs, mine):
        state["head.weight"] = state["head.weight"][:, : mine["args"]["in_channels"]]
    elif mine != theirs:
        raise ConfigError(f"init_weights {source}: architecture {theirs} does not match the configured model {mine}")
    model.load_state_dict(state)  # copies into the model's own tensors (any device)


def _map_to_blind(source: dict, target: dict) -> bool:
    """Whether ``target`` is ``source``, a ``unet`` with a noise map, made blind (``noise_map=False``)."""
    if source.get("name") != "unet" or target.get("name") != "unet":
        return False
    src, dst = dict(source.get("args", {})), dict(target.get("args", {}))
    return src.pop("noise_map", True) is True and dst.pop("noise_map", True) is False and src == dst


def choose_threads(requested: int | None) -> int:
    """CPU threads: ``requested``, else one per core left idle by other processes (at least 1).

    Idle cores are the available cores minus the 1-minute load average. On a busy
    machine two OpenMP threads spin-wait for each other at every small operation and
    run several times slower than one (docs/benchmarks.md), hence this default.
    """
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cores, round(cores - load)))


def prepare_out_dir(out: Path) -> None:
    """Create ``out`` and check that files can be written in it (one clear error if not)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise AedenoiseError(f"cannot write the run folder {out}: {err.strerror or err}; choose another --out") from None


def _check_resumable(out_dir: Path, config: TrainConfig) -> dict[str, Any]:
    meta = read_metadata(out_dir / LAST)
    saved = validate_config(dict(meta.get("config", {})), source=str(out_dir / LAST)).to_json_dict()  # settings added since: defaults
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
    data: TrainingData | NoisyPatchData | None = None,
) -> TrainResult:
    """Train ``config`` into ``out_dir``; returns the history and the trained model (on the CPU).

    ``resume=True`` continues from the last completed epoch in ``out_dir`` (same
    configuration, ``epochs`` may grow) and ends with the weights an uninterrupted run
    would have. ``data`` replaces the configured data (tests, custom sets).
    """
    out = Path(out_dir)
    rt = init_runtime(config.device)
    try:
        return _train(config, out, rt, resume=resume, progress=progress, data=data)
    finally:
        shutdown(rt)


def _train(config: TrainConfig, out: Path, rt: Runtime, *, resume: bool, progress: bool,
           data: TrainingData | NoisyPatchData | None) -> TrainResult:
    if (out / LAST).exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if rt.is_main:
        prepare_out_dir(out)
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if config.threads or rt.device.type == "cpu":
        torch.set_num_threads(choose_threads(config.threads))
    if rt.distributed and config.batch_size % rt.world_size:
        raise ConfigError(f"batch size {config.batch_size} is not divisible by the {rt.world_size} processes")
    torch.manual_seed(config.seed)
    level = "drawn"  # the level a model is told: what the noise drew (supervised), else see level_source
    if config.objective.self_supervised:  # what the model reads and fits, before loading data
        with torch.random.fork_rng(devices=[]):  # the seeded init below stays as it was
            probe = build_model(config, 1 if config.data.kind == "fashion_mnist" else config.data.channels)
        level = level_source(config.objective, probe)
        if config.data.kind != "fashion_mnist":
            check_patch_size(config.objective, probe, config.data.patch_size, what="data.patch_size")
    data = data if data is not None else build_training_data(config, levels=level if level in ("drawn", "estimated") else None)
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
            load_optimizer_state(opt, ckpt.optimizer_state)
        start_epoch, history = int(meta["epoch"]), list(meta["history"])
        if sched is not None:
            sched.last_epoch = start_epoch * steps_per_epoch - 1
            sched.step()
    if config.init_weights and start_epoch == 0:
        init_from_checkpoint(model, config.init_weights)
    if rt.is_main:
        write_json(out / "config.json", {"aedenoise": __version__, "world_size": rt.world_size, **config.to_json_dict()})

    noise = config.noise.build()
    objective = build_objective(config.objective)
    inputs, val = step_inputs(config, noise, level), validation_set(config, data, noise, level)
    if objective is not None:
        check_patch_size(config.objective, model, val.y.shape[-1], what="the patch size")
    greedy = list(read_metadata(out / LAST).get("greedy", [])) if start_epoch else []
    if config.greedy_epochs_per_stage and start_epoch == 0:  # layer-wise pretraining, fresh runs only
        greedy = greedy_pretrain(
            model, data, noise, epochs_per_stage=config.greedy_epochs_per_stage, batch_size=config.batch_size,
            optimizer=config.optim.name, lr=config.optim.lr, weight_decay=config.optim.weight_decay, seed=config.seed,
            loss="mse" if config.optim.loss == "psnr" else config.optim.loss, device=rt.device, rank=rt.rank, world_size=rt.world_size,
            log=(lambda m: print(m, flush=True)) if rt.is_main else None,
        )
    net, choice = (model, None) if rt.distributed else best_conv_ae(  # the seed conv_ae: its fastest CPU path here
        model, rt.device, mode="train", batch_size=config.batch_size, height=val.y.shape[-2], width=val.y.shape[-1])
    channels_last = config.channels_last and rt.device.type == "cpu" and choice is None  # not the seed's paths
    if channels_last:
        model.to(memory_format=torch.channels_last)  # in place: the optimizer keeps the same parameters
    # Validation runs on the training path; under torchrun on the kernel as before, not measured on every rank.
    val_net = fast_conv_ae(model, rt.device) if rt.distributed else net
    if rt.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    loss_fn = build_loss(config.optim.loss)
    amp = rt.device.type in ("cuda", "cpu") and (native_bf16(rt.device) if config.amp == "auto" else config.amp)
    autocast = torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=amp)
    train_seconds = sum(h["seconds"] for h in history) + sum(g["seconds"] for g in greedy)

    with kernel_threads(net):  # torch itself on one thread while the compiled kernel runs its own
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            net.train()
            g = epoch_generator(config.seed, epoch, rt.device)
            total, count = torch.zeros((), device=rt.device), 0
            batches = data.epoch_batches(epoch, config.batch_size, seed=config.seed, drop_last=drop_last, device=rt.device)
            for batch in _progress(batches, steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", progress and rt.is_main):
                step = inputs(batch, g)  # noisy y, the level sigma a model is told, clean x (supervised only)
                y, sigma, x = (_share(t, rt) for t in (step.y, step.sigma, step.x))  # this rank's share of the global batch
                if channels_last:
                    y = y.contiguous(memory_format=torch.channels_last)
                with autocast:
                    loss = loss_fn(net(y, sigma).float(), x) if objective is None else objective.loss(net, y, sigma, g)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                total += loss.detach() * y.shape[0]
                count += y.shape[0]
            if rt.distributed:  # the epoch's mean loss over every rank's share
                torch.distributed.all_reduce(total)
                count *= rt.world_size
            scores = _validate(val_net, val, objective, loss_fn, config, rt)
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            record = {"epoch": epoch + 1, "train_loss": float(total) / max(count, 1), **scores, "seconds": seconds, "lr": opt.param_groups[0]["lr"]}
            history.append(record)
            if rt.is_main:
                meta = {"epoch": epoch + 1, "history": history, "config": config.to_json_dict(), "noise": noise_text(config), "greedy": greedy}
                save_checkpoint(out / LAST, model, metadata=meta, optimizer=opt)
                write_json(out / "history.json", history)
                psnr_text = f"val PSNR {scores['val_psnr']:.2f} dB  " if val.x is not None else ""
                print(f"epoch {epoch + 1}/{config.epochs}  loss {record['train_loss']:.5f}  val loss {scores['val_loss']:.5f}  "
                      f"{psnr_text}{seconds:.1f} s", flush=True)
            barrier(rt)

    if rt.is_main:
        meta = {"epoch": config.epochs, "history": history, "config": config.to_json_dict(), "noise": noise_text(config),
                "data": config.data.kind, "train_seconds": train_seconds, "greedy": greedy}
        save_checkpoint(out / FINAL, model, metadata=meta)
    model.to(memory_format=torch.contiguous_format)
    return TrainResult(out_dir=out, history=history, train_seconds=train_seconds, model=model.cpu(),
                       device=str(rt.device), threads=torch.get_num_threads(), train_images=steps_per_epoch * config.batch_size,
                       val_images=int(val.y.shape[0]), val_noisy_psnr=val.noisy_psnr,
                       load_average=load_average, amp=amp,
                       fast_path=choice.path if choice else None, fast_path_reason=choice.reason if choice else None)


def finish_run(result: TrainResult, config: TrainConfig) -> dict[str, Any]:
    """Write ``metrics.json``, ``test_scores.csv`` (Fashion-MNIST) and the report of a trained run; returns the metrics.

    For Fashion-MNIST the model is scored on all test images, with the noise fixed by
    ``config.test_seed`` (the same noisy set for every model); ``metrics["test"]`` holds the
    means. The figures need matplotlib; without it ``metrics["report_note"]`` says so.
    """
    o, model = config.optim, result.model
    kernel_lr = f" (kernels {o.lr if o.muon_lr is None else o.muon_lr:g})" if o.name == "muon" else ""
    objective = f"{o.loss.upper()} loss" if not config.objective.self_supervised else f"self-supervised {config.objective.kind}"
    metrics: dict[str, Any] = {
        "model": {**model.arch, "parameters": sum(p.numel() for p in model.parameters())},
        "data": config.data.kind, "data_dir": config.data.data_dir,
        "noise": noise_text(config), "noise_config": config.noise.model_dump(mode="json"),
        "objective": config.objective.settings(),
        "epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed, "test_seed": config.test_seed,
        "optimizer": f"{o.name} lr {o.lr:g}{kernel_lr}{', cosine' if o.schedule == 'cosine' else ''}, {objective}",
        "device": result.device, "threads": result.threads, "cpu": cpu_description(), "torch": torch.__version__,
        "aedenoise": __version__,
        "fast_path": result.fast_path, "fast_path_reason": result.fast_path_reason, "amp": result.amp,
        "train_seconds": result.train_seconds, "load_average": result.load_average, "train_images": result.train_images, "val_images": result.val_images,
        "val_noisy_psnr": result.val_noisy_psnr, "ssim_variant": SSIM_VARIANT, "history": result.history,
    }
    examples = None
    if config.data.kind == "fashion_mnist":
        fm = load_fashion_mnist(data_dir=config.data.data_dir)
        ev = evaluate_images(model.to(result.device), fm.test_x, config.noise.build(), seed=config.test_seed,
                             batch_size=config.eval_batch_size, device=result.device)
        model.cpu()
        n = fm.test_x.shape[0]
        metrics["test"] = {"images": n, **ev.scores.means(), "seconds": ev.seconds, "images_per_s": n / ev.seconds,
                           "batch_size": config.eval_batch_size, "fast_path": ev.path.path if ev.path else None,
                           "fast_path_reason": ev.path.reason if ev.path else None}
        labels = fm.test_labels.tolist()
        metrics["grid_indices"] = [labels.index(k) for k in range(len(FashionMNIST.CLASSES)) if k in labels]
        _write_scores(result.out_dir / "test_scores.csv", ev.scores, [FashionMNIST.CLASSES[k] for k in labels])
        idx = metrics["grid_indices"]
        examples = Examples(clean=fm.test_x[idx], noisy=ev.y[idx], denoised=ev.x_hat[idx],
                            captions=[FashionMNIST.CLASSES[labels[i]] for i in idx])
    write_json(result.out_dir / "metrics.json", metrics)
    note = write_run_report(result.out_dir, metrics, examples)
    if note:
        metrics["report_note"] = note
    return metrics


def _write_scores(path: Path, scores: Any, classes: list[str]) -> None:
    lines = ["index,class,psnr,ssim,noisy_psnr,noisy_ssim"]
    for i, row in enumerate(zip(scores.psnr.tolist(), scores.ssim.tolist(), scores.noisy_psnr.tolist(), scores.noisy_ssim.tolist())):
        lines.append(f"{i},{classes[i]}," + ",".join(f"{v:.6f}" for v in row))
    write_text(path, "\n".join(lines) + "\n")


def noise_text(config: TrainConfig) -> str:
    """The noise a run trains on, in words (the noisy images' own for ``noisy_folder``)."""
    if config.data.kind == "noisy_folder":
        return "the images' own (noisy_folder: no noise added)"
    described = config.noise.build().describe()
    return f"{described}, one fixed copy per image" if config.data.fixed_noise else described


def _share(t: Tensor | None, rt: Runtime) -> Tensor | None:
    """Under torchrun, this rank's slice of a global batch tensor; else ``t``."""
    return t.chunk(rt.world_size)[rt.rank] if rt.distributed and t is not None else t


@torch.inference_mode()
def _validate(model: nn.Module, val: ValidationSet, objective: Objective | None, loss_fn: nn.Module, config: TrainConfig,
              rt: Runtime) -> dict[str, float]:
    """``val_loss``: the supervised loss, or the objective's validation score on fixed draws; ``val_psnr``
    where clean images exist (NaN for noisy-only data)."""
    x_hat = denoise_batched(model, val.y, val.sigma, batch_size=config.eval_batch_size, device=rt.device) if val.x is not None else None
    if objective is None:
        return {"val_loss": float(loss_fn(x_hat, val.x)), "val_psnr": float(psnr(x_hat, val.x).mean())}
    score = objective_score(objective, model, val.y, val.sigma, seed=config.seed + VAL_SEED_OFFSET,
                            batch_size=config.eval_batch_size, device=rt.device)
    return {"val_loss": score, "val_psnr": float("nan") if x_hat is None else float(psnr(x_hat, val.x).mean())}


def _progress(it: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, leave=False, unit="batch", mininterval=0.5)
