"""The datasets of a benchmark run: folders of clean images, and paired real-noise folders.

* A *clean* folder holds clean images; the protocol adds seeded Gaussian noise to them.
* A *paired* folder has the subfolders ``noisy/`` and ``clean/``, holding images of the
  same file names: real noisy photos and their clean references, scored as they are
  (no noise added; records carry ``sigma = "real"``, :data:`REAL`, and the run adds the
  noisy input itself as the method :data:`NOISY`).

:func:`open_dataset` lists either kind (paired when both subfolders exist);
:func:`load_samples` reads the images, leaving out (with a ``warn`` and a :class:`Skipped`
entry naming the file) what cannot be scored. :mod:`aedenoise.benchmark.protocol` runs
the protocol on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from torch import Tensor

from aedenoise.errors import AedenoiseError, ConfigError, DataError
from aedenoise.io import is_image_path, read_image

REAL = "real"
"""The ``sigma`` of rows and records on a paired dataset: the noise is the photo's own."""
NOISY = "noisy"
"""The method name of the noisy input itself, scored against the clean reference (paired datasets)."""
NOISY_DIR, CLEAN_DIR = "noisy", "clean"


@dataclass(frozen=True)
class Skipped:
    """A file left out of ``dataset``: ``image`` its name (for paired folders ``noisy/NAME`` or
    ``clean/NAME`` where one side is meant), ``error`` why."""

    dataset: str
    image: str
    error: str


@dataclass(frozen=True)
class Dataset:
    """A benchmark dataset; ``name`` is the folder name.

    ``paths``: the clean images in sorted order (for a paired folder those under
    ``clean/`` that have a noisy partner of the same name under ``noisy/``).
    ``paired``: real noisy/clean pairs rather than clean images for synthetic noise.
    ``problems``: files of a paired folder left out when it was listed (no partner, not
    an image, a subfolder), reported by :func:`load_samples`.
    """

    name: str
    root: Path
    paths: tuple[Path, ...]
    paired: bool = False
    problems: tuple[Skipped, ...] = ()

    def clean_path(self, image: str) -> Path:
        """The clean image file named ``image``."""
        return self.root / CLEAN_DIR / image if self.paired else self.root / image

    def noisy_path(self, image: str) -> Path:
        """The noisy partner of ``image`` in a paired folder."""
        if not self.paired:
            raise ValueError(f"dataset {self.name!r} is not a paired folder; its noise is synthetic")
        return self.root / NOISY_DIR / image


class Sample(NamedTuple):
    """One scored image: its file name, clean ``x`` [C, H, W] and, for paired folders, the
    real noisy ``y`` [C, H, W] of the same shape (float32 in [0, 1]); ``None`` otherwise."""

    image: str
    clean: Tensor
    noisy: Tensor | None


def is_paired_folder(folder: str | Path) -> bool:
    """Whether ``folder`` has both a ``noisy/`` and a ``clean/`` subfolder."""
    root = Path(folder)
    return (root / NOISY_DIR).is_dir() and (root / CLEAN_DIR).is_dir()


