"""Image files in and out: the only place where uint8/uint16 pixels exist.

:func:`read_image` gives an :class:`ImageFile`: ``data`` float32 ``[C, H, W]`` in
``[0, 1]`` (C = 1 gray, 3 color) and ``alpha`` ``[1, H, W]`` (or ``None``) kept apart so
it passes through a denoiser untouched. :func:`write_image` is the inverse;
:func:`to_channels` adapts gray/color to a model. The format is sniffed from content.

Decoders, chosen on purpose:

* Pillow (:mod:`aedenoise.io.pillow_codec`): PNG, JPEG, TIFF, BMP, WebP up to 8 bits per
  sample and 16-bit gray, exactly. Palette -> RGB (RGBA with transparency; the palette
  colors exactly), 1-bit -> gray {0, 1}, CMYK -> sRGB through its ICC profile
  (:mod:`aedenoise.io.color`; without a usable one naively, with a warning), YCbCr/HSV ->
  RGB, a tRNS color key -> alpha, EXIF orientation applied (``ImageOps.exif_transpose``).
  Loaded fully, so a truncated file is an error (``LOAD_TRUNCATED_IMAGES`` is left alone).
* pypng (16-bit PNG with color or alpha, which Pillow reduces to 8 bits) and tifffile
  (TIFF with 16-bit color, gray+alpha or float samples; writing every TIFF): see
  :mod:`aedenoise.io.codecs`, which holds them and why they were chosen.

Decompression-bomb guard: more than :data:`DEFAULT_MAX_PIXELS` pixels (``width *
height``; ``max_pixels=`` or ``$AEDENOISE_MAX_PIXELS`` override) is refused from the
header, before decoding. Pillow's own check lives in ``Image.open``, which is bypassed
by opening the format's plugin class directly; the few plugins that check again (TIFF,
WebP) cannot be bypassed: their warning is silenced, their error becomes a DataError.
Every problem with a file raises :class:`~aedenoise.errors.DataError` naming the file.

:func:`read_image` reads the first page of a multi-page TIFF; :mod:`aedenoise.io.stacks`
reads and writes every page, one at a time, with the steps shared from here
(:func:`pixel_limit`, :func:`sniff_format`, :func:`image_from_decoded`,
:func:`check_target`, :func:`quantize`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from aedenoise.atomic import atomic_path
from aedenoise.errors import ConfigError, DataError
from aedenoise.io.codecs import MAX_PIXELS_ENV, Decoded, read_tiff, write_png16, write_tiff
from aedenoise.io.pillow_codec import read_pillow

PathLike = str | os.PathLike[str]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})  # lower case
FORMATS_16BIT = frozenset({"PNG", "TIFF"})  # what write_image can write with bit_depth=16
FORMATS_ALPHA = frozenset({"PNG", "TIFF", "WEBP"})  # ... and with alpha
DEFAULT_MAX_PIXELS = 250_000_000

_FORMAT_BY_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                     ".bmp": "BMP", ".webp": "WEBP"}
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95, "subsampling": 0},  # 4:4:4: no chroma blur on denoised output
    "WEBP": {"lossless": True, "exact": True},  # exact: keep RGB under transparent pixels
}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
          (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"), (b"BM", "BMP"), (b"RIFF", "WEBP"))
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


@dataclass(frozen=True, eq=False)
class ImageFile:
    """One decoded image.

    ``data``: float32 ``[C, H, W]`` in ``[0, 1]``, ``C`` = 1 (gray) or 3 (RGB), display
    orientation. ``alpha``: float32 ``[1, H, W]`` in ``[0, 1]`` (straight, not
    premultiplied) or ``None``. ``bit_depth``: 8 or 16, the precision of the stored
    samples (write back with it where the format allows). ``format``: "PNG", "JPEG",
    "TIFF", "BMP" or "WEBP", from the content. ``icc_profile``: the embedded color
    profile to write back, or ``None`` (also after a CMYK image was converted to sRGB).
    ``page``: which page of a multi-page TIFF this is (0-based; 0 for every other file),
    see :func:`aedenoise.io.read_pages`.
    """

    path: Path
    data: Tensor
    alpha: Tensor | None
    bit_depth: int
    format: str
    icc_profile: bytes | None = None
    page: int = 0

    @property
    def channels(self) -> int:
        return int(self.data.shape[0])


def is_image_path(path: PathLike) -> bool:
    """True if ``path``'s name has an image suffix (any case) and is not hidden.

    Hidden names (``.x.png``) are skipped: they include the temporary files of
    unfinished atomic writes and macOS ``._`` resource files. Looks at the name only.
    """
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def format_for_path(path: PathLike) -> str:
    """The format :func:`write_image` uses for ``path``'s suffix ("PNG", "JPEG", ...)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMAT_BY_SUFFIX:
        raise DataError(f"{path}: unsupported image extension {suffix or '(none)'!r}; "
                        f"use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    return _FORMAT_BY_SUFFIX[suffix]


def to_channels(x: Tensor, channels: int) -> Tensor:
    """Convert ``x`` (``[..., C, H, W]``, C = 1 or 3) to ``channels`` (1 or 3) channels.

    RGB -> gray is the ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (what PIL's
    ``convert("L")`` computes, without its rounding to 8 bits); gray -> RGB repeats the
    channel. Values keep their scale; ``x`` itself is returned when nothing changes.
    """
    c = x.shape[-3]
    if c == channels:
        return x
    if c == 3 and channels == 1:
        r, g, b = x[..., 0:1, :, :], x[..., 1:2, :, :], x[..., 2:3, :, :]
        return r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]
    if c == 1 and channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    raise ValueError(f"cannot convert {c} channels to {channels} (only between 1 and 3)")


