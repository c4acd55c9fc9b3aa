"""Color-mode conversions of the Pillow decoder that need color management: CMYK.

A CMYK image (8-bit JPEG or TIFF; Adobe-style inverted CMYK JPEGs are un-inverted by
Pillow's decoder) becomes sRGB:

* with an embedded ICC profile that LittleCMS accepts as a CMYK profile: converted
  through it to sRGB with Pillow's ``ImageCms``, rendering intent *relative
  colorimetric* with black-point compensation (:data:`CMYK_INTENT`, Photoshop's
  default conversion): in-gamut colors stay as the profile defines them, paper white
  becomes sRGB white and the darkest ink black becomes sRGB black. The result is
  sRGB, so the CMYK profile is not kept;
* otherwise (no profile, ``ImageCms`` unavailable, a profile that cannot be read or
  is not a CMYK profile): Pillow's naive formula (``R = (1 - C)(1 - K)``, ...), with a
  :class:`ColorConversionWarning` naming the file, since the colors may shift.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

CMYK_INTENT = "relative colorimetric with black-point compensation"
_NAIVE = "converted with the naive formula; colours may shift"
_STACKLEVEL = 6  # _naive <- cmyk_to_srgb <- pillow_pixels <- read_pillow <- read_image <- its caller
# (a stack page: ... <- pillow_pixels <- stacks._read_page <- the iterator read_pages returns <- its consumer)


class ColorConversionWarning(UserWarning):
    """An image's colors were converted approximately (e.g. CMYK without a usable ICC profile)."""


def cmyk_to_srgb(im, src: Path | str, icc: bytes | None):  # im: PIL.Image.Image in mode CMYK -> one in mode RGB
    """``im`` converted to sRGB through its ICC profile ``icc``, else naively with a warning naming ``src``
    (the file, or the page of a stack)."""
    if not icc:
        return _naive(im, src, "CMYK without an ICC profile")
    try:
        from PIL import ImageCms
    except ImportError as err:  # Pillow built without LittleCMS
        return _naive(im, src, f"CMYK with an ICC profile, but Pillow's ImageCms is unavailable ({err})")
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = str(profile.profile.xcolor_space).strip()
        if space != "CMYK":
            return _naive(im, src, f"CMYK with an ICC profile for {space or 'an unknown color space'}, not CMYK")
        return ImageCms.profileToProfile(im, profile, ImageCms.createProfile("sRGB"),
                                         renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB",
                                         flags=ImageCms.Flags.BLACKPOINTCOMPENSATION)
    except Exception as err:  # LittleCMS reports bad profiles as PyCMSError, OSError, TypeError, ...
        return _naive(im, src, f"CMYK with an unusable ICC profile ({type(err).__name__}: {err})")


def _naive(im, src: Path | str, reason: str):
    warnings.warn(f"{src}: {reason}: {_NAIVE}", ColorConversionWarning, stacklevel=_STACKLEVEL)
    return im.convert("RGB")
