"""Image files in and out: the only place where uint8/uint16 pixels exist.

:func:`read_image` gives an :class:`ImageFile`: ``data`` float32 ``[C, H, W]`` in
``[0, 1]`` (C = 1 gray, 3 color) and ``alpha`` ``[1, H, W]`` (or ``None``) kept apart so
it passes through a denoiser untouched. :func:`write_image` is the inverse;
:func:`to_channels` adapts gray/color to a model. The format is sniffed from content.

Decoders, chosen on purpose:

* Pillow: PNG, JPEG, TIFF, BMP, WebP up to 8 bits per sample and 16-bit gray, exactly.
  Palette -> RGB (RGBA with transparency), 1-bit -> gray {0, 1}, CMYK/YCbCr/HSV -> RGB
  (Pillow's naive conversion; a CMYK ICC profile is dropped), a tRNS color key ->
  alpha, EXIF orientation applied (``ImageOps.exif_transpose``). Loaded fully, so a
  truncated file is an error (``LOAD_TRUNCATED_IMAGES`` is left alone).
* pypng for 16-bit PNG with color or alpha, which Pillow reduces to 8 bits (and for
  writing them, which Pillow cannot): pure Python, MIT, small, exact for every filter
  and interlacing. Slow (about 2 s per megapixel of Paeth-filtered RGB) but such files
  are rare; the alternatives are big binary packages (imagecodecs, OpenCV) or a
  home-made decoder needing the same per-pixel Python loop for the Paeth filter.
* tifffile for TIFF with 16-bit color or gray+alpha, or float samples (must lie in
  ``[0, 1]``; ``bit_depth`` 16), and for writing every TIFF (deflate + predictor). LZW
  or JPEG compression there needs the optional ``imagecodecs`` (a clear error says so).
  Only the first page/frame of any file is read.

Decompression-bomb guard: more than :data:`DEFAULT_MAX_PIXELS` pixels (``width *
height``; ``max_pixels=`` or ``$AEDENOISE_MAX_PIXELS`` override) is refused from the
header, before decoding. Pillow's own check lives in ``Image.open``, which is bypassed
by opening the format's plugin class directly; the few plugins that check again (TIFF,
WebP) cannot be bypassed: their warning is silenced, their error becomes a DataError.
Every problem with a file raises :class:`~aedenoise.errors.DataError` naming the file.
"""

from __future__ import annotations

import importlib
import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from aedenoise.atomic import atomic_path
from aedenoise.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})  # lower case
FORMATS_16BIT = frozenset({"PNG", "TIFF"})  # what write_image can write with bit_depth=16
FORMATS_ALPHA = frozenset({"PNG", "TIFF", "WEBP"})  # ... and with alpha
DEFAULT_MAX_PIXELS = 250_000_000
MAX_PIXELS_ENV = "AEDENOISE_MAX_PIXELS"