def read_image(path: PathLike, *, max_pixels: int | None = None) -> ImageFile:
    """Read an image file (PNG, JPEG, TIFF, BMP, WebP) as an :class:`ImageFile`.

    ``max_pixels``: refuse images with more pixels (default: ``$AEDENOISE_MAX_PIXELS``
    or :data:`DEFAULT_MAX_PIXELS`). Raises :class:`DataError` for a missing, empty,
    truncated, corrupt, oversized or unsupported file; warns with
    :class:`~aedenoise.io.color.ColorConversionWarning` (naming the file) when a CMYK
    image has no usable ICC profile and is converted naively.
    """
    src = Path(path)
    limit = pixel_limit(max_pixels)
    fmt, head = sniff_format(src)
    decoded = read_tiff(src, limit) if fmt == "TIFF" else None
    if decoded is None:
        png16 = fmt == "PNG" and len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6)
        decoded = read_pillow(src, fmt, limit, png16=png16)
    return image_from_decoded(decoded, path=src, fmt=fmt, name=str(src))


def image_from_decoded(decoded: Decoded, *, path: Path, fmt: str, name: str, page: int = 0) -> ImageFile:
    """The :class:`ImageFile` of a decoder's samples: uint8 / 255, uint16 / 65535, floats as
    they are, alpha split off (and un-premultiplied). ``name`` is the image in messages."""
    pixels = decoded.pixels if decoded.pixels.ndim == 3 else decoded.pixels[..., None]
    top = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(pixels.dtype, 1)  # float: already [0, 1]
    values = pixels.astype(np.float32)
    values /= np.float32(top)
    planes = torch.from_numpy(values).permute(2, 0, 1).contiguous()
    color = planes.shape[0] - int(decoded.has_alpha)
    if color not in (1, 3):
        raise DataError(f"{name}: unsupported image with {color} color channels (expected gray or RGB)")
    data, alpha = planes, None
    if decoded.has_alpha:
        data, alpha = planes[:color].clone(), planes[color:].clone()
        if decoded.premultiplied:
            data = torch.where(alpha > 0, data / alpha.clamp_min(1e-12), 0.0).clamp_(0, 1)
    return ImageFile(path=path, data=data, alpha=alpha, bit_depth=8 if top == 255 else 16, format=fmt,
                     icc_profile=decoded.icc, page=page)


def write_image(path: PathLike, x: Tensor, *, alpha: Tensor | None = None, bit_depth: int = 8,
                overwrite: bool = False, protect: Iterable[PathLike] = (), icc_profile: bytes | None = None) -> Path:
    """Write ``x`` (float ``[C, H, W]``, C = 1 or 3, values in ``[0, 1]``) to ``path``.

    The format follows the suffix (:func:`format_for_path`): PNG, TIFF (deflate), JPEG
    (quality 95, 4:4:4, 8-bit only), BMP (8-bit, no alpha) or WebP (lossless; gray is
    stored as RGB, so it reads back with 3 equal channels). Values are clamped to
    ``[0, 1]`` and rounded to the nearest of the ``2**bit_depth`` levels; ``bit_depth``
    16 needs PNG or TIFF. ``alpha``: ``[1, H, W]`` in ``[0, 1]``, for PNG, TIFF, WebP.
    ``icc_profile`` is embedded in all formats but BMP. No EXIF is written: ``x`` is in
    display orientation, and an orientation tag would rotate it a second time.

    The file is written atomically. An existing ``path`` is refused unless
    ``overwrite``; a ``path`` that is the same file as one in ``protect`` (the inputs)
    is refused even then. Returns ``path``. Wrong shapes or NaN raise ``ValueError``;
    an impossible format request or a failed write raises :class:`DataError`.
    """
    target = Path(path)
    fmt = format_for_path(target)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth!r}")
    if bit_depth == 16 and fmt not in FORMATS_16BIT:
        raise DataError(f"{target}: {fmt} cannot store 16-bit samples; write .png or .tif, or use 8 bits")
    if alpha is not None and fmt not in FORMATS_ALPHA:
        raise DataError(f"{target}: {fmt} cannot store an alpha channel; write .png, .tif or .webp, or drop alpha")
    check_target(target, overwrite=overwrite, protect=protect)
    pixels = quantize(x, alpha, bit_depth)
    try:
        with atomic_path(target) as tmp:
            _encode(tmp, pixels, fmt, has_alpha=alpha is not None, bit_depth=bit_depth, icc=icc_profile)
    except OSError as err:
        raise DataError(f"{target}: cannot write image ({err.strerror or err})") from err
    return target


