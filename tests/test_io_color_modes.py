"""Color modes and orientation of real-world files: CMYK (with and without an ICC profile), palette, EXIF."""

from __future__ import annotations

import io
import itertools
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import PIL
import torch
from PIL import Image, ImageCms

from aedenoise.cli import main
from aedenoise.io import ColorConversionWarning, read_image

NAIVE = "converted with the naive formula; colours may shift"

# pure inks and their mixes: (C, M, Y, K) on the 0-255 scale
INKS = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255), (255, 255, 0, 0),
        (255, 255, 255, 255)]


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _swapped_rgb(c: float, m: float, y: float, k: float) -> tuple[float, float, float]:
    """What the test profile says CMYK ink looks like: cyan takes away blue (not red), magenta red, yellow green."""
    return 255 * (1 - m) * (1 - k), 255 * (1 - y) * (1 - k), 255 * (1 - c) * (1 - k)


def _cmyk_profile() -> bytes:
    """A minimal ICC v2 CMYK printer profile (2-point lut8 A2B0 to Lab) that is NOT the naive formula.

    The 16 corners of the CMYK cube get the sRGB colors of :func:`_swapped_rgb`, as Lab
    (v2 8-bit encoding: L * 255 / 100, a + 128, b + 128).
    """
    corners = list(itertools.product((0, 1), repeat=4))  # the first channel varies slowest, as in ICC CLUTs
    rgb = np.array([_swapped_rgb(*c) for c in corners], np.float64).round().astype(np.uint8).reshape(1, 16, 3)
    lab = np.asarray(ImageCms.profileToProfile(Image.fromarray(rgb), ImageCms.createProfile("sRGB"),
                                               ImageCms.createProfile("LAB"), outputMode="LAB")).reshape(16, 3)
    clut = lab.astype(np.int16)
    clut[:, 1:] = lab[:, 1:].view(np.int8).astype(np.int16) + 128  # Pillow's LAB mode stores a, b signed
    ramp = bytes(range(256))
    identity = b"".join(_s15(float(i == j)) for i in range(3) for j in range(3))
    lut = b"mft1" + bytes(4) + bytes([4, 3, 2, 0]) + identity + ramp * 4 + clut.astype(np.uint8).tobytes() + ramp * 3
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    text = b"test CMYK\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8 + 3 + 67)
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + d50), (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000) + b"prtrCMYKLab "
              + bytes(12) + b"acsp" + bytes(28) + d50 + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + data


def _patches(colors: list[tuple[int, ...]], mode: str, side: int = 8) -> Image.Image:
    """One ``side`` x ``side`` patch per color, side by side (flat patches: JPEG keeps them nearly exact)."""
    row = np.repeat(np.array(colors, np.uint8)[None], side, axis=1).repeat(side, axis=0)
    return Image.frombytes(mode, (side * len(colors), side), row.tobytes())


