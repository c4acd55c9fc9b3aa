"""Where a benchmark run keeps its per-image results: the resume cache and example outputs.

* :class:`ImageResult`: one method on one image at one noise level.
* The resume cache: one CSV file per (method key, dataset, sigma, seed, clip) under the
  run's ``cache_dir`` (:func:`cache_name`; on a paired real-noise dataset per (method key,
  dataset, level given to the method)), rewritten atomically after every image
  (:func:`rows_to_csv`) and read back by :func:`read_cache`, so an interrupted run
  continues where it stopped with bit-identical means.
* Example outputs: the 8-bit output of each dataset's first image per method, saved as
  PNG (:func:`example_path`, :func:`save_example`) for the report's figures.

:mod:`aedenoise.benchmark.protocol` runs the protocol.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Iterable

from torch import Tensor

from aedenoise.io import write_image

CSV_FIELDS = ("method", "dataset", "image", "sigma", "psnr", "ssim", "seconds", "megapixels", "weights",
              "sigma_given")

Level = float | str
"""A noise level on the 0-255 scale, or a word: ``"real"`` (a paired dataset's own noise), ``"auto"`` (estimated)."""


@dataclass(frozen=True)
class ImageResult:
    """One method on one image at one noise level; ``seconds`` of the call.

    ``sigma``: the noise added, on the 0-255 scale, or ``"real"`` on a paired dataset (the
    photo's own noise). ``sigma_given``: the level the method was told: on synthetic noise
    ``sigma`` itself, on a paired dataset ``"auto"`` (estimated per image) or a 0-255
    number; ``None`` for the noisy input row. ``weights``: the shipped weights that
    produced it (see :class:`aedenoise.benchmark.methods.Method`), ``None`` for classical
    methods and checkpoint files.
    """

    method: str
    dataset: str
    image: str
    sigma: Level
    psnr: float
    ssim: float
    seconds: float
    megapixels: float
    weights: str | None = None
    sigma_given: Level | None = None


def level_text(level: Level | None) -> str:
    """A level as written in file names, CSV and tables: ``25``, ``12.5``, ``real``, ``auto``; ``""`` for ``None``."""
    if level is None:
        return ""
    return level if isinstance(level, str) else f"{level:g}"


def slug(text: str) -> str:
    """``text`` safe as a file name: every run of other characters than ``[A-Za-z0-9._-]`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def cache_name(key: str, dataset: str, sigma: Level, seed: int, clip: bool, *, sigma_given: Level | None = None) -> str:
    """The cache file name of method ``key`` on ``dataset`` at ``sigma`` (0-255) for one seed and clip setting.

    On a paired dataset (``sigma == "real"``) no noise is drawn, so the name holds the level
    given to the method (``sigma_given``: ``"auto"`` or 0-255) instead of seed and clip.
    """
    if isinstance(sigma, str):
        return f"{slug(key)}__{slug(dataset)}__{slug(sigma)}__given-{slug(level_text(sigma_given))}.csv"
    return f"{slug(key)}__{slug(dataset)}__sigma{sigma:g}__seed{seed}{'__clip' if clip else ''}.csv"


def read_cache(
    path: Path | None, method: str, dataset: str, sigma: Level, *, weights: str | None = None,
    sigma_given: Level | None = None,
) -> dict[str, ImageResult]:
    """Rows of a cache file (keyed by image name); unreadable rows are dropped (and recomputed).

    ``method``, ``dataset``, ``sigma``, ``sigma_given`` (default: ``sigma``) and ``weights``
    are taken from the caller (the file name already identifies them), not from the file's columns.
    """
    given = sigma if sigma_given is None else sigma_given
    if path is None or not path.is_file():
        return {}
    done: dict[str, ImageResult] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            try:
                row = ImageResult(method=method, dataset=dataset, image=rec["image"], sigma=sigma,
                                  psnr=float(rec["psnr"]), ssim=float(rec["ssim"]),
                                  seconds=float(rec["seconds"]), megapixels=float(rec["megapixels"]),
                                  weights=weights, sigma_given=given)
            except (KeyError, TypeError, ValueError):
                continue
            if all(math.isfinite(v) for v in (row.psnr, row.ssim, row.seconds, row.megapixels)):
                done[row.image] = row
    return done


def rows_to_csv(rows: Iterable[ImageResult]) -> str:
    """The per-image CSV text: header :data:`CSV_FIELDS`, one line per image result (``weights`` and
    ``sigma_given`` empty if none)."""
    buf = StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        # repr() round-trips exactly, so a resumed run reproduces the uninterrupted means bit for bit
        writer.writerow([r.method, r.dataset, r.image, level_text(r.sigma), repr(r.psnr), repr(r.ssim),
                         repr(r.seconds), repr(r.megapixels), r.weights or "", level_text(r.sigma_given)])
    return buf.getvalue()


def example_path(
    examples_dir: str | Path, dataset: str, sigma: Level, method: str, *, seed: int, clip: bool,
    sigma_given: Level | None = None,
) -> Path:
    """Where the 8-bit output of ``dataset``'s first image for ``method`` at ``sigma`` is kept
    (on a paired dataset, ``sigma == "real"``, per level given instead of seed and clip)."""
    if isinstance(sigma, str):
        run = f"{slug(sigma)}_given-{slug(level_text(sigma_given))}"
    else:
        run = f"sigma{sigma:g}_seed{seed}{'_clip' if clip else ''}"
    return Path(examples_dir) / slug(dataset) / run / f"{slug(method)}.png"


def save_example(x_hat: Tensor, path: Path) -> None:
    """Save an 8-bit-rounded output [1, C, H, W] as PNG (lossless: the scored pixels exactly)."""
    write_image(path, x_hat[0], overwrite=True)