# -- reading ------------------------------------------------------------------------


def pixel_limit(max_pixels: int | None) -> int:
    """The decompression-bomb limit in pixels: ``max_pixels``, else ``$AEDENOISE_MAX_PIXELS``,
    else :data:`DEFAULT_MAX_PIXELS`; not a positive whole number raises :class:`ConfigError`."""
    if max_pixels is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        try:
            max_pixels = int(raw) if raw else DEFAULT_MAX_PIXELS
        except ValueError:
            raise ConfigError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels") from None
    if max_pixels <= 0:
        raise ConfigError(f"the pixel limit must be positive, not {max_pixels} (max_pixels / {MAX_PIXELS_ENV})")
    return max_pixels


def sniff_format(src: Path) -> tuple[str, bytes]:
    """``(format, head)``: "PNG", "JPEG", "TIFF", "BMP" or "WEBP" from the content of ``src``, and
    its first 32 bytes. A missing, empty or unrecognised file (or a folder) raises :class:`DataError`."""
    if src.is_dir():
        raise DataError(f"{src}: is a directory, not an image file")
    try:
        with open(src, "rb") as f:
            head = f.read(32)
    except FileNotFoundError:
        raise DataError(f"{src}: no such image file") from None
    except OSError as err:
        raise DataError(f"{src}: cannot read ({err.strerror or err})") from err
    if not head:
        raise DataError(f"{src}: empty file (0 bytes), not an image")
    for magic, fmt in _MAGIC:
        if head.startswith(magic) and (fmt != "WEBP" or head[8:12] == b"WEBP"):
            return fmt, head
    raise DataError(f"{src}: not a PNG, JPEG, TIFF, BMP or WebP image (unrecognised content)")


# -- writing ------------------------------------------------------------------------


def check_target(target: Path, *, overwrite: bool, protect: Iterable[PathLike]) -> None:
    """Refuse to write ``target`` if it is a folder, the same file as one in ``protect``
    (the inputs: even with ``overwrite``) or an existing file without ``overwrite``."""
    if target.is_dir():
        raise DataError(f"{target}: is a directory; give an image file name")
    if target.exists() and any(_same_file(target, p) for p in protect):
        raise DataError(f"{target}: is an input image; refusing to overwrite it (write elsewhere)")
    if target.exists() and not overwrite:
        raise DataError(f"{target}: already exists; refusing to overwrite it (choose another path or allow "
                        f"overwriting)")


def _same_file(a: Path, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # b does not exist (or cannot be inspected): not the same file
        return False


def quantize(x: Tensor, alpha: Tensor | None, bit_depth: int) -> np.ndarray:
    """[C, H, W] (+ alpha [1, H, W]) floats -> [H, W, C(+1)] uint8/uint16, clamped to [0, 1] and rounded.

    Wrong shapes or NaN raise ``ValueError``.
    """
    x = torch.as_tensor(x)
    if x.ndim != 3 or x.shape[0] not in (1, 3) or not torch.is_floating_point(x):
        raise ValueError(f"x must be a float tensor [C, H, W] with C = 1 or 3, got {x.dtype} {tuple(x.shape)}")
    planes = [x]
    if alpha is not None:
        alpha = torch.as_tensor(alpha)
        if tuple(alpha.shape) != (1, *x.shape[1:]) or not torch.is_floating_point(alpha):
            raise ValueError(f"alpha must be a float tensor [1, H, W] matching x, got {tuple(alpha.shape)}")
        planes.append(alpha)
    t = torch.cat([p.detach().to("cpu", torch.float32) for p in planes])
    if torch.isnan(t).any():
        raise ValueError("x or alpha contains NaN; cannot write it as an image")
    q = t.clamp_(0, 1).mul_(255 if bit_depth == 8 else 65535).round_().to(torch.int32)
    return q.permute(1, 2, 0).numpy().astype(np.uint8 if bit_depth == 8 else np.uint16, order="C")


def _encode(dst: Path, pixels: np.ndarray, fmt: str, *, has_alpha: bool, bit_depth: int, icc: bytes | None) -> None:
    n = pixels.shape[2]
    if fmt == "TIFF":
        write_tiff(dst, pixels, has_alpha=has_alpha, icc=icc)
    elif fmt == "PNG" and bit_depth == 16 and n > 1:
        write_png16(dst, pixels, icc)
    else:
        from PIL import Image

        im = Image.fromarray(pixels[..., 0] if n == 1 else pixels)  # L, LA, RGB, RGBA or I;16
        if fmt == "WEBP" and im.mode in ("L", "LA"):
            im = im.convert("RGBA" if has_alpha else "RGB")
        options = dict(_SAVE_OPTIONS.get(fmt, {}))
        if icc and fmt != "BMP":
            options["icc_profile"] = icc
        im.save(dst, format=fmt, **options)  # explicit format: the temp name's suffix is not trusted
