"""The batch driver behind ``aedenoise denoise``: files, folders and globs in, files out.

:func:`expand_inputs` finds the images, :func:`plan_jobs` decides (and checks, before any
work) where each result goes, :func:`run_jobs` denoises them one by one;
:func:`denoise_files` is the three in a row. Rules: an input is never overwritten, an
existing output only with ``overwrite``, every output is written atomically, and a bad
file is reported and skipped while the others go on. The per-image work is
:mod:`aedenoise.denoising.image` (sigma, channels, tiling); the model for each image,
when none is given, :func:`aedenoise.denoising.selection.default_model_for`. A multi-page
TIFF (a z-stack, a time series) is denoised page by page into one multi-page TIFF,
streamed: one page in and one page out in memory at a time
(:func:`aedenoise.io.read_pages`, :class:`aedenoise.io.TiffPageWriter`).
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

import aedenoise.denoising.selection as selection
from aedenoise.denoising.image import Sigma, denoise_image, resolve_sigma
from aedenoise.errors import AedenoiseError, ConfigError, DataError
from aedenoise.io import (
    FORMATS_16BIT,
    IMAGE_SUFFIXES,
    ImageFile,
    TiffPageWriter,
    format_for_path,
    is_image_path,
    needs_bigtiff,
    page_count,
    read_image,
    read_pages,
    write_image,
)
from aedenoise.models import Denoiser

DENOISED_TAG = ".denoised"
"""Default output name: ``<stem>.denoised<ext>`` beside the input."""


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes; ``skip``: the output exists (``skip_existing``)."""

    input: Path
    output: Path
    skip: bool = False


@dataclass(frozen=True)
class FileResult:
    """What happened to one input: ``status`` is "written", "skipped" or "failed" (``message`` says why).

    ``sigma``: the ``[0, 1]``-scale noise level used, if the model reads one (for a
    multi-page TIFF, the mean over its pages: ``"auto"`` estimates it per page).
    ``pages``: the pages written (a multi-page TIFF), else 1.
    """

    input: Path
    output: Path
    status: Literal["written", "skipped", "failed"]
    seconds: float = 0.0
    message: str = ""
    sigma: float | None = None
    pages: int = 1


@dataclass(frozen=True)
class DenoiseSummary:
    """All :class:`FileResult` of a run, in input order, and its wall time in seconds."""

    results: tuple[FileResult, ...]
    seconds: float

    @property
    def written(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "written"]

    @property
    def skipped(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]


def _is_output_name(path: Path) -> bool:
    return Path(path.stem).suffix == DENOISED_TAG


def expand_inputs(
    inputs: Sequence[str | os.PathLike[str]], *, recursive: bool = False, exclude: str | os.PathLike[str] | None = None
) -> tuple[list[tuple[Path, Path]], int]:
    """``([(file, relative name)], n_left_out)`` for files, folders and glob patterns.

    Folders give their image files (by suffix, hidden names skipped; subfolders with
    ``recursive``), globs their matching image files; both leave out files named
    ``*.denoised.<ext>`` (earlier default outputs; name them explicitly to process them)
    and, in a recursive walk, the files inside the folder ``exclude`` (the output
    folder, when it lies below an input folder). Files named explicitly
    are always taken. Duplicates are dropped. Raises :class:`ConfigError` for an input
    that matches nothing, or when no image is found at all.
    """
    skip_dir = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    left_out = 0
    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_file():
            candidates = [(path, Path(path.name))]
        elif path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            candidates = [(p, p.relative_to(path)) for p in walk if p.is_file() and is_image_path(p)
                          and not any(part.startswith(".") for part in p.relative_to(path).parts)]
            if recursive and skip_dir is not None and skip_dir != path.resolve():
                candidates = [(p, rel) for p, rel in candidates if not p.resolve().is_relative_to(skip_dir)]
        elif any(ch in text for ch in "*?["):
            matches = [Path(p) for p in glob.glob(text, recursive=True)]
            candidates = [(p, Path(p.name)) for p in matches if p.is_file() and is_image_path(p)]
            if not candidates:
                raise ConfigError(f"{text}: no image files match this pattern")
        else:
            raise ConfigError(f"{text}: no such file or folder")
        for p, rel in sorted(candidates, key=lambda pr: str(pr[1])):
            if p is not path and _is_output_name(p):
                left_out += 1
                continue
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append((p, rel))
    if not found:
        raise ConfigError(f"no image files found in {', '.join(map(os.fspath, inputs))} "
                          f"(suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})")
    return found, left_out


def output_is_file(output: str | os.PathLike[str]) -> bool:
    """Whether ``output`` names one image file (it has an image suffix and is no folder)."""
    text = os.fspath(output)
    path = Path(text)
    return not (path.is_dir() or text.endswith(("/", os.sep)) or path.suffix.lower() not in IMAGE_SUFFIXES)


