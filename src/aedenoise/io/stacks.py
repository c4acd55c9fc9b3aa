"""Multi-page TIFF (a microscope's z-stack or time series): read and write one page at a time.

* :func:`page_count`: how many images a file holds: the pages of a TIFF (the directories
  of its main chain, walked here: a truncated or looping chain is a :class:`DataError`,
  not a shorter stack; SubIFDs such as pyramid levels are not pages), 1 for other formats.
* :func:`read_pages`: an iterator of :class:`~aedenoise.io.ImageFile`, one per page, each
  decoded exactly as :func:`~aedenoise.io.read_image` decodes a one-page file (Pillow up
  to 8 bits and 16-bit gray, tifffile for 16-bit color, gray + alpha and float samples),
  with the pixel limit checked per page before it is decoded. Pages are decoded when
  the iterator reaches them: in memory are the page being yielded and, for pages that
  Pillow decodes, Pillow's 8/16-bit buffer of it.
* :class:`TiffPageWriter`: appends pages to a temporary file beside the target and renames
  it into place when the last page is written; a failure (or an interrupted run) leaves
  nothing under the target's name.
* :func:`needs_bigtiff`: whether a stack's output could pass classic TIFF's 4 GiB.

Pages may differ in size, gray/color, alpha and bit depth: each is its own image.
Every problem raises :class:`DataError` naming the file and, for a page, which one
(``stack.tif (page 3 of 5): ...``; pages are counted from 1 in messages, from 0 in
:attr:`ImageFile.page <aedenoise.io.ImageFile.page>`).
"""

from __future__ import annotations

import os
import struct
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from torch import Tensor

from aedenoise.atomic import atomic_path
from aedenoise.errors import DataError
from aedenoise.io.codecs import open_tiff, read_tiff_page, tiff_icc, tiff_page_args
from aedenoise.io.image_files import (
    ImageFile,
    check_target,
    format_for_path,
    image_from_decoded,
    pixel_limit,
    quantize,
    read_image,
    sniff_format,
)
from aedenoise.io.pillow_codec import open_plugin, pillow_errors, pillow_pixels

if TYPE_CHECKING:
    import tifffile

PathLike = str | os.PathLike[str]

CLASSIC_TIFF_BYTES = 2**32 - 2**25
"""Uncompressed bytes above which :func:`needs_bigtiff` asks for BigTIFF (4 GiB less tifffile's 32 MiB margin)."""


def page_count(path: PathLike) -> int:
    """The number of images :func:`read_pages` yields for ``path``: a TIFF's pages, else 1.

    Reads the file's header and (for a TIFF) its chain of page directories, no pixels.
    Raises :class:`DataError` for a missing, empty or unrecognised file, a truncated or
    looping directory chain, or an ImageJ stack saved with fewer directories than images.
    """
    src = Path(path)
    fmt, _ = sniff_format(src)
    return _checked_count(src) if fmt == "TIFF" else 1


def read_pages(path: PathLike, *, max_pixels: int | None = None) -> Iterator[ImageFile]:
    """Every page of ``path`` as an :class:`ImageFile` (``page`` 0, 1, ...), decoded one at a time.

    For a file that is not a TIFF, or a one-page TIFF, the one image of
    :func:`~aedenoise.io.read_image`. ``max_pixels``: the decompression-bomb limit per page
    (default ``$AEDENOISE_MAX_PIXELS`` or :data:`~aedenoise.io.DEFAULT_MAX_PIXELS`).
    The header and the page chain are checked now (:func:`page_count`'s errors); a page
    that cannot be decoded raises :class:`DataError` when the iterator reaches it, after
    the pages before it were yielded. Close the iterator (or exhaust it) to close the file.
    """
    src = Path(path)
    limit = pixel_limit(max_pixels)
    count = page_count(src)
    return _pages(src, count, limit) if count > 1 else _single(src, limit)


