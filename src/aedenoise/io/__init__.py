"""Image files in and out: the only place where uint8/uint16 pixels exist.

``image_files.py`` reads and writes every supported format as float32 ``[C, H, W]`` in
``[0, 1]`` (:func:`read_image`, :func:`write_image`, :class:`ImageFile`), with the
decompression-bomb guard and atomic writes; ``stacks.py`` reads multi-page TIFFs page by
page (:func:`read_pages`, :func:`page_count`) and writes them one page at a time
(:class:`TiffPageWriter`); ``pillow_codec.py`` holds the Pillow decoding both use,
``codecs.py`` the other codecs (pypng, tifffile); ``color.py`` converts CMYK to sRGB
through its ICC profile. May import only the top-level shared modules (errors, atomic).
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
from aedenoise.io.stacks import TiffPageWriter, needs_bigtiff, page_count, read_pages

__all__ = [
    "ColorConversionWarning",
    "DEFAULT_MAX_PIXELS",
    "FORMATS_16BIT",
    "FORMATS_ALPHA",
    "IMAGE_SUFFIXES",
    "ImageFile",
    "TiffPageWriter",
    "format_for_path",
    "is_image_path",
    "needs_bigtiff",
    "page_count",
    "read_image",
    "read_pages",
    "to_channels",
    "write_image",
]