_FORMAT_BY_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                     ".bmp": "BMP", ".webp": "WEBP"}
_PILLOW_CLASSES = {"PNG": ("PngImagePlugin", "PngImageFile"), "JPEG": ("JpegImagePlugin", "JpegImageFile"),
                   "TIFF": ("TiffImagePlugin", "TiffImageFile"), "BMP": ("BmpImagePlugin", "BmpImageFile"),
                   "WEBP": ("WebPImagePlugin", "WebPImageFile")}
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95, "subsampling": 0},  # 4:4:4: no chroma blur on denoised output
    "WEBP": {"lossless": True, "exact": True},  # exact: keep RGB under transparent pixels
}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
          (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"), (b"BM", "BMP"), (b"RIFF", "WEBP"))
_ORIENTATION_TAG = 0x0112
_ICC_TAG = 34675
_GRAY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


@dataclass(frozen=True, eq=False)
class ImageFile:
    """One decoded image.

    ``data``: float32 ``[C, H, W]`` in ``[0, 1]``, ``C`` = 1 (gray) or 3 (RGB), display
    orientation. ``alpha``: float32 ``[1, H, W]`` in ``[0, 1]`` (straight, not
    premultiplied) or ``None``. ``bit_depth``: 8 or 16, the precision of the stored
    samples (write back with it where the format allows). ``format``: "PNG", "JPEG",
    "TIFF", "BMP" or "WEBP", from the content. ``icc_profile``: the embedded color
    profile to write back, or ``None``.
    """

    path: Path
    data: Tensor
    alpha: Tensor | None
    bit_depth: int
    format: str
    icc_profile: bytes | None = None

    @property
    def channels(self) -> int:
        return int(self.data.shape[0])


class _Decoded(NamedTuple):
    pixels: np.ndarray  # [H, W] or [H, W, n]: uint8, uint16 or float32 in [0, 1]
    has_alpha: bool  # the last of the n planes is alpha
    icc: bytes | None
    premultiplied: bool = False


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
    truncated, corrupt, oversized or unsupported file.
    """
    src = Path(path)
    limit = _pixel_limit(max_pixels)
    head = _read_head(src)
    fmt = _sniff(head)
    if fmt is None:
        raise DataError(f"{src}: not a PNG, JPEG, TIFF, BMP or WebP image (unrecognised content)")
    decoded = _read_tiff(src, limit) if fmt == "TIFF" else None
    if decoded is None:
        png16 = fmt == "PNG" and len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6)
        decoded = _read_pillow(src, fmt, limit, png16=png16)
    pixels = decoded.pixels if decoded.pixels.ndim == 3 else decoded.pixels[..., None]
    top = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(pixels.dtype, 1)  # float: already [0, 1]
    values = pixels.astype(np.float32)
    values /= np.float32(top)
    planes = torch.from_numpy(values).permute(2, 0, 1).contiguous()
    color = planes.shape[0] - int(decoded.has_alpha)
    if color not in (1, 3):
        raise DataError(f"{src}: unsupported image with {color} color channels (expected gray or RGB)")
    data, alpha = planes, None
    if decoded.has_alpha:
        data, alpha = planes[:color].clone(), planes[color:].clone()
        if decoded.premultiplied:
            data = torch.where(alpha > 0, data / alpha.clamp_min(1e-12), 0.0).clamp_(0, 1)
    return ImageFile(path=src, data=data, alpha=alpha, bit_depth=8 if top == 255 else 16, format=fmt,
                     icc_profile=decoded.icc)


def write_image(path: PathLike, x: Tensor, *, alpha: Tensor | None = None, bit_depth: int = 8,
                overwrite: bool = False, protect: Iterable[PathLike] = (), icc_profile: bytes | None = None) -> Path:
    """Write ``x`` (float ``[C, H, W]``, C = 1 or 3, values in ``[0, 1]``) to ``path``.

    The format follows the suffix (:func:`format_for_path`): PNG, TIFF (deflate), JPEG
    (quality 95, 4:4:4, 8-bit only), BMP (8-bit, no alpha) or WebP (lossless; gray is
    stored as RGB, so it reads back with 3 equal channels). Values are clamped to
    ``[0, 1]`` and rounded to the nearest of the ``2**bit_depth`` levels; ``bit_depth``
    16 needs PNG or TIFF. ``alpha``: ``[1, H, W]`` in ``[0, 1]``, for PNG, TIFF, WebP.
    ``icc_profile`` is embedded in all formats but BMP.

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
    _check_target(target, overwrite=overwrite, protect=protect)
    pixels = _quantize(x, alpha, bit_depth)
    try:
        with atomic_path(target) as tmp:
            _encode(tmp, pixels, fmt, has_alpha=alpha is not None, bit_depth=bit_depth, icc=icc_profile)
    except OSError as err:
        raise DataError(f"{target}: cannot write image ({err.strerror or err})") from err
    return target


# -- reading ------------------------------------------------------------------------


def _pixel_limit(max_pixels: int | None) -> int:
    if max_pixels is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        try:
            max_pixels = int(raw) if raw else DEFAULT_MAX_PIXELS
        except ValueError:
            raise ConfigError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels") from None
    if max_pixels <= 0:
        raise ConfigError(f"the pixel limit must be positive, not {max_pixels} (max_pixels / {MAX_PIXELS_ENV})")
    return max_pixels


def _check_pixels(src: Path, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise DataError(f"{src}: {width}x{height} pixels exceeds the limit of {limit:,} pixels (decompression-bomb "
                        f"guard); if the file is trusted, raise it with {MAX_PIXELS_ENV} or max_pixels=")


def _read_head(src: Path) -> bytes:
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
    return head


def _sniff(head: bytes) -> str | None:
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt if fmt != "WEBP" or head[8:12] == b"WEBP" else None
    return None


def _read_pillow(src: Path, fmt: str, limit: int, *, png16: bool) -> _Decoded:
    from PIL import Image, ImageOps

    module, name = _PILLOW_CLASSES[fmt]
    try:
        opener = getattr(importlib.import_module(f"PIL.{module}"), name)
    except ImportError as err:
        raise DataError(f"{src}: this Pillow installation cannot read {fmt} ({err})") from err
    try:
        with warnings.catch_warnings(), opener(src) as im:  # the plugin class parses the header only
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size passed our own check
            _check_pixels(src, im.width, im.height, limit)
            im.load()  # decode everything now, so truncation surfaces here
            icc = im.info.get("icc_profile") or None
            if png16:
                orientation = im.getexif().get(_ORIENTATION_TAG, 1)
                pixels = _key_to_alpha(*_read_png16(src))
                return _Decoded(_orient(pixels, orientation), pixels.shape[2] in (2, 4), icc)
            return _pillow_pixels(ImageOps.exif_transpose(im), src, icc)
    except DataError:
        raise
    except Image.DecompressionBombError as err:  # some plugins (TIFF, WebP) check Pillow's limit too
        raise DataError(f"{src}: over Pillow's decompression-bomb limit ({err}); if the file is trusted, raise "
                        f"PIL.Image.MAX_IMAGE_PIXELS") from err
    except Exception as err:  # Pillow/pypng report bad files with many exception types
        raise DataError(f"{src}: cannot decode {fmt} image ({type(err).__name__}: {err})") from err


def _pillow_pixels(im, src: Path, icc: bytes | None) -> _Decoded:  # im: PIL.Image.Image
    mode = im.mode
    key = im.info.get("transparency") if mode in ("L", "RGB", *_GRAY16_MODES) else None
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("La", "RGBa", "RGBX"):
        im = im.convert({"La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}[mode])
    elif mode in ("CMYK", "YCbCr", "HSV"):
        im, icc = im.convert("RGB"), None if mode == "CMYK" else icc
    elif mode not in ("L", "LA", "RGB", "RGBA", *_GRAY16_MODES):
        raise DataError(f"{src}: unsupported image mode {mode!r}; convert it to gray or RGB (8 or 16 bit)")
    pixels = np.asarray(im)
    if mode in _GRAY16_MODES:
        if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
            raise DataError(f"{src}: integer samples outside the 16-bit range; convert to 8 or 16 bit")
        pixels = pixels.astype(np.uint16)
    pixels = _key_to_alpha(pixels if pixels.ndim == 3 else pixels[..., None], key)
    return _Decoded(pixels, pixels.shape[2] in (2, 4), icc)


def _read_png16(src: Path) -> tuple[np.ndarray, object]:
    """16-bit PNG samples [H, W, planes] as uint16 (tRNS key returned apart), via pypng."""
    import png

    with open(src, "rb") as f:
        width, height, rows, info = png.Reader(file=f).read()
        pixels = np.stack([np.asarray(row, dtype=np.uint16) for row in rows])
    return pixels.reshape(height, width, info["planes"]), info.get("transparent")


def _key_to_alpha(pixels: np.ndarray, key: object) -> np.ndarray:
    """Append an alpha plane, 0 where gray/RGB ``pixels`` [H, W, 1|3] equal the tRNS color ``key``."""
    if not isinstance(key, (int, tuple)) or pixels.shape[2] not in (1, 3):
        return pixels
    color = np.array(key if isinstance(key, tuple) else (key,), dtype=np.int64)
    top = np.iinfo(pixels.dtype).max
    if color.shape != (pixels.shape[2],) or color.min() < 0 or color.max() > top:
        return pixels  # a key no pixel can match: everything is opaque
    opaque = (pixels != color.astype(pixels.dtype)).any(axis=2, keepdims=True)
    return np.concatenate([pixels, opaque.astype(pixels.dtype) * top], axis=2)


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF/TIFF orientation (1-8) to [H, W, n] pixels, as ``ImageOps.exif_transpose``."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}
    op = ops.get(int(orientation))
    return pixels if op is None else np.ascontiguousarray(op(pixels))


def _read_tiff(src: Path, limit: int) -> _Decoded | None:
    """Decode a TIFF that Pillow cannot decode exactly; ``None`` if Pillow can."""
    import tifffile

    try:
        with tifffile.TiffFile(src) as tif:
            page = tif.pages[0]
            _check_pixels(src, page.imagewidth, page.imagelength, limit)
            end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
            if end > src.stat().st_size:
                raise DataError(f"{src}: truncated TIFF (pixel data ends after the end of the file)")
            bits, spp = page.bitspersample, page.samplesperpixel
            sampleformat, photometric = int(page.sampleformat), int(page.photometric)
            if sampleformat == 1 and (bits <= 8 or (bits == 16 and spp == 1 and photometric == 1)):
                return None
            color = {0: 1, 1: 1, 2: 3}.get(photometric, 0)
            if not ((sampleformat == 1 and bits == 16) or sampleformat == 3) or not color or \
                    spp - color not in (0, 1) or page.axes not in ("YX", "YXS", "SYX"):
                kind = ", ".join(str(getattr(v, "name", v)) for v in (page.sampleformat, page.photometric))
                raise DataError(f"{src}: unsupported TIFF ({spp} samples per pixel of {bits}-bit {kind}, axes "
                                f"{page.axes}); use 8/16-bit gray or RGB, with optional alpha")
            if page.compression not in tifffile.TIFF.DECOMPRESSORS or \
                    (page.predictor > 1 and page.predictor not in tifffile.TIFF.UNPREDICTORS):
                raise DataError(f"{src}: TIFF compression {getattr(page.compression, 'name', page.compression)} "
                                f"(predictor {page.predictor}) needs the optional package imagecodecs: "
                                f"pip install imagecodecs")
            pixels = page.asarray()
            orientation = page.tags[_ORIENTATION_TAG].value if _ORIENTATION_TAG in page.tags else 1
            icc = bytes(page.tags[_ICC_TAG].value) if _ICC_TAG in page.tags else None
            premultiplied = spp > color and tuple(map(int, page.extrasamples[:1])) == (1,)
    except DataError:
        raise
    except Exception as err:  # tifffile reports bad files with many exception types
        raise DataError(f"{src}: cannot decode TIFF image ({type(err).__name__}: {err})") from err
    if page.axes == "SYX":
        pixels = np.moveaxis(pixels, 0, -1)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32)
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
            raise DataError(f"{src}: floating-point samples outside [0, 1] (or not finite); "
                            f"rescale to [0, 1] or save as 8/16-bit integers")
    if photometric == 0:  # min-is-white gray
        pixels[..., 0] = (1 if pixels.dtype.kind == "f" else 65535) - pixels[..., 0]
    return _Decoded(_orient(pixels, orientation), spp > color, icc, premultiplied)


# -- writing ------------------------------------------------------------------------


def _check_target(target: Path, *, overwrite: bool, protect: Iterable[PathLike]) -> None:
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


def _quantize(x: Tensor, alpha: Tensor | None, bit_depth: int) -> np.ndarray:
    """[C, H, W] (+ alpha [1, H, W]) floats -> [H, W, C(+1)] uint8/uint16, clamped and rounded."""
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
        import tifffile

        tifffile.imwrite(dst, pixels if n > 1 else pixels[..., 0], photometric="rgb" if n >= 3 else "minisblack",
                         planarconfig="contig" if n > 1 else None, extrasamples=(2,) if has_alpha else None,
                         compression="zlib", predictor=True, metadata=None,
                         **({"iccprofile": icc} if icc else {}))
    elif fmt == "PNG" and bit_depth == 16 and n > 1:
        _write_png16(dst, pixels, icc)
    else:
        from PIL import Image

        im = Image.fromarray(pixels[..., 0] if n == 1 else pixels)  # L, LA, RGB, RGBA or I;16
        if fmt == "WEBP" and im.mode in ("L", "LA"):
            im = im.convert("RGBA" if has_alpha else "RGB")
        options = dict(_SAVE_OPTIONS.get(fmt, {}))
        if icc and fmt != "BMP":
            options["icc_profile"] = icc
        im.save(dst, format=fmt, **options)  # explicit format: the temp name's suffix is not trusted


def _write_png16(dst: Path, pixels: np.ndarray, icc: bytes | None) -> None:
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
