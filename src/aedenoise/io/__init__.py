"""Image files in and out: the only place where uint8/uint16 pixels exist.

``image_files.py`` reads and writes every supported format as float32 ``[C, H, W]`` in
``[0, 1]`` (:func:`read_image`, :func:`write_image`, :class:`ImageFile`), with the
decompression-bomb guard and atomic writes; ``codecs.py`` holds the non-Pillow codecs
(pypng, tifffile); ``color.py`` converts CMYK to sRGB through its ICC profile.
May import only the top-level shared modules (errors, atomic).
"""

from aedenoise.io.color import ColorConversionWarning
from aedenoise.io.image_files import (
    DEFAULT_MAX_PIXELS,
    FORMATS_16BIT,
    FORMATS_ALPHA,
    IMAGE_SUFFIXES,
    ImageFile,
    format_for_path,
    is_image_path,
    read_image,
    to_channels,
    write_image,
)

__all__ = [
    "ColorConversionWarning",
    "DEFAULT_MAX_PIXELS",
    "FORMATS_16BIT",
    "FORMATS_ALPHA",
    "IMAGE_SUFFIXES",
    "ImageFile",
    "format_for_path",
    "is_image_path",
    "read_image",
    "to_channels",
    "write_image",
]