def plan_jobs(
    files: Sequence[tuple[Path, Path]],
    output: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    bit_depth: int | None = None,
) -> list[Job]:
    """Where each of ``files`` (from :func:`expand_inputs`) goes, checked before any work.

    ``output``: ``None`` writes ``<stem>.denoised<ext>`` beside each input; a path with an
    image suffix is one output file (one input only); anything else is a folder
    (created), where each output keeps its input's name (and relative folder). Raises
    :class:`ConfigError` if an output would be an input, two inputs share an output,
    16-bit output is asked of a format without it, or outputs exist and neither
    ``overwrite`` nor ``skip_existing`` is set.
    """
    if overwrite and skip_existing:
        raise ConfigError("choose one of --overwrite and --skip-existing")
    if output is not None and output_is_file(output):
        if len(files) != 1:
            raise ConfigError(f"output {os.fspath(output)} is one file but there are {len(files)} input images; "
                              f"give an output folder instead")
        outputs = [Path(output)]
    elif output is not None:
        outputs = [Path(output) / rel for _, rel in files]
    else:
        outputs = [p.with_name(p.stem + DENOISED_TAG + p.suffix) for p, _ in files]
    inputs = {p.resolve(): p for p, _ in files}
    input_ids = {(st.st_dev, st.st_ino): p for p in inputs.values() for st in [p.stat()]}
    jobs, targets, existing = [], {}, []
    for (src, _), dst in zip(files, outputs):
        key = dst.resolve()
        clash = inputs.get(key)
        if clash is None and dst.exists():
            st = dst.stat()
            clash = input_ids.get((st.st_dev, st.st_ino))
        if clash is not None:
            raise ConfigError(f"output {dst} is the input {clash}; refusing to overwrite an input: "
                              f"choose another output (-o)")
        if key in targets:
            raise ConfigError(f"inputs {targets[key]} and {src} would both be written to {dst}; "
                              f"denoise them into different folders")
        targets[key] = src
        if dst.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"{src}: no image format for the output {dst.name} (suffix {dst.suffix or 'none'!r}); "
                              f"name an output file with one of {', '.join(sorted(IMAGE_SUFFIXES))}")
        if bit_depth == 16 and format_for_path(dst) not in FORMATS_16BIT:
            raise ConfigError(f"{dst}: {format_for_path(dst)} cannot store 16-bit samples; use --bit-depth 8 "
                              f"or a .png/.tif output")
        skip = dst.exists() and skip_existing
        if dst.exists() and not (overwrite or skip_existing):
            existing.append(dst)
        jobs.append(Job(src, dst, skip))
    if existing:
        raise ConfigError(f"{len(existing)} output file(s) already exist (first: {existing[0]}); "
                          f"pass --overwrite to replace them or --skip-existing to keep them")
    return jobs


def _failure_types() -> tuple[type[BaseException], ...]:
    return (AedenoiseError, OSError, MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))


def run_jobs(
    jobs: Sequence[Job],
    *,
    model: Denoiser | None = None,
    sigma: Sigma = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    bit_depth: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
    backend: selection.Backend = "torch",
    default_models: dict[tuple[int, str], Denoiser] | None = None,
    max_pixels: int | None = None,
    noise: str | None = None,
) -> DenoiseSummary:
    """Denoise every job's input into its output; a failing file is recorded and skipped.

    ``model``: ``None`` uses :func:`aedenoise.denoising.selection.default_model_for` each image's
    channels and ``noise`` (``"camera"`` or ``"gaussian"``; ``None``:
    :func:`~aedenoise.denoising.selection.photo_noise` of ``sigma``), loaded once per
    ``(channels, noise)`` on ``backend`` and kept in ``default_models`` when given, so that a
    long-lived caller loads each only once. With camera noise and ``sigma="auto"`` a default
    that takes a level is given at least :data:`~aedenoise.denoising.selection.CAMERA_MIN_SIGMA`. ``max_pixels``: the
    decompression-bomb limit of :func:`aedenoise.io.read_image` (per page of a stack).
    ``sigma``: ``[0, 1]`` scale, ``"auto"`` or ``None``. ``bit_depth``: 8 or 16, default
    the input's (8 where the output format has no 16-bit). Alpha and the color profile
    are kept. ``on_result`` is called after each file.

    A multi-page TIFF input (:func:`aedenoise.io.page_count` > 1) needs a TIFF output: each
    page is read, denoised (its own model choice, sigma and tiles, as a one-page file) and
    appended to the output before the next is read; the output appears under its name
    only once every page is written, so a failing page fails the file and leaves nothing.
    """
    models: dict[tuple[int, str], Denoiser] = {} if default_models is None else default_models
    kind = noise or selection.photo_noise(sigma)

    def denoise(image: ImageFile) -> tuple[Tensor, float | None]:
        den, floor = model, 0.0
        if den is None:
            key = (image.channels, kind)
            if key not in models:
                spec = selection.default_model_for(image.channels, noise=kind)  # looked up here: the one hook
                models[key] = selection.load_denoiser(spec, device=device, backend=backend)
            den = models[key]
            floor = selection.camera_min_sigma(den, image.channels, kind)
        s = resolve_sigma(den, image.data, sigma, min_sigma=floor)
        x_hat = denoise_image(den, image.data, sigma=s, tile=tile, overlap=overlap, batch_size=batch_size,
                              device=device, progress=progress)
        return x_hat, s

    protect = [job.input for job in jobs]
    results = []
    start = time.perf_counter()
    for job in jobs:
        t0 = time.perf_counter()
        if job.skip:
            result = FileResult(job.input, job.output, "skipped", message="output exists")
        else:
            try:
                pages = page_count(job.input)
                if pages > 1:
                    s = _denoise_stack(job, pages, denoise, bit_depth=bit_depth, overwrite=overwrite,
                                       protect=protect, max_pixels=max_pixels)
                else:
                    s = _denoise_file(job, denoise, bit_depth=bit_depth, overwrite=overwrite, protect=protect,
                                      max_pixels=max_pixels)
                result = FileResult(job.input, job.output, "written", time.perf_counter() - t0, sigma=s, pages=pages)
            except _failure_types() as err:
                message = str(err) or type(err).__name__
                if isinstance(err, OSError) and not isinstance(err, AedenoiseError):
                    message = f"{err.filename or job.input}: {err.strerror or err}"
                result = FileResult(job.input, job.output, "failed", time.perf_counter() - t0, message=message)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return DenoiseSummary(tuple(results), time.perf_counter() - start)


