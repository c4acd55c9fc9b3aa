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

Per-image results are cached as CSV files under ``cache_dir`` (rewritten
atomically after every image), so an interrupted run continues where it stopped
(:mod:`aedenoise.benchmark.cache`).

A method is a classical name, a checkpoint file, shipped weights, or ``auto``: the
shipped photo default for each dataset's channel count, the model ``aedenoise denoise``
picks without ``--model`` (:mod:`aedenoise.benchmark.methods`).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from aedenoise.atomic import write_text
from aedenoise.benchmark.cache import ImageResult, cache_name, example_path, read_cache, rows_to_csv, save_example
from aedenoise.benchmark.methods import AutoMethod, Method, method_for_dataset
from aedenoise.denoising import denoise_tiled, denoise_whole
from aedenoise.errors import AedenoiseError, ConfigError, DataError
from aedenoise.io import is_image_path, read_image
from aedenoise.metrics import SSIM_VARIANT, psnr, ssim
from aedenoise.models import Denoiser

DEFAULT_SIGMAS: tuple[float, ...] = (15.0, 25.0, 50.0)


@dataclass(frozen=True)
class Dataset:
    """An image folder: ``name`` is the folder name, ``paths`` its image files in sorted order."""

    name: str
    root: Path
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Skipped:
    dataset: str
    image: str
    error: str


@dataclass
class BenchmarkResult:
    """Everything a run produced: per-image rows, skipped files and the protocol settings."""

    rows: list[ImageResult]
    skipped: list[Skipped]
    protocol: dict[str, object]
    methods: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)

    def records(self) -> list[dict[str, object]]:
        """One record per method x dataset x sigma: means over images and seconds per megapixel."""
        out = []
        for m in self.methods:
            for d in self.datasets:
                for s in self.sigmas:
                    rows = [r for r in self.rows if r.method == m and r.dataset == d and r.sigma == s]
                    if rows:
                        out.append({"method": m, "weights": rows[0].weights, "dataset": d, "sigma": s,
                                    **_summary(rows)})
        return out

    def timing(self) -> list[dict[str, object]]:
        """Seconds per megapixel of each method over all its images (every dataset and sigma).

        One entry per method and weights: ``auto`` has one per default it used.
        ``n_images`` counts image x sigma calls.
        """
        out = []
        for m in self.methods:
            for w in dict.fromkeys(r.weights for r in self.rows if r.method == m):
                rows = [r for r in self.rows if r.method == m and r.weights == w]
                summary = _summary(rows)
                out.append({"method": m, "weights": w, "seconds_per_megapixel": summary["seconds_per_megapixel"],
                            "seconds": summary["seconds"], "megapixels": summary["megapixels"],
                            "n_images": summary["n_images"],
                            "threads": self.protocol["threads"], "device": self.protocol["device"]})
        return out

    def to_json(self) -> dict[str, object]:
        return {"results": self.records(), "timing": self.timing(), "protocol": self.protocol,
                "skipped": [asdict(s) for s in self.skipped]}


def _summary(rows: Sequence[ImageResult]) -> dict[str, object]:
    seconds = sum(r.seconds for r in rows)
    megapixels = sum(r.megapixels for r in rows)
    return {
        "psnr": sum(r.psnr for r in rows) / len(rows),
        "ssim": sum(r.ssim for r in rows) / len(rows),
        "seconds_per_megapixel": seconds / megapixels,
        "n_images": len(rows),
        "seconds": seconds,
        "megapixels": megapixels,
    }


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


