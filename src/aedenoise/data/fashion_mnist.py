"""Fashion-MNIST from the original idx files: find, verify, download, load.

The four files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``,
preferred when both exist) or plain. Folders are searched in this order:

1. ``data_dir`` (the CLI's ``--data-dir``), if given;
2. else the folder in the environment variable ``AEDENOISE_FASHION_MNIST``, if set;
3. else the Debian package's folder :data:`SYSTEM_DIR`
   (``apt-get install dataset-fashion-mnist``), then the user cache :func:`cache_dir`
   (``$XDG_CACHE_HOME/aedenoise/fashion-mnist``, default ``~/.cache/...``).

A folder named by 1 or 2 must hold all four files: it is never skipped silently.
If neither 3 holds them and downloading is allowed, the missing files are fetched
from :data:`MIRRORS` into the cache (atomically, verified before they land).

Verification checks the *decompressed content* (idx header, size and md5 in
:data:`EXPECTED`), never the ``.gz`` bytes (the Debian files are recompressed).
An md5 result is remembered in a small stamp file in the cache, keyed by the
file's path, size and mtime, so a second load skips the hashing; the header and
size checks always run. Tests substitute small fake files by monkeypatching
:data:`EXPECTED` (and :data:`SYSTEM_DIR`, :data:`MIRRORS`); nothing else
bypasses the checks.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import shutil
import struct
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from aedenoise.atomic import atomic_path, write_json
from aedenoise.errors import AedenoiseError, ConfigError, DataError
from aedenoise.paths import user_cache_dir

log = logging.getLogger(__name__)

ENV_VAR = "AEDENOISE_FASHION_MNIST"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
DOWNLOAD_TIMEOUT_S = 60.0

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SIDE = 28
NUM_CLASSES = 10


@dataclass(frozen=True)
class Expected:
    """The decompressed content of one idx file: md5 hex digest and length in bytes."""

    md5: str
    nbytes: int


EXPECTED: dict[str, Expected] = {
    TRAIN_IMAGES: Expected("f4a8712d7a061bf5bd6d2ca38dc4d50a", 47_040_016),
    TRAIN_LABELS: Expected("9018921c3c673c538a1fc5bad174d6f9", 60_008),
    TEST_IMAGES: Expected("8181f5470baa50b63fa0f6fddb340f0a", 7_840_016),
    TEST_LABELS: Expected("15d484375f8d13e6eb1aabb0c3f46965", 10_008),
}

_HOW_TO_GET = (
    "install it with `apt-get install dataset-fashion-mnist`, or pass --data-dir DIR "
    f"(or set {ENV_VAR}=DIR) to a folder holding {', '.join(n + '.gz' for n in FILES)}"
)
_FIX_CORRUPT = "replace it with an intact copy (a file in the download cache can simply be deleted: it is fetched again)"


@dataclass(frozen=True, eq=False)
class FashionMNIST:
    """The published split: 60,000 training and 10,000 test images.

    ``train_x``/``test_x``: float32 ``[N, 1, 28, 28]``, values ``k / 255`` in ``[0, 1]``.
    ``train_labels``/``test_labels``: int64 ``[N]`` in ``0..9`` (names in :attr:`CLASSES`).
    ``source``: the folder the files were read from.
    """

    train_x: Tensor
    train_labels: Tensor
    test_x: Tensor
    test_labels: Tensor
    source: Path

    CLASSES: ClassVar[tuple[str, ...]] = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )


def cache_dir() -> Path:
    """The download folder: ``$XDG_CACHE_HOME/aedenoise/fashion-mnist`` (default ``~/.cache``)."""
    return user_cache_dir("fashion-mnist")


def locate_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder :func:`load_fashion_mnist` would read (search order in the module doc).

    Checks only that the four files exist (no verification, no download). Raises
    :class:`DataError` if an explicitly named folder lacks them, or if no folder
    has them, listing where it looked and how to get the data.
    """
    folder, looked = _search(data_dir)
    if folder is None:
        raise _not_found(looked, [])
    return folder


