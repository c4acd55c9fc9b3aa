"""The codecs behind :mod:`aedenoise.io` that are not Pillow: pypng and tifffile.

Use :func:`aedenoise.io.read_image` / :func:`aedenoise.io.write_image`; this module holds
their format-specific pieces, all working on numpy pixels ``[H, W, n]`` (uint8, uint16
or float32 in ``[0, 1]``):

* pypng for 16-bit PNG with color or alpha, which Pillow reduces to 8 bits (and for
  writing them, which Pillow cannot): pure Python, MIT, small, exact for every filter
  and interlacing. Slow (about 2 s per megapixel of Paeth-filtered RGB) but such files
  are rare; the alternatives are big binary packages (imagecodecs, OpenCV) or a
  home-made decoder needing the same per-pixel Python loop for the Paeth filter.
* tifffile for TIFF with 16-bit color or gray+alpha, or float samples (must lie in
  ``[0, 1]``; ``bit_depth`` 16), and for writing every TIFF (deflate + predictor). LZW
  or JPEG compression there needs the optional ``imagecodecs`` (a clear error says so).
  :func:`read_tiff_page` decodes one page; :func:`tiff_page_args` describes one page
  for tifffile's writers (a one-page file, or a page appended to a stack).
* the helpers both decoders share with the Pillow path: the pixel-limit check
  (:func:`check_pixels`), EXIF/TIFF orientation (:func:`orient`) and the tRNS color
  key (:func:`key_to_alpha`).

Every problem with a file raises :class:`~aedenoise.errors.DataError` naming the file (and
the page, in a stack).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from aedenoise.errors import DataError

MAX_PIXELS_ENV = "AEDENOISE_MAX_PIXELS"
ORIENTATION_TAG = 0x0112
_ICC_TAG = 34675


class Decoded(NamedTuple):
    """Decoded samples before scaling: what every decoder returns to :func:`aedenoise.io.read_image`
    (and to :func:`aedenoise.io.read_pages`, per page)."""

    pixels: np.ndarray  # [H, W] or [H, W, n]: uint8, uint16 or float32 in [0, 1]
    has_alpha: bool  # the last of the n planes is alpha
    icc: bytes | None
    premultiplied: bool = False


def check_pixels(name: str | Path, width: int, height: int, limit: int) -> None:
    """Refuse an image of more than ``limit`` pixels (``name``: the file, or the page of a stack)."""
    if width * height > limit:
        raise DataError(f"{name}: {width}x{height} pixels exceeds the limit of {limit:,} pixels (decompression-bomb "
                        f"guard); if the file is trusted, raise it with {MAX_PIXELS_ENV} or max_pixels=")


def read_png16(src: Path) -> tuple[np.ndarray, object]:
    """16-bit PNG samples [H, W, planes] as uint16 (tRNS key returned apart), via pypng."""
    import png

    with open(src, "rb") as f:
        width, height, rows, info = png.Reader(file=f).read()
        pixels = np.stack([np.asarray(row, dtype=np.uint16) for row in rows])
    return pixels.reshape(height, width, info["planes"]), info.get("transparent")


def key_to_alpha(pixels: np.ndarray, key: object) -> np.ndarray:
    """Append an alpha plane, 0 where gray/RGB ``pixels`` [H, W, 1|3] equal the tRNS color ``key``."""
    if not isinstance(key, (int, tuple)) or pixels.shape[2] not in (1, 3):
        return pixels
    color = np.array(key if isinstance(key, tuple) else (key,), dtype=np.int64)
    top = np.iinfo(pixels.dtype).max
    if color.shape != (pixels.shape[2],) or color.min() < 0 or color.max() > top:
        return pixels  # a key no pixel can match: everything is opaque
    opaque = (pixels != color.astype(pixels.dtype)).any(axis=2, keepdims=True)
    return np.concatenate([pixels, opaque.astype(pixels.dtype) * top], axis=2)


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF/TIFF orientation (1-8) to [H, W, n] pixels, as ``ImageOps.exif_transpose``."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}
    op = ops.get(int(orientation))
    return pixels if op is None else np.ascontiguousarray(op(pixels))


def open_tiff(src: Path):  # -> tifffile.TiffFile; the caller closes it (``with``)
    """``src`` opened with tifffile (its header and first page directory parsed, no pixels)."""
    import tifffile

    try:
        return tifffile.TiffFile(src)
    except Exception as err:  # tifffile reports bad files with many exception types
        raise DataError(f"{src}: cannot decode TIFF image ({type(err).__name__}: {err})") from err


def read_tiff(src: Path, limit: int) -> Decoded | None:
    """The first page of the TIFF ``src`` as :func:`read_tiff_page` decodes it (``None``: Pillow's job)."""
    with open_tiff(src) as tif:
        try:
            page = tif.pages[0]
        except Exception as err:
            raise DataError(f"{src}: cannot decode TIFF image ({type(err).__name__}: {err})") from err
        return read_tiff_page(page, str(src), limit, src.stat().st_size)


def read_tiff_page(page, name: str, limit: int, file_size: int) -> Decoded | None:  # page: tifffile.TiffPage
    """Decode one TIFF page that Pillow cannot decode exactly; ``None`` if Pillow can.

    Pillow decodes gray and color up to 8 bits and 16-bit gray exactly (with LZW, deflate,
    PackBits, tiles, either byte order); this decodes 16-bit color, gray + alpha and float
    samples. ``name`` is the page in messages (the file, and which page of a stack);
    ``file_size`` (bytes) finds pixel data cut off by a truncated file. The pixel limit
    ``limit`` is checked before anything is decoded.
    """
    import tifffile

    try:
        check_pixels(name, page.imagewidth, page.imagelength, limit)
        end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
        if end > file_size:
            raise DataError(f"{name}: truncated TIFF (pixel data ends after the end of the file)")
        bits, spp = page.bitspersample, page.samplesperpixel
        sampleformat, photometric = int(page.sampleformat), int(page.photometric)
        if sampleformat == 1 and (bits <= 8 or (bits == 16 and spp == 1 and photometric == 1)):
            return None
        color = {0: 1, 1: 1, 2: 3}.get(photometric, 0)
        if not ((sampleformat == 1 and bits == 16) or sampleformat == 3) or not color or \
                spp - color not in (0, 1) or page.axes not in ("YX", "YXS", "SYX"):
            kind = ", ".join(str(getattr(v, "name", v)) for v in (page.sampleformat, page.photometric))
            raise DataError(f"{name}: unsupported TIFF ({spp} samples per pixel of {bits}-bit {kind}, axes "
                            f"{page.axes}); use 8/16-bit gray or RGB, with optional alpha")
        if page.compression not in tifffile.TIFF.DECOMPRESSORS or \
                (page.predictor > 1 and page.predictor not in tifffile.TIFF.UNPREDICTORS):
            raise DataError(f"{name}: TIFF compression {getattr(page.compression, 'name', page.compression)} "
                            f"(predictor {page.predictor}) needs the optional package imagecodecs: "
                            f"pip install imagecodecs")
        pixels = page.asarray()
        orientation = page.tags[ORIENTATION_TAG].value if ORIENTATION_TAG in page.tags else 1
        icc = tiff_icc(page)
        premultiplied = spp > color and tuple(map(int, page.extrasamples[:1])) == (1,)
    except DataError:
        raise
    except Exception as err:  # tifffile reports bad files with many exception types
        raise DataError(f"{name}: cannot decode TIFF image ({type(err).__name__}: {err})") from err
    if page.axes == "SYX":
        pixels = np.moveaxis(pixels, 0, -1)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32)
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
            raise DataError(f"{name}: floating-point samples outside [0, 1] (or not finite); "
                            f"rescale to [0, 1] or save as 8/16-bit integers")
    if photometric == 0:  # min-is-white gray
        pixels[..., 0] = (1 if pixels.dtype.kind == "f" else 65535) - pixels[..., 0]
    return Decoded(orient(pixels, orientation), spp > color, icc, premultiplied)