_Denoise = Callable[[ImageFile], tuple[Tensor, float | None]]
"""One image's data to ``(x_hat, sigma used)``: the model choice, sigma and tiling of :func:`run_jobs`."""


def _denoise_file(job: Job, denoise: _Denoise, *, bit_depth: int | None, overwrite: bool, protect: list[Path],
                  max_pixels: int | None) -> float | None:
    """One image file; returns the noise level used."""
    image = read_image(job.input, max_pixels=max_pixels)
    x_hat, s = denoise(image)
    depth = bit_depth or (image.bit_depth if format_for_path(job.output) in FORMATS_16BIT else 8)
    alpha, icc = image.alpha, image.icc_profile
    del image  # free the input pixels before encoding (peak memory of large images)
    write_image(job.output, x_hat, alpha=alpha, bit_depth=depth, overwrite=overwrite, protect=protect,
                icc_profile=icc)
    return s


def _denoise_stack(job: Job, pages: int, denoise: _Denoise, *, bit_depth: int | None, overwrite: bool,
                   protect: list[Path], max_pixels: int | None) -> float | None:
    """A multi-page TIFF, page by page into one multi-page TIFF; returns the mean noise level used."""
    if format_for_path(job.output) != "TIFF":
        raise DataError(f"{job.input}: a TIFF of {pages} pages, but its output {job.output.name} holds one "
                        f"image; name a .tif output")
    levels: list[float | None] = []
    bigtiff = needs_bigtiff(job.input, bit_depth=bit_depth)
    with TiffPageWriter(job.output, overwrite=overwrite, protect=protect, bigtiff=bigtiff) as out:
        for image in read_pages(job.input, max_pixels=max_pixels):
            x_hat, s = denoise(image)
            alpha, icc, depth = image.alpha, image.icc_profile, bit_depth or image.bit_depth
            del image  # as for one file: the input page is freed before the output page is encoded
            out.write(x_hat, alpha=alpha, bit_depth=depth, icc_profile=icc)
            del x_hat, alpha  # ... and the output page before the next input page is decoded
            levels.append(s)
    used = [level for level in levels if level is not None]
    return sum(used) / len(used) if used else None


def denoise_files(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    model: Denoiser | None = None,
    sigma: Sigma = None,
    tile: int | None = None,
    device: torch.device | str = "cpu",
    bit_depth: int | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    recursive: bool = False,
    progress: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
    noise: str | None = None,
) -> DenoiseSummary:
    """:func:`expand_inputs`, :func:`plan_jobs` (errors before any work), then :func:`run_jobs`."""
    exclude = output if output is not None and not output_is_file(output) else None
    files, _ = expand_inputs(inputs, recursive=recursive, exclude=exclude)
    jobs = plan_jobs(files, output, overwrite=overwrite, skip_existing=skip_existing, bit_depth=bit_depth)
    return run_jobs(jobs, model=model, sigma=sigma, tile=tile, device=device, bit_depth=bit_depth,
                    overwrite=overwrite, progress=progress, on_result=on_result, noise=noise)