def load_fashion_mnist(*, data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> FashionMNIST:
    """Find, verify and load Fashion-MNIST (see the module doc for the search order).

    ``download=True`` fetches missing files into :func:`cache_dir` when no folder
    has them and neither ``data_dir`` nor ``$AEDENOISE_FASHION_MNIST`` is set.
    Raises :class:`DataError` for missing, truncated or corrupt files, naming the file.
    """
    folder, looked = _search(data_dir)
    if folder is None:
        if not download:
            raise _not_found(looked, [])
        folder = _download(cache_dir(), looked)
    stamps = _read_stamps()
    data = {name: _read_verified(_find_file(folder, name), name, stamps) for name in FILES}  # type: ignore[arg-type]
    _write_stamps(stamps)
    train_x, train_labels = _to_tensors(folder, data[TRAIN_IMAGES], data[TRAIN_LABELS], TRAIN_IMAGES)
    test_x, test_labels = _to_tensors(folder, data[TEST_IMAGES], data[TEST_LABELS], TEST_IMAGES)
    return FashionMNIST(train_x, train_labels, test_x, test_labels, folder)


def validation_indices(n: int, *, fraction: float | None = None, count: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Split ``range(n)`` into ``(train_idx, val_idx)`` int64 tensors, both sorted ascending.

    ``val_idx`` is the first ``count`` entries (or ``round(fraction * n)``; default
    ``fraction=0.1``) of ``torch.randperm(n)`` under a generator seeded with ``seed``,
    so the split depends only on ``n``, the validation size and ``seed``.
    """
    if fraction is not None and count is not None:
        raise ConfigError("give either a validation fraction or a count, not both")
    if count is None:
        fraction = 0.1 if fraction is None else fraction
        if not (math.isfinite(fraction) and 0 < fraction < 1):
            raise ConfigError(f"validation fraction must be in (0, 1) (got {fraction})")
        count = round(fraction * n)
    if not 0 < count < n:
        raise ConfigError(f"validation count must leave both parts non-empty: 0 < count < {n} (got {count})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[count:].sort().values, perm[:count].sort().values


def split_validation(x: Tensor, *, fraction: float | None = None, count: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Carve a validation set out of ``x`` (split along dim 0): ``(train, val)``.

    The published test set stays untouched; validation comes from the training
    images. Both parts keep the original order; see :func:`validation_indices`
    (use it directly to split labels the same way).
    """
    train_idx, val_idx = validation_indices(x.shape[0], fraction=fraction, count=count, seed=seed)
    return x[train_idx], x[val_idx]


# -- search -------------------------------------------------------------------------


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _search(data_dir: str | os.PathLike[str] | None) -> tuple[Path | None, list[str]]:
    """The first folder holding all four files, and the places looked at (for errors)."""
    env = os.environ.get(ENV_VAR, "")
    if data_dir is not None or env:
        folder, how = (Path(data_dir), "given as data_dir/--data-dir") if data_dir is not None else (Path(env), f"from ${ENV_VAR}")
        if not folder.is_dir():
            raise DataError(f"Fashion-MNIST folder {folder} ({how}) does not exist; {_HOW_TO_GET}")
        missing = [name for name in FILES if _find_file(folder, name) is None]
        if missing:
            raise DataError(f"Fashion-MNIST folder {folder} ({how}) lacks {', '.join(missing)} (.gz or plain); {_HOW_TO_GET}")
        return folder, [str(folder)]
    looked = []
    for folder in (SYSTEM_DIR, cache_dir()):
        looked.append(str(folder))
        if all(_find_file(folder, name) is not None for name in FILES):
            return folder, looked
    return None, looked


def _not_found(looked: list[str], failures: list[str]) -> DataError:
    where = "; ".join(looked)
    tried = f"; download failed: {'; '.join(failures)}" if failures else "; downloading is disabled"
    return DataError(f"Fashion-MNIST not found (looked in {where}{tried}); {_HOW_TO_GET}")


# -- download -----------------------------------------------------------------------


def _download(dest: Path, looked: list[str]) -> Path:
    failures: list[str] = []
    for name in FILES:
        if _find_file(dest, name) is not None:
            continue
        for mirror in MIRRORS:
            url = mirror + name + ".gz"
            try:
                _download_file(url, dest / f"{name}.gz", name)
                break
            except (OSError, ValueError, AedenoiseError) as err:  # URLError/HTTPError/timeouts are OSErrors
                failures.append(f"{url}: {getattr(err, 'reason', None) or err}")
        else:
            raise _not_found(looked, failures)
    return dest


def _download_file(url: str, target: Path, name: str) -> None:
    """Fetch ``url`` into ``target``; it appears only once complete and verified."""
    log.info("downloading %s", url)
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        _read_verified(tmp, name, {}, label=url)


# -- verification ---------------------------------------------------------------------


def _read_verified(path: Path, name: str, stamps: dict[str, dict], *, label: str | None = None) -> bytes:
    """The decompressed idx bytes of ``path``, checked against :data:`EXPECTED` [``name``].

    ``stamps`` maps a resolved path to the size/mtime/md5 verified before; it is
    updated in place. ``label`` names the file in messages (default: the path).
    """
    label = label or str(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{label}: cannot read ({err.strerror or err})") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{label}: corrupt or truncated gzip file ({err}); {_FIX_CORRUPT}") from err
    _check_idx_header(raw, name, label)
    expected = EXPECTED[name]
    if len(raw) != expected.nbytes:
        raise DataError(
            f"{label}: {len(raw)} bytes of idx data, the Fashion-MNIST release has {expected.nbytes}; "
            f"this is another dataset or a damaged file; {_FIX_CORRUPT}"
        )
    stat = path.stat()
    key, stamp = str(path.resolve()), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": expected.md5}
    if stamps.get(key) != stamp:
        digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if digest != expected.md5:
            raise DataError(f"{label}: content checksum mismatch (md5 {digest}, expected {expected.md5}); {_FIX_CORRUPT}")
        stamps[key] = stamp
    return raw


def _check_idx_header(data: bytes, name: str, label: str) -> tuple[int, ...]:
    """Validate an idx header (magic ``00 00 08 ndim``, dims, length); return the dims."""
    ndim = 3 if "images" in name else 1
    kind = "idx3 image" if ndim == 3 else "idx1 label"
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DataError(f"{label}: not an {kind} file (magic {data[:4].hex() or 'empty'}, expected 0000080{ndim}); {_FIX_CORRUPT}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{label}: truncated idx header; {_FIX_CORRUPT}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise DataError(f"{label}: images are {dims[1]}x{dims[2]}, Fashion-MNIST images are {SIDE}x{SIDE}")
    if len(data) - header != math.prod(dims):
        raise DataError(
            f"{label}: header announces {'x'.join(map(str, dims))} = {math.prod(dims)} bytes "
            f"but {len(data) - header} follow (truncated or padded); {_FIX_CORRUPT}"
        )
    return dims


def _to_tensors(folder: Path, images: bytes, labels: bytes, images_name: str) -> tuple[Tensor, Tensor]:
    """float32 ``[N, 1, 28, 28]`` in [0, 1] and int64 ``[N]`` from checked idx bytes."""
    pixels = np.frombuffer(images, dtype=np.uint8, offset=16)
    classes = np.frombuffer(labels, dtype=np.uint8, offset=8)
    n = pixels.size // (SIDE * SIDE)
    if classes.size != n:
        raise DataError(f"{folder}: {images_name} holds {n} images but its labels file {classes.size} labels")
    if classes.size and int(classes.max()) >= NUM_CLASSES:
        raise DataError(f"{folder}: label {int(classes.max())} out of range 0..{NUM_CLASSES - 1} in the labels of {images_name}")
    x = torch.empty((n, 1, SIDE, SIDE), dtype=torch.float32)
    np.divide(pixels.reshape(n, 1, SIDE, SIDE), np.float32(255), out=x.numpy(), dtype=np.float32)
    return x, torch.from_numpy(classes.astype(np.int64))


# -- verification stamps --------------------------------------------------------------


def _stamp_file() -> Path:
    return cache_dir().parent / "fashion-mnist-verified.json"


def _read_stamps() -> dict[str, dict]:
    try:
        stamps = json.loads(_stamp_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def _write_stamps(stamps: dict[str, dict]) -> None:
    """Best effort: a read-only or missing cache only costs the hashing next time."""
    if stamps == _read_stamps():
        return
    live = {key: value for key, value in stamps.items() if Path(key).is_file()}
    try:
        write_json(_stamp_file(), live)
    except (OSError, AedenoiseError) as err:
        log.debug("cannot write verification stamps: %s", err)
