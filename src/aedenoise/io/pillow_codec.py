"""Pillow's side of :mod:`aedenoise.io`: PNG, JPEG, TIFF, BMP and WebP up to 8 bits per sample, 16-bit gray.

Use :func:`aedenoise.io.read_image` / :func:`aedenoise.io.read_pages`; this module holds
the Pillow pieces they share, all giving numpy pixels ``[H, W, n]`` (uint8 or uint16):

* :func:`open_plugin` opens a file with its format's plugin class, which parses the
  header only and skips ``Image.open``'s decompression-bomb check (ours runs first);
* :func:`pillow_errors` turns everything Pillow raises about a bad file into a
  :class:`~aedenoise.errors.DataError` naming it, and silences Pillow's own bomb warning;
* :func:`pillow_pixels` converts the decoded frame exactly: palette -> RGB (RGBA with
  transparency), 1-bit -> gray {0, 1}, CMYK -> sRGB through its ICC profile
  (:mod:`aedenoise.io.color`), YCbCr/HSV -> RGB, a tRNS color key -> alpha;
* :func:`read_pillow` is one whole file (a 16-bit color PNG's samples come from pypng).
"""

from __future__ import annotations

import importlib
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from aedenoise.errors import DataError
from aedenoise.io.codecs import ORIENTATION_TAG, Decoded, check_pixels, key_to_alpha, orient, read_png16
from aedenoise.io.color import cmyk_to_srgb

_PILLOW_CLASSES = {"PNG": ("PngImagePlugin", "PngImageFile"), "JPEG": ("JpegImagePlugin", "JpegImageFile"),
                   "TIFF": ("TiffImagePlugin", "TiffImageFile"), "BMP": ("BmpImagePlugin", "BmpImageFile"),
                   "WEBP": ("WebPImagePlugin", "WebPImageFile")}
_GRAY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def open_plugin(src: Path, fmt: str):  # -> PIL.ImageFile.ImageFile, to be closed by the caller (``with``)
    """``src`` opened by the plugin class of ``fmt`` ("PNG", "JPEG", "TIFF", "BMP", "WEBP"): header only.

    Call it inside :func:`pillow_errors`, which reports a file the plugin cannot parse.
    """
    module, name = _PILLOW_CLASSES[fmt]
    try:
        opener = getattr(importlib.import_module(f"PIL.{module}"), name)
    except ImportError as err:
        raise DataError(f"{src}: this Pillow installation cannot read {fmt} ({err})") from err
    return opener(src)


@contextmanager
def pillow_errors(name: str, fmt: str) -> Iterator[None]:
    """Decode inside this: Pillow's bomb warning is silenced (the size passed our own check),
    its bomb error and every decoder failure become a :class:`DataError` naming ``name``."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except DataError:
        raise
    except Image.DecompressionBombError as err:  # some plugins (TIFF, WebP) check Pillow's limit too
        raise DataError(f"{name}: over Pillow's decompression-bomb limit ({err}); if the file is trusted, raise "
                        f"PIL.Image.MAX_IMAGE_PIXELS") from err
    except Exception as err:  # Pillow/pypng report bad files with many exception types
        raise DataError(f"{name}: cannot decode {fmt} image ({type(err).__name__}: {err})") from err


def read_pillow(src: Path, fmt: str, limit: int, *, png16: bool) -> Decoded:
    """The first frame of ``src``, orientation applied; ``png16``: a 16-bit color PNG (samples via pypng).

    Loaded fully, so a truncated file is an error (``LOAD_TRUNCATED_IMAGES`` is left alone).
    """
    from PIL import ImageOps

    with pillow_errors(str(src), fmt), open_plugin(src, fmt) as im:
        check_pixels(src, im.width, im.height, limit)
        im.load()  # decode everything now, so truncation surfaces here
        icc = im.info.get("icc_profile") or None
        if png16:
            orientation = im.getexif().get(ORIENTATION_TAG, 1)
            pixels = key_to_alpha(*read_png16(src))
            return Decoded(orient(pixels, orientation), pixels.shape[2] in (2, 4), icc)
        return pillow_pixels(ImageOps.exif_transpose(im), str(src), icc)


def pillow_pixels(im, name: str, icc: bytes | None) -> Decoded:  # im: PIL.Image.Image, decoded and upright
    """The samples of ``im`` as gray, gray + alpha, RGB or RGBA (uint8, or uint16 for 16-bit gray).

    ``name``: the file (and page) for messages and the CMYK warning; ``icc``: its color
    profile (dropped when CMYK is converted to sRGB). An unsupported mode raises :class:`DataError`.
    """
    mode = im.mode
    key = im.info.get("transparency") if mode in ("L", "RGB", *_GRAY16_MODES) else None
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("La", "RGBa", "RGBX"):
        im = im.convert({"La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}[mode])
    elif mode == "CMYK":
        im, icc = cmyk_to_srgb(im, name, icc), None  # sRGB now: the CMYK profile no longer applies
    elif mode in ("YCbCr", "HSV"):
        im = im.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA", *_GRAY16_MODES):
        raise DataError(f"{name}: unsupported image mode {mode!r}; convert it to gray or RGB (8 or 16 bit)")
    pixels = np.asarray(im)
    if mode in _GRAY16_MODES:
        if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
            raise DataError(f"{name}: integer samples outside the 16-bit range; convert to 8 or 16 bit")
        pixels = pixels.astype(np.uint16)
    pixels = key_to_alpha(pixels if pixels.ndim == 3 else pixels[..., None], key)
    return Decoded(pixels, pixels.shape[2] in (2, 4), icc)