def tiff_icc(page) -> bytes | None:  # page: tifffile.TiffPage
    """The ICC color profile of one TIFF page, or ``None``."""
    return bytes(page.tags[_ICC_TAG].value) if _ICC_TAG in page.tags else None


def write_png16(dst: Path, pixels: np.ndarray, icc: bytes | None) -> None:
    """16-bit gray+alpha / RGB / RGBA PNG via pypng (Pillow cannot write these)."""
    import png

    h, w, n = pixels.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=n < 3, alpha=n in (2, 4), bitdepth=16).write(buf, pixels.reshape(h, w * n))
    data = buf.getvalue()
    if icc:  # pypng cannot write iCCP: insert it after the signature (8 bytes) and IHDR (25 bytes)
        body = b"ICC profile\x00\x00" + zlib.compress(icc)
        chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
        data = data[:33] + chunk + data[33:]
    dst.write_bytes(data)


def tiff_page_args(pixels: np.ndarray, *, has_alpha: bool, icc: bytes | None) -> tuple[np.ndarray, dict[str, object]]:
    """One TIFF page of ``pixels`` [H, W, n] (uint8/uint16; n = 1-4, the last plane alpha if ``has_alpha``):
    the array and the keyword arguments of ``tifffile.imwrite`` / ``TiffWriter.write`` (deflate with
    the horizontal predictor, no tifffile metadata)."""
    n = pixels.shape[2]
    options: dict[str, object] = {
        "photometric": "rgb" if n >= 3 else "minisblack", "planarconfig": "contig" if n > 1 else None,
        "extrasamples": (2,) if has_alpha else None, "compression": "zlib", "predictor": True, "metadata": None}
    if icc:
        options["iccprofile"] = icc
    return (pixels if n > 1 else pixels[..., 0]), options


def write_tiff(dst: Path, pixels: np.ndarray, *, has_alpha: bool, icc: bytes | None) -> None:
    """A one-page TIFF of ``pixels`` [H, W, n] as :func:`tiff_page_args` describes it."""
    import tifffile

    data, options = tiff_page_args(pixels, has_alpha=has_alpha, icc=icc)
    tifffile.imwrite(dst, data, **options)
