"""The benchmark protocol over image folders: methods x datasets x noise levels.

The protocol (``docs/benchmark-protocol.md`` is the full statement) is the
standard DnCNN/KAIR one:

* a clean image ``x`` is read as float32 ``[C, H, W]`` in ``[0, 1]`` (8-bit / 255);
* white Gaussian noise of standard deviation ``sigma / 255`` is added to ``x``
  **without clipping** (``clip=True`` clamps ``y`` to ``[0, 1]``), drawn from a
  CPU ``torch.Generator`` seeded by :func:`noise_seed` (dataset name, image file
  name, sigma, run seed), so every method sees the identical noisy image;
* the method gets ``y`` ``[1, C, H, W]`` and ``sigma`` (a float on the [0, 1] scale);
  its output is clamped to ``[0, 1]`` and rounded to 8 bit (:func:`quantize_8bit`);
* PSNR over all pixels and channels and SSIM (:data:`aedenoise.metrics.SSIM_VARIANT`)
  against ``x``, no border crop; the dataset score is the mean over its images;
* time: wall-clock seconds of the method call per image, summed and divided by
  the total megapixels (``seconds_per_megapixel``), with the thread count recorded.

On a paired real-noise dataset (:mod:`aedenoise.benchmark.datasets`) no noise is added:
the method gets the real noisy photo and, for each level of ``paired_sigmas``, either
that level (0-255, divided by 255) or, for ``"auto"``, the estimate
:func:`aedenoise.denoising.image.resolve_sigma` makes for ``aedenoise denoise --sigma auto``
(``None`` for models that ignore sigma); the noisy photo itself is scored as the
method ``"noisy"``. Rows carry ``sigma = "real"`` and ``sigma_given``.

Per-image results are cached as CSV files under ``cache_dir`` (rewritten
atomically after every image), so an interrupted run continues where it stopped
(:mod:`aedenoise.benchmark.cache`).

A method is a classical name, a checkpoint file, shipped weights, or ``auto``: the
shipped photo default for each dataset's channel count and kind of noise, the model
``aedenoise denoise`` picks without ``--model`` (:mod:`aedenoise.benchmark.methods`).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from aedenoise.atomic import write_text
from aedenoise.benchmark.cache import ImageResult, Level, cache_name, example_path, read_cache, rows_to_csv, save_example
from aedenoise.benchmark.datasets import NOISY, REAL, Dataset, Sample, load_samples
from aedenoise.benchmark.methods import AutoMethod, Method, method_for_dataset
from aedenoise.benchmark.results import BenchmarkResult
from aedenoise.denoising import denoise_tiled, denoise_whole, resolve_sigma
from aedenoise.errors import ConfigError
from aedenoise.metrics import SSIM_VARIANT, psnr, ssim
from aedenoise.models import Denoiser

AUTO_SIGMA = "auto"
"""A level given on paired datasets: estimated per image, as ``aedenoise denoise --sigma auto`` does."""

DEFAULT_SIGMAS: tuple[float, ...] = (15.0, 25.0, 50.0)


# --------------------------------------------------------------------------- protocol pieces


def check_sigma(sigma: float) -> float:
    """Validate a 0-255 noise level: finite and in ``(0, 255]``; returns it as float."""
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and 0 < sigma <= 255):
        raise ConfigError(f"noise level sigma must be in (0, 255] on the 0-255 scale (got {sigma!r})")
    return float(sigma)


def noise_seed(dataset: str, image: str, sigma: float, *, seed: int = 0) -> int:
    """The generator seed for one noisy image: a stable hash, the same on every run and machine.

    ``sha256(f"{seed}/{dataset}/{image}/{sigma:g}")``, first 8 bytes as a little-endian
    integer, top bit cleared; ``image`` is the file name, ``sigma`` on the 0-255 scale.
    """
    digest = hashlib.sha256(f"{seed}/{dataset}/{image}/{sigma:g}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def noisy_image(x: Tensor, sigma: float, *, dataset: str, image: str, seed: int = 0, clip: bool = False) -> Tensor:
    """The protocol's noisy input ``y`` [1, C, H, W] for clean ``x`` [C, H, W] in [0, 1].

    ``y = x + sigma/255 * n`` with ``n = torch.randn(1, C, H, W)`` float32 from a CPU
    generator seeded with :func:`noise_seed`; unclipped unless ``clip``.
    """
    g = torch.Generator().manual_seed(noise_seed(dataset, image, sigma, seed=seed))
    x = x.detach().to("cpu", torch.float32).unsqueeze(0)
    n = torch.randn(x.shape, generator=g, dtype=torch.float32)
    y = x + (sigma / 255.0) * n
    return y.clamp(0, 1) if clip else y


def quantize_8bit(x: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to the nearest 8-bit level: ``round(x * 255) / 255``."""
    return torch.round(x.float().clamp(0, 1) * 255) / 255


