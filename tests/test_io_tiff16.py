"""16-bit single-page TIFF as microscopes write it: read exactly, denoised and written back with 16 bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, features

from aedenoise.cli import main
from aedenoise.io import read_image

H, W = 40, 48


def _gray16(seed: int = 0) -> np.ndarray:
    """A smooth 16-bit gray image with noise, using the whole range (low and high bytes both vary)."""
    yy, xx = np.mgrid[:H, :W]
    rng = np.random.default_rng(seed)
    x = 30000 + 20000 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 2000, (H, W))
    return np.clip(x, 0, 65535).astype(np.uint16)


def _pillow(mode: str, compression: str | None):
    def save(path: Path, pixels: np.ndarray) -> None:
        im = Image.frombytes(mode, (W, H), pixels.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
        im.save(path, **({"compression": compression} if compression else {}))
    return save


def _tifffile(**options):
    def save(path: Path, pixels: np.ndarray) -> None:
        tifffile.imwrite(path, pixels, **options)
    return save


LIBTIFF = pytest.mark.skipif(not features.check("libtiff"), reason="Pillow without libtiff cannot write LZW/PackBits")

LAYOUTS = {
    "little-endian strips": _tifffile(),
    "big-endian (I;16B)": _tifffile(byteorder=">"),
    "big-endian, written by Pillow": _pillow("I;16B", None),
    "one row per strip": _tifffile(rowsperstrip=1),
    "tiled": _tifffile(tile=(16, 16)),
    "tiled, big-endian, deflate + predictor": _tifffile(tile=(16, 16), byteorder=">", compression="zlib",
                                                        predictor=True),
    "deflate": _tifffile(compression="zlib"),
    "deflate + predictor": _tifffile(compression="zlib", predictor=True),
    "BigTIFF": _tifffile(bigtiff=True),
    "ImageJ": _tifffile(imagej=True),
    "LZW": pytest.param(_pillow("I;16", "tiff_lzw"), marks=LIBTIFF),
    "LZW, from big-endian samples": pytest.param(_pillow("I;16B", "tiff_lzw"), marks=LIBTIFF),
    "PackBits": pytest.param(_pillow("I;16", "packbits"), marks=LIBTIFF),
    "Adobe deflate (libtiff)": pytest.param(_pillow("I;16", "tiff_adobe_deflate"), marks=LIBTIFF),
}


@pytest.mark.parametrize("save", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_gray16_tiff_layouts_read_exactly(tmp_path: Path, save) -> None:
    pixels = _gray16()
    path = tmp_path / "scan.tif"
    save(path, pixels)
    img = read_image(path)
    assert img.bit_depth == 16 and img.format == "TIFF" and img.alpha is None
    assert img.data.dtype == torch.float32 and img.data.shape == (1, H, W)
    assert torch.equal(img.data[0], torch.from_numpy(pixels.astype(np.float32) / 65535))


def test_denoise_keeps_16bit_gray_tiff(tmp_path: Path, capsys) -> None:
    pixels = _gray16()
    src, out = tmp_path / "cell.tif", tmp_path / "out" / "cell.tif"
    tifffile.imwrite(src, pixels, byteorder=">", compression="zlib")  # big-endian, compressed: as some microscopes
    assert main(["denoise", str(src), "-o", str(out), "--model", "gaussian", "--sigma", "5", "--no-progress",
                 "--device", "cpu"]) == 0
    assert f"{src} -> {out}" in capsys.readouterr().out
    written = tifffile.imread(out)
    assert written.dtype == np.uint16 and written.shape == (H, W)
    # the same denoiser on value / 65535, rounded to 16 bits: nothing went through 8 bits on the way
    from aedenoise.denoising import denoise_image, load_denoiser

    x = torch.from_numpy(pixels.astype(np.float32) / 65535)[None]
    expected = denoise_image(load_denoiser("gaussian"), x, sigma=5 / 255)[0].clamp(0, 1).mul(65535).round()
    assert np.abs(written.astype(np.int64) - expected.numpy().astype(np.int64)).max() <= 1
    assert len(np.unique(written)) > 1000  # far more levels than 8 bits hold