def needs_bigtiff(path: PathLike, *, bit_depth: int | None = None) -> bool:
    """Whether the pages of the TIFF ``path``, written by :class:`TiffPageWriter` with ``bit_depth``
    (8 or 16; ``None``: each page's own), might not fit a classic TIFF.

    An upper bound of the output's uncompressed size, from the page directories only:
    width x height x samples (1 for a gray page, else 4: RGB + alpha) x bytes (2 for
    16-bit), summed over the pages, above :data:`CLASSIC_TIFF_BYTES`.
    """
    src = Path(path)
    total = 0
    with open_tiff(src) as tif:
        try:
            for page in tif.pages:  # one directory at a time; tifffile keeps none of them
                gray = page.samplesperpixel == 1 and int(page.photometric) in (0, 1)
                deep = bit_depth == 16 or (bit_depth is None and page.bitspersample > 8)
                total += page.imagewidth * page.imagelength * (1 if gray else 4) * (2 if deep else 1)
        except Exception as err:  # tifffile reports bad files with many exception types
            raise DataError(f"{src}: cannot decode TIFF image ({type(err).__name__}: {err})") from err
    return total > CLASSIC_TIFF_BYTES


class TiffPageWriter:
    """A multi-page TIFF written one page at a time, atomically; use it in a ``with`` block.

    ::

        with TiffPageWriter("out.tif", protect=["in.tif"]) as out:
            for image in read_pages("in.tif"):
                out.write(denoise(image.data), alpha=image.alpha, bit_depth=image.bit_depth)

    ``path`` must name a TIFF (``.tif``/``.tiff``). The checks of
    :func:`~aedenoise.io.write_image` run when the writer is made: an existing ``path`` is
    refused unless ``overwrite``, one that is the same file as one in ``protect`` (the
    inputs) always. Pages go to a hidden temporary file in the target's folder, each
    written (and freed) as :meth:`write` returns; when the block ends without an error
    and with at least one page, the file is renamed to ``path``; otherwise it is deleted
    and nothing appears under ``path``. ``bigtiff``: write a BigTIFF (no 4 GiB limit; see
    :func:`needs_bigtiff`). Compression: deflate with the horizontal predictor, as
    :func:`~aedenoise.io.write_image` writes a TIFF.
    """

    def __init__(self, path: PathLike, *, overwrite: bool = False, protect: Iterable[PathLike] = (),
                 bigtiff: bool = False) -> None:
        self.path = Path(path)
        if format_for_path(self.path) != "TIFF":
            raise DataError(f"{self.path}: only a TIFF (.tif, .tiff) holds several pages; name a .tif output")
        check_target(self.path, overwrite=overwrite, protect=protect)
        self.pages = 0
        """Pages written so far."""
        self._bigtiff = bigtiff
        self._atomic = atomic_path(self.path)
        self._tiff: tifffile.TiffWriter | None = None  # while the block runs

    def __enter__(self) -> TiffPageWriter:
        import tifffile

        tmp = self._atomic.__enter__()
        try:
            self._tiff = tifffile.TiffWriter(tmp, bigtiff=self._bigtiff)
        except OSError as err:
            self._atomic.__exit__(type(err), err, err.__traceback__)  # deletes the temporary file
            raise DataError(f"{self.path}: cannot write image ({err.strerror or err})") from err
        return self

    def write(self, x: Tensor, *, alpha: Tensor | None = None, bit_depth: int = 8,
              icc_profile: bytes | None = None) -> None:
        """Append one page: ``x`` float ``[C, H, W]`` (C = 1 or 3) in ``[0, 1]``, ``alpha`` ``[1, H, W]``
        or ``None``, clamped and rounded to ``bit_depth`` (8 or 16) bits, with ``icc_profile``.

        Wrong shapes or NaN raise ``ValueError``; a failed write raises :class:`DataError`.
        """
        if self._tiff is None:
            raise RuntimeError("TiffPageWriter.write: use the writer in a with block")
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth!r}")
        data, options = tiff_page_args(quantize(x, alpha, bit_depth), has_alpha=alpha is not None, icc=icc_profile)
        try:
            self._tiff.write(data, contiguous=False, **options)
        except (OSError, ValueError) as err:  # ValueError: past 4 GiB in a classic TIFF
            raise DataError(f"{self.path}: cannot write page {self.pages + 1} "
                            f"({getattr(err, 'strerror', None) or err})") from err
        self.pages += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        error: BaseException | None = exc
        tiff, self._tiff = self._tiff, None
        try:
            if tiff is not None:
                tiff.close()
        except OSError as err:
            if error is None:
                error = DataError(f"{self.path}: cannot write image ({err.strerror or err})")
                error.__cause__ = err
        if error is None and self.pages == 0:
            error = DataError(f"{self.path}: no page was written; a TIFF needs at least one")
        if error is None:
            try:
                self._atomic.__exit__(None, None, None)  # renames the finished file into place
            except OSError as err:
                raise DataError(f"{self.path}: cannot write image ({err.strerror or err})") from err
            return
        self._atomic.__exit__(type(error), error, error.__traceback__)  # deletes the temporary file
        if error is not exc:
            raise error