def open_dataset(folder: str | Path, *, limit: int | None = None) -> Dataset:
    """The dataset in ``folder``, the first ``limit`` images (or pairs) by file name.

    A folder with ``noisy/`` and ``clean/`` subfolders is paired (:func:`is_paired_folder`;
    other files beside the two subfolders are ignored); otherwise the folder's image files
    (sorted by name; non-image files ignored) are clean images. :class:`DataError` for a
    missing folder, no image files, or a paired folder without a single name-matched pair.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; --data takes a folder of images (or one with noisy/ and clean/)")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")
    name = root.resolve().name
    if is_paired_folder(root):
        return _open_paired(root, name, limit)
    paths = sorted((p for p in root.iterdir() if p.is_file() and is_image_path(p)), key=lambda p: p.name)
    if not paths:
        half = next((s for s in (NOISY_DIR, CLEAN_DIR) if (root / s).is_dir()), None)
        if half is not None:
            other = CLEAN_DIR if half == NOISY_DIR else NOISY_DIR
            raise DataError(f"{root}: has a {half}/ subfolder but no {other}/ one; a paired dataset needs both "
                            f"(noisy/NAME and clean/NAME)")
        raise DataError(f"{root}: no image files in this folder")
    return Dataset(name=name, root=root, paths=tuple(paths[:limit] if limit else paths))


def _open_paired(root: Path, name: str, limit: int | None) -> Dataset:
    problems: list[Skipped] = []
    sides = {side: _list_side(root, side, name, problems) for side in (NOISY_DIR, CLEAN_DIR)}
    noisy, clean = sides[NOISY_DIR], sides[CLEAN_DIR]
    for side, other, names in ((NOISY_DIR, CLEAN_DIR, noisy), (CLEAN_DIR, NOISY_DIR, clean)):
        partners = clean if side == NOISY_DIR else noisy
        for n in sorted(names - partners):
            problems.append(Skipped(name, f"{side}/{n}", f"no partner: {other}/{n} does not exist"))
    common = sorted(noisy & clean)
    if not common:
        raise DataError(f"{root}: no noisy/clean pairs (noisy/ has {len(noisy)} image(s), clean/ {len(clean)}, "
                        f"none with a partner of the same file name)")
    kept = common[:limit] if limit else common
    problems.sort(key=lambda s: s.image)
    return Dataset(name=name, root=root, paths=tuple(root / CLEAN_DIR / n for n in kept), paired=True,
                   problems=tuple(problems))


def _list_side(root: Path, side: str, name: str, problems: list[Skipped]) -> set[str]:
    """Image file names in ``root/side``; subfolders and non-image files go to ``problems``
    (hidden names are ignored)."""
    images = set()
    for p in sorted((root / side).iterdir(), key=lambda p: p.name):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            problems.append(Skipped(name, f"{side}/{p.name}",
                                    "a subfolder, not read (pairs are the files of noisy/ and clean/)"))
        elif not is_image_path(p):
            problems.append(Skipped(name, f"{side}/{p.name}", "not an image file (no image suffix)"))
        else:
            images.add(p.name)
    return images


def load_samples(d: Dataset, skipped: list[Skipped], warn: Callable[[str], None] | None) -> list[Sample]:
    """Read ``d``'s images (and noisy partners); what cannot be scored is appended to ``skipped`` and warned about.

    Left out: files that cannot be decoded, and (paired) a noisy image whose size or
    channel count differs from its clean partner, plus ``d.problems``. :class:`DataError`
    if nothing is left, or if the folder mixes gray and color images.
    """
    for problem in d.problems:
        _skip(d, problem.image, problem.error, skipped, warn)
    samples = []
    for path in d.paths:
        files = [(f"{CLEAN_DIR}/{path.name}", path), (f"{NOISY_DIR}/{path.name}", d.noisy_path(path.name))] \
            if d.paired else [(path.name, path)]
        read = []
        for label, file in files:
            try:
                read.append(read_image(file).data)
            except AedenoiseError as err:
                _skip(d, label, str(err), skipped, warn)
                break
        if len(read) < len(files):
            continue
        x, y = read[0], (read[1] if d.paired else None)
        if y is not None and y.shape != x.shape:
            _skip(d, f"{NOISY_DIR}/{path.name}", f"noisy {_shape(y)} and clean {_shape(x)} differ in size or channels",
                  skipped, warn)
            continue
        samples.append(Sample(path.name, x, y))
    if not samples:
        what = "pair(s)" if d.paired else "image file(s)"
        raise DataError(f"{d.root}: none of its {len(d.paths)} {what} could be scored (see the messages above)")
    channels = {s.clean.shape[0] for s in samples}
    if len(channels) > 1:
        first = ", ".join(f"{next(s.image for s in samples if s.clean.shape[0] == c)}: {c} channel(s)"
                          for c in sorted(channels))
        raise DataError(f"{d.root}: mixes gray and color images ({first}); benchmark them as separate folders")
    return samples


def _skip(d: Dataset, image: str, error: str, skipped: list[Skipped], warn: Callable[[str], None] | None) -> None:
    skipped.append(Skipped(d.name, image, error))
    if warn:
        warn(f"skipping {d.root / image}: {error}")


def _shape(t: Tensor) -> str:
    c, h, w = t.shape
    return f"{w}x{h} with {c} channel(s)"