def check_paired_sigma(sigma: Level) -> Level:
    """A level to give methods on paired datasets: ``"auto"`` or a 0-255 level (:func:`check_sigma`)."""
    return AUTO_SIGMA if sigma == AUTO_SIGMA else check_sigma(sigma)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- running


def run_benchmark(
    methods: Sequence[Method | AutoMethod],
    datasets: Sequence[Dataset],
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    *,
    paired_sigmas: Sequence[Level] = (AUTO_SIGMA,),
    seed: int = 0,
    clip: bool = False,
    device: torch.device | str = "cpu",
    tile: int | None = None,
    cache_dir: str | Path | None = None,
    examples_dir: str | Path | None = None,
    progress: Callable[[ImageResult, bool], None] | None = None,
    warn: Callable[[str], None] | None = None,
    mismatch: Literal["error", "skip"] = "error",
) -> BenchmarkResult:
    """Score every method on every dataset at every noise level under the protocol.

    Clean folders: noise of each level of ``sigmas`` (0-255) is added. Paired datasets
    (``Dataset.paired``): the real noisy images as they are, the methods told each level
    of ``paired_sigmas`` (``"auto"``: estimated per image; or 0-255), plus the row
    ``"noisy"`` (the noisy input, time 0). ``cache_dir``: per-(method, dataset, level)
    CSV files; rows found there are reused (resume). ``examples_dir``: the 8-bit output
    of each dataset's first image is saved there as PNG for the figures.
    ``progress(row, cached)`` is called per image, ``warn(message)`` for every file left
    out. A gray method on a color dataset (or the reverse), or ``auto`` on a dataset
    whose channel count has no shipped default, is an error raised before any work
    starts, or with ``mismatch="skip"`` a pair left out (with a ``warn``).
    """
    any_paired, any_clean = any(d.paired for d in datasets), any(not d.paired for d in datasets)
    sigmas = [check_sigma(s) for s in sigmas]
    paired_sigmas = list(dict.fromkeys(check_paired_sigma(s) for s in paired_sigmas))
    if any_clean and not sigmas:
        raise ConfigError("no noise level for the clean-image folders: give --sigma with a 0-255 number")
    if any_paired and not paired_sigmas:
        raise ConfigError("no level to give the methods on the paired folders: give --sigma (0-255 or auto)")
    names, dnames = [m.name for m in methods], [d.name for d in datasets]
    for dup in {n for n in names if names.count(n) > 1}:
        raise ConfigError(f"two methods are both named {dup!r}; give the checkpoints different file names")
    for dup in {n for n in dnames if dnames.count(n) > 1}:
        raise ConfigError(f"two datasets are both named {dup!r} (the folder name); rename one folder")
    if any_paired and NOISY in names:
        raise ConfigError(f"a method is named {NOISY!r}, the name of the noisy-input row of paired datasets; "
                          f"rename the checkpoint")
    run = _Run(seed=seed, clip=clip, device=torch.device(device), tile=tile,
               cache_dir=None if cache_dir is None else Path(cache_dir),
               examples_dir=None if examples_dir is None else Path(examples_dir))
    result = BenchmarkResult([], [], run.protocol(paired=any_paired), methods=[NOISY] * any_paired + names,
                             datasets=dnames, sigmas=sigmas if any_clean else [],
                             paired=[d.name for d in datasets if d.paired],
                             paired_sigmas=paired_sigmas if any_paired else [])
    loaded = [load_samples(d, result.skipped, warn) for d in datasets]
    pairs = []
    for method in methods:
        for d, samples in zip(datasets, loaded):
            noise = "camera" if d.paired else "gaussian"
            m, problem = method_for_dataset(method, d.name, samples[0].clean.shape[0], noise=noise)
            if problem and mismatch == "error":
                raise ConfigError(problem)
            if problem and warn:
                warn(f"{problem}: not run")
            if not problem:
                pairs.append((m, d, samples))
    for d, samples in zip(datasets, loaded):
        if d.paired:
            result.rows += [_noisy_row(d.name, s, progress) for s in samples]
    for m, d, samples in pairs:
        m.denoiser.to(run.device).eval()
        levels = [(REAL, g) for g in paired_sigmas] if d.paired else [(s, s) for s in sigmas]
        for sigma, given in levels:
            result.rows += _run_group(m, d.name, samples, sigma, given, run, progress)
    return result