# -- reading ------------------------------------------------------------------------


def _single(src: Path, limit: int) -> Iterator[ImageFile]:
    yield read_image(src, max_pixels=limit)


def _pages(src: Path, count: int, limit: int) -> Iterator[ImageFile]:
    size = src.stat().st_size
    with ExitStack() as files:
        tif = files.enter_context(open_tiff(src))
        opened: list[Any] = []  # the Pillow image, opened for the first page Pillow decodes

        def pillow() -> Any:  # PIL.TiffImagePlugin.TiffImageFile
            if not opened:
                opened.append(files.enter_context(open_plugin(src, "TIFF")))
            return opened[0]

        for index in range(count):
            yield _read_page(src, index, count, tif, pillow, limit, size)  # nothing of it is kept here


def _read_page(src: Path, index: int, count: int, tif: tifffile.TiffFile, pillow: Callable[[], Any], limit: int,
               size: int) -> ImageFile:
    """Page ``index`` of the open TIFF: tifffile's decoder where Pillow's is not exact, else Pillow's."""
    from PIL import ImageOps

    name = f"{src} (page {index + 1} of {count})"
    try:
        page = tif.pages[index]
    except Exception as err:  # tifffile reports bad files with many exception types
        raise DataError(f"{name}: cannot decode TIFF image ({type(err).__name__}: {err})") from err
    decoded = read_tiff_page(page, name, limit, size)
    if decoded is None:
        with pillow_errors(name, "TIFF"):
            im = pillow()
            im.seek(index)  # read_tiff_page checked the page's size
            im.load()
            # the page's own profile: Pillow keeps an earlier page's when a page has none
            decoded = pillow_pixels(ImageOps.exif_transpose(im), name, tiff_icc(page))
    return image_from_decoded(decoded, path=src, fmt="TIFF", name=name, page=index)


def _checked_count(src: Path) -> int:
    count = _count_directories(src)
    with open_tiff(src) as tif:
        try:
            images = int((tif.imagej_metadata or {}).get("images", 1)) if tif.is_imagej else 1
        except Exception as err:  # tifffile reports bad files with many exception types
            raise DataError(f"{src}: cannot decode TIFF image ({type(err).__name__}: {err})") from err
    if images > count:
        raise DataError(f"{src}: ImageJ stack of {images} images stored with {count} page "
                        f"director{'y' if count == 1 else 'ies'} (ImageJ does this above 4 GB); "
                        f"save it again as a BigTIFF with one page per image (e.g. with tifffile or Fiji)")
    return count


def _count_directories(src: Path) -> int:
    """Pages in the main directory chain of the TIFF ``src``, which must end inside the file, without a loop."""
    size = src.stat().st_size
    with open(src, "rb") as f:
        head = f.read(16)
        order = "<" if head[:2] == b"II" else ">"
        big = struct.unpack(order + "H", head[2:4])[0] == 43
        count_fmt, entry_size, offset_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        count_size, offset_size = struct.calcsize(count_fmt), struct.calcsize(offset_fmt)
        start = 8 if big else 4
        if len(head) < start + offset_size:
            raise DataError(f"{src}: truncated TIFF (the header is cut off)")
        (offset,) = struct.unpack(order + offset_fmt, head[start:start + offset_size])
        seen: set[int] = set()
        while offset:
            page = len(seen) + 1
            if offset in seen:
                raise DataError(f"{src}: corrupt TIFF (page {page}'s directory is an earlier page's: a loop)")
            if offset + count_size > size:
                raise DataError(f"{src}: truncated TIFF (page {page}'s directory lies after the end of the file)")
            f.seek(offset)
            (entries,) = struct.unpack(order + count_fmt, f.read(count_size))
            end = offset + count_size + entries * entry_size + offset_size
            if end > size:
                raise DataError(f"{src}: truncated TIFF (page {page}'s directory is cut off by the end of the file)")
            seen.add(offset)
            f.seek(end - offset_size)
            (offset,) = struct.unpack(order + offset_fmt, f.read(offset_size))
    if not seen:
        raise DataError(f"{src}: a TIFF without any image (no page directory)")
    return len(seen)