def open_dataset(folder: str | Path, *, limit: int | None = None) -> Dataset:
    """The image files of ``folder`` (sorted by name; non-image files ignored), the first ``limit``."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; --data takes a folder of images")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")
    paths = sorted((p for p in root.iterdir() if p.is_file() and is_image_path(p)), key=lambda p: p.name)
    if not paths:
        raise DataError(f"{root}: no image files in this folder")
    name = root.resolve().name
    return Dataset(name=name, root=root, paths=tuple(paths[:limit] if limit else paths))


# --------------------------------------------------------------------------- running


def run_benchmark(
    methods: Sequence[Method | AutoMethod],
    datasets: Sequence[Dataset],
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    *,
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
    """Score every method on every dataset at every sigma (0-255 scale) under the protocol.

    ``cache_dir``: per-(method, dataset, sigma) CSV files; rows found there are reused
    (resume). ``examples_dir``: the 8-bit output of each dataset's first image is saved
    there as PNG for the figures. ``progress(row, cached)`` is called per image,
    ``warn(message)`` for every skipped image. A gray method on a color dataset (or the
    reverse), or ``auto`` on a dataset whose channel count has no shipped default, is
    an error raised before any work starts, or with ``mismatch="skip"`` a pair left out
    (with a ``warn``).
    """
    sigmas = [check_sigma(s) for s in sigmas]
    names, dnames = [m.name for m in methods], [d.name for d in datasets]
    for dup in {n for n in names if names.count(n) > 1}:
        raise ConfigError(f"two methods are both named {dup!r}; give the checkpoints different file names")
    for dup in {n for n in dnames if dnames.count(n) > 1}:
        raise ConfigError(f"two datasets are both named {dup!r} (the folder name); rename one folder")
    run = _Run(seed=seed, clip=clip, device=torch.device(device), tile=tile,
               cache_dir=None if cache_dir is None else Path(cache_dir),
               examples_dir=None if examples_dir is None else Path(examples_dir))
    result = BenchmarkResult([], [], run.protocol(), methods=names, datasets=dnames, sigmas=sigmas)
    loaded = [_load_images(d, result.skipped, warn) for d in datasets]
    pairs = []
    for method in methods:
        for d, images in zip(datasets, loaded):
            m, problem = method_for_dataset(method, d.name, images[0][1].shape[0])
            if problem and mismatch == "error":
                raise ConfigError(problem)
            if problem and warn:
                warn(f"{problem}: not run")
            if not problem:
                pairs.append((m, d, images))
    for m, d, images in pairs:
        m.denoiser.to(run.device).eval()
        for s in sigmas:
            result.rows += _run_group(m, d.name, images, s, run, progress)
    return result


@dataclass(frozen=True)
class _Run:
    seed: int
    clip: bool
    device: torch.device
    tile: int | None
    cache_dir: Path | None
    examples_dir: Path | None

    def protocol(self) -> dict[str, object]:
        return {
            "noise": "additive white Gaussian, sigma/255 on [0, 1] images, "
                     + ("clipped to [0, 1]" if self.clip else "not clipped"),
            "seed": self.seed, "clip": self.clip,
            "seed_scheme": "sha256('{seed}/{dataset}/{image}/{sigma:g}')[:8] little-endian & (2**63-1)",
            "output": "clamped to [0, 1], rounded to 8 bit",
            "psnr": "all pixels and channels, no border crop, mean over images",
            "ssim": SSIM_VARIANT, "threads": torch.get_num_threads(), "device": str(self.device),
            "tile": self.tile, "sigma_scale": "0-255",
        }


def _run_group(
    m: Method, dataset: str, images: list[tuple[str, Tensor]], sigma: float, run: _Run,
    progress: Callable[[ImageResult, bool], None] | None,
) -> list[ImageResult]:
    """One method on one dataset at one sigma, reusing and extending the cache."""
    cache = None if run.cache_dir is None else run.cache_dir / cache_name(m.key, dataset, sigma, run.seed, run.clip)
    done = read_cache(cache, m.name, dataset, sigma, weights=m.weights)
    rows = []
    for i, (image, x) in enumerate(images):
        example = None
        if i == 0 and run.examples_dir is not None:
            example = example_path(run.examples_dir, dataset, sigma, m.name, seed=run.seed, clip=run.clip)
        cached = image in done
        if not cached or (example is not None and not example.is_file()):
            row, x_hat = _score_one(m, dataset, image, x, sigma, run)
            if example is not None:
                save_example(x_hat, example)
            if not cached:
                done[image] = row
                if cache is not None:
                    write_text(cache, rows_to_csv(done.values()))
        row = done[image]
        if progress:
            progress(row, cached)
        rows.append(row)
    return rows


def _load_images(d: Dataset, skipped: list[Skipped], warn: Callable[[str], None] | None) -> list[tuple[str, Tensor]]:
    images = []
    for path in d.paths:
        try:
            x = read_image(path).data
        except AedenoiseError as err:
            skipped.append(Skipped(d.name, path.name, str(err)))
            if warn:
                warn(f"skipping {path}: {err}")
            continue
        images.append((path.name, x))
    if not images:
        raise DataError(f"{d.root}: none of its {len(d.paths)} image file(s) could be read")
    channels = {x.shape[0] for _, x in images}
    if len(channels) > 1:
        first = ", ".join(f"{next(n for n, x in images if x.shape[0] == c)}: {c} channel(s)" for c in sorted(channels))
        raise DataError(f"{d.root}: mixes gray and color images ({first}); benchmark them as separate folders")
    return images


def _score_one(m: Method, dataset: str, image: str, x: Tensor, sigma: float, run: _Run) -> tuple[ImageResult, Tensor]:
    y = noisy_image(x, sigma, dataset=dataset, image=image, seed=run.seed, clip=run.clip)
    x_hat, seconds = timed_call(m.denoiser, y, sigma / 255.0, device=run.device, tile=run.tile)
    x_hat = quantize_8bit(x_hat)
    xb = x.unsqueeze(0).float()
    row = ImageResult(
        method=m.name, dataset=dataset, image=image, sigma=sigma,
        psnr=float(psnr(x_hat, xb)[0]), ssim=float(ssim(x_hat, xb)[0]),
        seconds=seconds, megapixels=x.shape[-2] * x.shape[-1] / 1e6, weights=m.weights,
    )
    return row, x_hat


@torch.inference_mode()
def timed_call(
    denoiser: Denoiser, y: Tensor, sigma: float, *, device: torch.device | str = "cpu", tile: int | None = None
) -> tuple[Tensor, float]:
    """``(x_hat, seconds)``: ``denoiser(y, sigma)`` on the CPU result, and the wall time of that call.

    ``y`` [1, C, H, W]; ``sigma`` on the [0, 1] scale. Without ``tile`` the whole image
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
    "BenchmarkResult", "DEFAULT_SIGMAS", "Dataset", "Skipped", "check_sigma", "noise_seed", "noisy_image",
    "open_dataset", "quantize_8bit", "run_benchmark", "timed_call",
]
