"""Which CPU path runs the seed ``conv_ae``: chosen by measurement on the machine it runs on.

Three paths compute the same function (:mod:`aedenoise.models.conv_ae_fast`): the compiled
kernel (``"native"``), the matrix-product formulation (``"parity"``) and the plain ``nn``
layers (``"nn"``). Which is fastest depends on the CPU (its vector registers, cache sizes),
the torch build, the thread count and the batch, so :func:`choose_conv_ae_path` times a
few steps of each on first use (one to three seconds) and keeps the answer in
``$XDG_CACHE_HOME/aedenoise/paths/conv_ae.json``, keyed by the CPU (model name and feature
flags), the torch version, the kernel build, the thread count, the image size, the batch
size (rounded up to a power of two) and whether it is a training step or inference. The
paths are preferred in the order kernel, matrix products, ``nn`` layers; the first one
within :data:`MARGIN` of the fastest measured wins, so a near tie does not flip the choice
from one measurement to the next (the paths agree only to float rounding), and the chosen
path is never slower than the ``nn`` layers by more than that margin. Batches too small to
be worth a measurement (under :data:`MIN_PIXELS` pixels) take the first available path.

``AEDENOISE_CONV_AE_PATH=native|parity|nn`` forces a path (``auto``, the default, measures);
``AEDENOISE_NATIVE=0`` leaves the kernel out.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from aedenoise.atomic import write_json
from aedenoise.errors import AedenoiseError, ConfigError
from aedenoise.hardware import cpu_description, cpu_feature_line
from aedenoise.models.conv_ae import ConvAE
from aedenoise.models.conv_ae_fast import FastConvAE, kernel_threads
from aedenoise.paths import user_cache_dir

ENV_PATH = "AEDENOISE_CONV_AE_PATH"
PATHS = ("native", "parity", "nn")
LABELS = {"native": "compiled kernel", "parity": "matrix products", "nn": "nn layers"}
Mode = Literal["train", "infer"]
ROUNDS = 3  # timed rounds per path, alternating between paths; the median round counts
MARGIN = 0.10  # a later path in PATHS must be this much faster than an earlier one to be chosen
MIN_PIXELS = 8 * 28 * 28  # smaller batches are not worth a measurement


@dataclass(frozen=True)
class PathChoice:
    """The path that runs (``"native"``, ``"parity"`` or ``"nn"``), why, and the step times it was chosen on."""

    path: str
    reason: str
    ms_per_step: dict[str, float] = field(default_factory=dict)


def cache_file() -> Path:
    return user_cache_dir("paths") / "conv_ae.json"


def _channels(model: ConvAE) -> tuple[int, ...]:
    e, d = model.encoder, model.decoder
    return (model.in_channels, e[0].out_channels, e[2].out_channels, d[0].out_channels, d[2].out_channels)


def _net(model: ConvAE, path: str) -> nn.Module:
    return model if path == "nn" else FastConvAE(model, native=path == "native")


def _available(model: ConvAE) -> list[str]:
    native = FastConvAE(model).path == "native"  # False without a compiler or with AEDENOISE_NATIVE=0
    return [p for p in PATHS if p != "native" or native]


def _key(model: ConvAE, mode: Mode, shape: tuple[int, ...], threads: int) -> str:
    lib = FastConvAE(model)._library()
    parts = (mode, repr(_channels(model)), "x".join(map(str, shape)), f"threads {threads}", f"torch {torch.__version__}",
             lib.path.name if lib is not None else "no kernel", cpu_description(), cpu_feature_line())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def _read_cache() -> dict[str, dict]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _time_steps(model: ConvAE, path: str, mode: Mode, y: torch.Tensor, steps: int, *, warm_up: bool = False) -> float:
    """Seconds per step of ``path`` (a forward pass, plus MSE and backward when training)."""
    net = _net(model, path)
    target = torch.rand_like(y)

    def step() -> None:
        if mode == "infer":
            with torch.inference_mode():
                net(y)
            return
        loss = nn.functional.mse_loss(net(y), target)
        model.zero_grad(set_to_none=True)
        loss.backward()

    with kernel_threads(net) if mode == "train" else contextlib.nullcontext():
        if warm_up:
            step()  # first calls allocate and build
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - t0) / steps


def measure(model: ConvAE, *, mode: Mode, batch_size: int, height: int = 28, width: int = 28,
            paths: list[str] | None = None) -> dict[str, float]:
    """Median milliseconds per step of each path in ``paths`` (default: those available here).

    A copy of ``model`` runs on a random batch ``[batch_size, C, height, width]``, the paths
    taking turns for :data:`ROUNDS` rounds; each round runs enough steps for about 50 ms.
    """
    probe = copy.deepcopy(model).float().cpu()
    y = torch.rand(batch_size, probe.in_channels, height, width, generator=torch.Generator().manual_seed(0))
    paths = paths or _available(probe)
    steps = {p: max(1, round(0.05 / max(_time_steps(probe, p, mode, y, 1, warm_up=True), 1e-5))) for p in paths}
    rounds: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(ROUNDS):
        for p in paths:
            rounds[p].append(_time_steps(probe, p, mode, y, steps[p]))
    return {p: statistics.median(r) * 1e3 for p, r in rounds.items()}


def choose_conv_ae_path(model: ConvAE, *, mode: Mode, batch_size: int, height: int = 28, width: int = 28,
                        threads: int | None = None) -> PathChoice:
    """The fastest path for ``model`` on this machine (measured once, then cached), or the one forced.

    ``threads``: the CPU threads it will run with (default ``torch.get_num_threads()``); the
    measurement runs with them.
    """
    available = _available(model)
    forced = os.environ.get(ENV_PATH, "auto").strip().lower() or "auto"
    if forced != "auto":
        if forced not in PATHS:
            raise ConfigError(f"{ENV_PATH}={forced!r}: use auto, native, parity or nn")
        if forced not in available:
            raise ConfigError(f"{ENV_PATH}=native, but the compiled kernel is unavailable here "
                              f"(no C++ compiler, AEDENOISE_NATIVE=0, or a failed build)")
        return PathChoice(forced, f"forced by {ENV_PATH}={forced}")
    if len(available) == 1:
        return PathChoice(available[0], "the only path available")
    if batch_size * height * width < MIN_PIXELS:
        return PathChoice(available[0], f"a batch of {batch_size} at {height}x{width} is too small to measure; "
                                        f"the first path available")
    threads = threads or torch.get_num_threads()
    bucket = 1 << max(0, math.ceil(math.log2(batch_size)))  # batches of 17..32 share the measurement at 32
    shape = (bucket, model.in_channels, height, width)
    key = _key(model, mode, shape, threads)
    if key in _CHOSEN:
        return _CHOSEN[key]
    _CHOSEN[key] = choice = _cached_or_measured(model, key, mode, shape, threads, available)
    return choice


_CHOSEN: dict[str, PathChoice] = {}  # this process's choices, by cache key


def _cached_or_measured(model: ConvAE, key: str, mode: Mode, shape: tuple[int, ...], threads: int,
                        available: list[str]) -> PathChoice:
    batch_size, _, height, width = shape
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and cached.get("path") in available and isinstance(cached.get("ms_per_step"), dict):
        times = {k: float(v) for k, v in cached["ms_per_step"].items()}
        return PathChoice(cached["path"], _reason(cached["path"], times, mode, batch_size, threads,
                                                  when=f"measured {cached.get('measured', '?')}, cached"), times)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = measure(model, mode=mode, batch_size=batch_size, height=height, width=width, paths=available)
    finally:
        torch.set_num_threads(before)
    path = pick(times)
    data = _read_cache()
    data[key] = {"path": path, "ms_per_step": times, "mode": mode, "shape": list(shape), "threads": threads,
                 "torch": torch.__version__, "measured": time.strftime("%Y-%m-%d")}
    try:
        write_json(cache_file(), data)
    except (OSError, AedenoiseError):
        pass  # a read-only or missing cache folder: measure again next time
    return PathChoice(path, _reason(path, times, mode, batch_size, threads, when="measured now"), times)


def pick(ms_per_step: dict[str, float]) -> str:
    """The first path in :data:`PATHS` order measured within :data:`MARGIN` of the fastest."""
    fastest = min(ms_per_step.values())
    return next(p for p in PATHS if p in ms_per_step and ms_per_step[p] <= fastest * (1 + MARGIN))


def _reason(path: str, times: dict[str, float], mode: Mode, batch_size: int, threads: int, *, when: str) -> str:
    what = "training step" if mode == "train" else "inference batch"
    listed = ", ".join(f"{LABELS[p]} {t:.2f} ms" for p, t in sorted(times.items(), key=lambda kv: kv[1]))
    return (f"measured on this CPU per {what} of {batch_size} at {threads} thread(s): {listed} ({when}; "
            f"the first of kernel, matrix products, nn layers within {MARGIN:.0%} of the fastest)")


def best_conv_ae(model: nn.Module, device: torch.device | str = "cpu", *, mode: Mode, batch_size: int,
                 height: int = 28, width: int = 28) -> tuple[nn.Module, PathChoice | None]:
    """``(net, choice)``: ``model`` on its fastest CPU path for a plain ``ConvAE`` on the CPU, else ``(model, None)``.

    ``net`` shares ``model``'s parameters; for ``"nn"`` it is ``model`` itself.
    """
    if type(model) is not ConvAE or torch.device(device).type != "cpu":
        return model, None
    choice = choose_conv_ae_path(model, mode=mode, batch_size=batch_size, height=height, width=width)
    return _net(model, choice.path), choice