@dataclass(frozen=True)
class _Run:
    seed: int
    clip: bool
    device: torch.device
    tile: int | None
    cache_dir: Path | None
    examples_dir: Path | None
    estimates: dict[tuple[str, str, int], float] = field(default_factory=dict, compare=False)

    def protocol(self, *, paired: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "noise": "additive white Gaussian, sigma/255 on [0, 1] images, "
                     + ("clipped to [0, 1]" if self.clip else "not clipped"),
            "seed": self.seed, "clip": self.clip,
            "seed_scheme": "sha256('{seed}/{dataset}/{image}/{sigma:g}')[:8] little-endian & (2**63-1)",
            "output": "clamped to [0, 1], rounded to 8 bit",
            "psnr": "all pixels and channels, no border crop, mean over images",
            "ssim": SSIM_VARIANT, "threads": torch.get_num_threads(), "device": str(self.device),
            "tile": self.tile, "sigma_scale": "0-255",
        }
        if paired:
            out["real_noise"] = ("paired folders (noisy/ and clean/, same file names): the noisy image is scored as "
                                 "it is, no noise added (sigma 'real'); methods are told sigma_given: 'auto' = "
                                 "aedenoise.noise.estimate_sigma on a central crop of at most 512 px, as 'aedenoise "
                                 "denoise --sigma auto' (outside the timed call; method auto, the camera preset, is "
                                 "told at least aedenoise.denoising.selection.CAMERA_MIN_SIGMA), or a given 0-255 "
                                 "level / 255")
        return out

    def level(self, m: Method, dataset: str, image: str, y: Tensor, sigma: Level, given: Level) -> float | None:
        """The ``[0, 1]``-scale level ``m`` is told for noisy ``y`` [1, C, H, W] (``None``: it ignores sigma)."""
        if sigma != REAL or given != AUTO_SIGMA:
            return float(given) / 255.0
        if not getattr(m.denoiser, "uses_sigma", False):
            return None
        # One estimate per image, shared by every method that reads it the same way: on the image, or on its
        # pixel-shuffled sub-images at the model's stride (a model adapted to correlated noise).
        key = (dataset, image, getattr(m.denoiser, "shuffle_stride", 1))
        if key not in self.estimates:
            self.estimates[key] = resolve_sigma(m.denoiser, y[0], AUTO_SIGMA)
        return max(self.estimates[key], m.min_sigma)