def _centers(data: torch.Tensor, count: int, side: int = 8) -> np.ndarray:
    """[count, 3] values at the centers of the patches, on the 0-255 scale."""
    return np.array([data[:, side // 2, i * side + side // 2].numpy() * 255 for i in range(count)])


def _read_quietly(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ColorConversionWarning (nor any other)
        return read_image(path)


# -- CMYK ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_without_profile_is_converted_naively_with_a_warning(tmp_path, suffix):
    cmyk = np.random.default_rng(8).integers(0, 256, (6, 10, 4), dtype=np.uint8)
    path = tmp_path / f"noprofile{suffix}"
    Image.frombytes("CMYK", (10, 6), cmyk.tobytes()).save(path, quality=95)
    with pytest.warns(ColorConversionWarning, match=rf"noprofile\{suffix}: CMYK without an ICC profile: {NAIVE}"):
        img = read_image(path)
    with Image.open(path) as im:
        assert im.mode == "CMYK" and "icc_profile" not in im.info
        expected = np.asarray(im.convert("RGB"), np.float32) / np.float32(255)
    assert img.channels == 3 and img.icc_profile is None
    assert torch.equal(img.data, torch.from_numpy(expected).permute(2, 0, 1))


def test_pillow_cmyk_jpeg_roundtrips_pure_colors(tmp_path):
    # Pillow writes CMYK JPEGs Adobe-style (inverted, with the Adobe marker) and un-inverts them on reading.
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 255, 255), (0, 0, 0),
              (128, 128, 128)]
    _patches(colors, "RGB").convert("CMYK").save(tmp_path / "adobe.jpg", quality=95)
    with Image.open(tmp_path / "adobe.jpg") as im:
        assert im.mode == "CMYK" and "adobe" in im.info
    with pytest.warns(ColorConversionWarning, match="adobe.jpg"):
        img = read_image(tmp_path / "adobe.jpg")
    assert np.abs(_centers(img.data, len(colors)) - np.array(colors)).max() <= 4  # red reads back as red


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_with_profile_is_converted_through_it_to_srgb(tmp_path, suffix):
    icc = _cmyk_profile()
    path = tmp_path / f"profiled{suffix}"
    _patches(INKS, "CMYK").save(path, icc_profile=icc, quality=95)
    img = _read_quietly(path)
    assert img.channels == 3 and img.icc_profile is None  # sRGB now: the CMYK profile is not passed on
    got = _centers(img.data, len(INKS))
    expected = np.array([_swapped_rgb(*(np.array(ink) / 255)) for ink in INKS])
    assert np.abs(got - expected).max() <= 12  # the profile's colors (8-bit Lab grid, JPEG), not the naive ones
    naive = np.array([[255 * (1 - c / 255) * (1 - k / 255), 255 * (1 - m / 255) * (1 - k / 255),
                       255 * (1 - y / 255) * (1 - k / 255)] for c, m, y, k in INKS])
    assert np.abs(got - naive).max() > 200  # pure cyan: yellow through the profile, cyan naively
    if suffix == ".tif":  # lossless: exactly ImageCms with the documented intent
        with Image.open(path) as im:
            ref = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                            ImageCms.createProfile("sRGB"), outputMode="RGB",
                                            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION)
        assert torch.equal(img.data, torch.from_numpy(np.asarray(ref, np.float32) / np.float32(255)).permute(2, 0, 1))


@pytest.mark.parametrize("case", ["garbage", "rgb profile", "no ImageCms"])
def test_cmyk_with_unusable_profile_falls_back_with_a_warning(tmp_path, monkeypatch, case):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    icc, reason = {"garbage": (b"not an ICC profile" * 8, "unusable ICC profile"),
                   "rgb profile": (srgb, "ICC profile for RGB, not CMYK"),
                   "no ImageCms": (_cmyk_profile(), "ImageCms is unavailable")}[case]
    path = tmp_path / "bad.jpg"
    _patches(INKS, "CMYK").save(path, icc_profile=icc, quality=95)
    if case == "no ImageCms":
        monkeypatch.delattr(PIL, "ImageCms")  # `from PIL import ImageCms` now raises ImportError
        monkeypatch.setitem(sys.modules, "PIL.ImageCms", None)
    with pytest.warns(ColorConversionWarning, match=rf"bad\.jpg: CMYK with .*{reason}.*: {NAIVE}"):
        img = read_image(path)
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB"), np.float32) / np.float32(255)
    assert img.icc_profile is None and torch.equal(img.data, torch.from_numpy(expected).permute(2, 0, 1))


def test_denoise_cli_writes_cmyk_as_untagged_srgb(tmp_path):
    _patches(INKS, "CMYK").save(tmp_path / "in.jpg", icc_profile=_cmyk_profile(), quality=95)
    assert _denoise(tmp_path / "in.jpg", tmp_path / "out.jpg") == 0
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.mode == "RGB" and "icc_profile" not in im.info
    expected = np.array([_swapped_rgb(*(np.array(ink) / 255)) for ink in INKS])
    assert np.abs(_centers(read_image(tmp_path / "out.jpg").data, len(INKS)) - expected).max() <= 16


# -- palette ------------------------------------------------------------------------


def _palette_image(colors: int, seed: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """A P image using every entry of a random ``colors``-entry palette: (image, indices [H, W], palette [n, 3])."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colors, 3), dtype=np.uint8)
    idx = rng.permutation(np.arange(64) % colors).astype(np.uint8).reshape(4, 16)
    im = Image.frombytes("P", (16, 4), idx.tobytes())
    im.putpalette(palette.tobytes())
    return im, idx, palette


def _exact(values: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, n] -> the float32 [n, H, W] that read_image must give: value / 255, nothing else."""
    return torch.from_numpy(values.astype(np.float32) / np.float32(255)).permute(2, 0, 1)


@pytest.mark.parametrize("suffix,colors", [(".png", 256), (".png", 16), (".bmp", 256), (".tif", 256)])
def test_palette_colors_are_preserved_exactly(tmp_path, suffix, colors):
    im, idx, palette = _palette_image(colors, seed=colors)
    im.save(tmp_path / f"p{suffix}", **({"bits": 4} if colors == 16 else {}))
    with Image.open(tmp_path / f"p{suffix}") as check:
        assert check.mode == "P"
    img = _read_quietly(tmp_path / f"p{suffix}")
    assert img.bit_depth == 8 and img.alpha is None and torch.equal(img.data, _exact(palette[idx]))


def test_palette_with_per_entry_alpha_is_preserved_exactly(tmp_path):
    im, idx, palette = _palette_image(256, seed=3)
    alphas = np.random.default_rng(4).integers(0, 256, 256, dtype=np.uint8)
    im.save(tmp_path / "pa.png", transparency=alphas.tobytes())  # tRNS: one alpha per palette entry
    img = _read_quietly(tmp_path / "pa.png")
    assert torch.equal(img.data, _exact(palette[idx]))
    assert torch.equal(img.alpha, _exact(alphas[idx][..., None]))


# -- EXIF orientation ---------------------------------------------------------------


def _denoise(src: Path, dst: Path) -> int:
    return main(["denoise", str(src), "-o", str(dst), "--model", "gaussian", "--sigma", "10", "--no-progress",
                 "--device", "cpu"])


@pytest.mark.parametrize("out_suffix", [".jpg", ".png", ".tif"])
def test_exif_rotated_jpeg_is_denoised_and_written_upright(tmp_path, out_suffix):
    stored = np.full((24, 40, 3), 20, np.uint8)  # 40 wide, 24 high as stored
    stored[:8, :12] = 235  # a bright block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "in.jpg", exif=exif.tobytes(), quality=95)
    img = read_image(tmp_path / "in.jpg")
    assert img.data.shape == (3, 40, 24)  # as displayed: 24 wide, 40 high
    assert _denoise(tmp_path / "in.jpg", tmp_path / f"out{out_suffix}") == 0
    with Image.open(tmp_path / f"out{out_suffix}") as out:
        assert out.getexif().get(0x0112, 1) == 1  # no orientation tag to rotate the upright pixels again
        pixels = np.asarray(out.convert("RGB"), np.float32) / 255  # the stored pixels, as any viewer gets them
    assert pixels.shape == (40, 24, 3)
    # the stored top-left corner is now the top-right one: bright there, dark elsewhere
    assert pixels[2:10, 16:22].mean() > 0.8 and pixels[20:, :].mean() < 0.15 and pixels[:, :10].mean() < 0.15
    assert torch.allclose(read_image(tmp_path / f"out{out_suffix}").data, img.data, atol=0.35)