def _run_group(
    m: Method, dataset: str, samples: list[Sample], sigma: Level, given: Level, run: _Run,
    progress: Callable[[ImageResult, bool], None] | None,
) -> list[ImageResult]:
    """One method on one dataset at one condition (``sigma``, ``given``), reusing and extending the cache."""
    cache = None if run.cache_dir is None else run.cache_dir / cache_name(
        m.key, dataset, sigma, run.seed, run.clip, sigma_given=given)
    done = read_cache(cache, m.name, dataset, sigma, weights=m.weights, sigma_given=given)
    rows = []
    for i, sample in enumerate(samples):
        example = None
        if i == 0 and run.examples_dir is not None:
            example = example_path(run.examples_dir, dataset, sigma, m.name, seed=run.seed, clip=run.clip,
                                   sigma_given=given)
        cached = sample.image in done
        if not cached or (example is not None and not example.is_file()):
            row, x_hat = _score_one(m, dataset, sample, sigma, given, run)
            if example is not None:
                save_example(x_hat, example)
            if not cached:
                done[sample.image] = row
                if cache is not None:
                    write_text(cache, rows_to_csv(done.values()))
        row = done[sample.image]
        if progress:
            progress(row, cached)
        rows.append(row)
    return rows


def _noisy_row(dataset: str, sample: Sample, progress: Callable[[ImageResult, bool], None] | None) -> ImageResult:
    """The noisy image of a pair scored against its clean reference as it is (time 0, not cached: no work)."""
    x, y = sample.clean.unsqueeze(0).float(), sample.noisy.unsqueeze(0).float()  # type: ignore[union-attr]
    row = ImageResult(method=NOISY, dataset=dataset, image=sample.image, sigma=REAL,
                      psnr=float(psnr(y, x)[0]), ssim=float(ssim(y, x)[0]), seconds=0.0,
                      megapixels=x.shape[-2] * x.shape[-1] / 1e6, weights=None, sigma_given=None)
    if progress:
        progress(row, False)
    return row


def _score_one(
    m: Method, dataset: str, sample: Sample, sigma: Level, given: Level, run: _Run
) -> tuple[ImageResult, Tensor]:
    x = sample.clean
    if sample.noisy is not None:
        y = sample.noisy.unsqueeze(0).float()
    else:
        y = noisy_image(x, float(sigma), dataset=dataset, image=sample.image, seed=run.seed, clip=run.clip)
    level = run.level(m, dataset, sample.image, y, sigma, given)
    x_hat, seconds = timed_call(m.denoiser, y, level, device=run.device, tile=run.tile)
    x_hat = quantize_8bit(x_hat)
    xb = x.unsqueeze(0).float()
    row = ImageResult(
        method=m.name, dataset=dataset, image=sample.image, sigma=sigma,
        psnr=float(psnr(x_hat, xb)[0]), ssim=float(ssim(x_hat, xb)[0]),
        seconds=seconds, megapixels=x.shape[-2] * x.shape[-1] / 1e6, weights=m.weights, sigma_given=given,
    )
    return row, x_hat


@torch.inference_mode()
def timed_call(
    denoiser: Denoiser, y: Tensor, sigma: float | None, *, device: torch.device | str = "cpu", tile: int | None = None
) -> tuple[Tensor, float]:
    """``(x_hat, seconds)``: ``denoiser(y, sigma)`` on the CPU result, and the wall time of that call.

    ``y`` [1, C, H, W]; ``sigma`` on the [0, 1] scale (``None``: the model ignores it). Without ``tile`` the whole image
    goes in at once, reflect-padded to a multiple of ``denoiser.size_multiple`` and
    cropped back (:func:`aedenoise.denoising.tiling.denoise_whole`); with ``tile`` it goes through
    :func:`aedenoise.denoising.tiling.denoise_tiled`.
    """
    device = torch.device(device)
    y = y.to(device)
    _sync(device)
    start = time.perf_counter()
    if tile is not None:
        x_hat = denoise_tiled(denoiser, y, sigma, tile=tile, device=device)
    else:
        x_hat = denoise_whole(denoiser, y, sigma, device=device)
    _sync(device)
    seconds = time.perf_counter() - start
    return x_hat.float().cpu(), seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

__all__ = [
    "AUTO_SIGMA", "DEFAULT_SIGMAS", "check_paired_sigma", "check_sigma", "noise_seed", "noisy_image", "quantize_8bit",
    "run_benchmark", "timed_call",
]
