"""Tests for aedenoise.io: image files in and out."""

from __future__ import annotations

import io as stdio
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageOps

from aedenoise.errors import ConfigError, DataError
from aedenoise.io import (
    IMAGE_SUFFIXES,
    ColorConversionWarning,
    ImageFile,
    format_for_path,
    is_image_path,
    read_image,
    to_channels,
    write_image,
)


def _grid(channels: int, h: int, w: int, bit_depth: int, seed: int) -> torch.Tensor:
    """Random float32 image whose values lie exactly on the bit_depth grid."""
    top = 255 if bit_depth == 8 else 65535
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, top + 1, (channels, h, w), generator=g).float() / top


def _smooth(channels: int, h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    planes = [0.1 + 0.8 * xx, 0.2 + 0.6 * yy, 0.5 + 0.3 * torch.sin(3 * (xx + yy))][:channels]
    return torch.stack(planes)


def _dir_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


# -- round trips ------------------------------------------------------------------

LOSSLESS = [
    *[(s, c, a, b) for s in (".png", ".tif") for c in (1, 3) for a in (False, True) for b in (8, 16)],
    (".tiff", 3, False, 8),
    (".webp", 3, False, 8),
    (".webp", 3, True, 8),
    (".bmp", 1, False, 8),
    (".bmp", 3, False, 8),
]


@pytest.mark.parametrize("suffix,channels,with_alpha,bit_depth", LOSSLESS)
def test_lossless_roundtrip_is_exact(tmp_path, suffix, channels, with_alpha, bit_depth):
    x = _grid(channels, 7, 11, bit_depth, seed=channels + 10 * bit_depth)
    alpha = _grid(1, 7, 11, bit_depth, seed=99) if with_alpha else None
    path = tmp_path / f"img{suffix}"
    assert write_image(path, x, alpha=alpha, bit_depth=bit_depth) == path
    img = read_image(path)
    assert isinstance(img, ImageFile)
    assert img.path == path and img.format == format_for_path(path) and img.bit_depth == bit_depth
    assert img.data.dtype == torch.float32 and img.channels == channels
    assert torch.equal(img.data, x)
    if with_alpha:
        assert img.alpha is not None and img.alpha.dtype == torch.float32 and torch.equal(img.alpha, alpha)
    else:
        assert img.alpha is None
    assert _dir_names(tmp_path) == [path.name]  # no temporary files left behind


@pytest.mark.parametrize("with_alpha", [False, True])
def test_webp_stores_gray_as_equal_rgb(tmp_path, with_alpha):
    x = _grid(1, 5, 6, 8, seed=1)
    alpha = _grid(1, 5, 6, 8, seed=2) if with_alpha else None
    write_image(tmp_path / "g.webp", x, alpha=alpha)
    img = read_image(tmp_path / "g.webp")
    assert img.channels == 3 and torch.equal(img.data, x.expand(3, -1, -1))
    assert torch.allclose(to_channels(img.data, 1), x, atol=1e-6)
    assert (img.alpha is None) != with_alpha and (not with_alpha or torch.equal(img.alpha, alpha))


def test_webp_keeps_color_under_transparent_pixels(tmp_path):
    x = _grid(3, 6, 6, 8, seed=5)
    alpha = torch.zeros(1, 6, 6)
    alpha[:, :3] = 1
    write_image(tmp_path / "t.webp", x, alpha=alpha)
    img = read_image(tmp_path / "t.webp")
    assert torch.equal(img.data, x) and torch.equal(img.alpha, alpha)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_roundtrip_is_close(tmp_path, channels):
    x = _smooth(channels, 32, 48)
    write_image(tmp_path / "a.jpg", x)
    img = read_image(tmp_path / "a.jpg")
    assert img.format == "JPEG" and img.bit_depth == 8 and img.data.shape == x.shape
    mse = torch.mean((img.data - x) ** 2).item()
    assert 10 * np.log10(1 / mse) > 40  # quality 95, 4:4:4


@pytest.mark.parametrize("channels,with_alpha", [(1, True), (3, False), (3, True)])
def test_png16_agrees_with_pillow_8bit_decode(tmp_path, channels, with_alpha):
    # Pillow decodes these 16-bit PNGs to 8 bits by keeping the high byte: an independent check.
    x = _grid(channels, 9, 13, 16, seed=3)
    alpha = _grid(1, 9, 13, 16, seed=4) if with_alpha else None
    write_image(tmp_path / "a.png", x, alpha=alpha, bit_depth=16)
    img = read_image(tmp_path / "a.png")
    planes = torch.cat([img.data] + ([img.alpha] if with_alpha else []))
    high = (planes * 65535).round().to(torch.int64).permute(1, 2, 0).numpy() >> 8
    with Image.open(tmp_path / "a.png") as im:
        pillow = np.asarray(im.convert({1: "LA", 3: "RGBA" if with_alpha else "RGB"}[channels]))
    assert np.array_equal(high.reshape(pillow.shape), pillow)


def test_interlaced_png16_written_by_pypng(tmp_path):
    import png

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 65536, (10, 7, 3), dtype=np.uint16)
    with open(tmp_path / "i.png", "wb") as f:
        png.Writer(7, 10, greyscale=False, bitdepth=16, interlace=True).write(f, pixels.reshape(10, 21))
    img = read_image(tmp_path / "i.png")
    expected = torch.from_numpy(pixels.astype(np.float32) / 65535).permute(2, 0, 1)
    assert img.bit_depth == 16 and torch.equal(img.data, expected)


def test_tiff16_written_by_tifffile_planar_and_miniswhite(tmp_path):
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 65536, (3, 8, 5), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", rgb, photometric="rgb", planarconfig="separate")
    assert torch.equal(read_image(tmp_path / "planar.tif").data, torch.from_numpy(rgb.astype(np.float32) / 65535))
    gray = rng.integers(0, 65536, (8, 5), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "white.tif", gray, photometric="miniswhite")
    img = read_image(tmp_path / "white.tif")
    assert img.bit_depth == 16 and torch.equal(img.data[0], torch.from_numpy((65535 - gray).astype(np.float32) / 65535))


def test_float_tiff_in_unit_range_is_read_and_others_refused(tmp_path):
    x = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)
    tifffile.imwrite(tmp_path / "f.tif", x)
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 16 and torch.equal(img.data[0], torch.from_numpy(x))
    tifffile.imwrite(tmp_path / "white.tif", x, photometric="miniswhite")
    assert torch.equal(read_image(tmp_path / "white.tif").data[0], torch.from_numpy(1 - x))
    tifffile.imwrite(tmp_path / "big.tif", x * 2)
    with pytest.raises(DataError, match=r"big\.tif.*outside \[0, 1\]"):
        read_image(tmp_path / "big.tif")
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((4, 6, 5), np.float32), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(DataError, match=r"five\.tif.*unsupported TIFF"):
        read_image(tmp_path / "five.tif")


def test_premultiplied_alpha_tiff16_is_unpremultiplied(tmp_path):
    color = np.full((2, 3, 3), 40000, np.uint16)
    a = np.full((2, 3, 1), 32768, np.uint16)
    premult = np.round(color.astype(np.float64) * a / 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", np.concatenate([premult, a], 2), photometric="rgb", extrasamples=(1,))
    img = read_image(tmp_path / "p.tif")
    assert torch.allclose(img.data, torch.full((3, 2, 3), 40000 / 65535), atol=2 / 65535)
    assert torch.equal(img.alpha, torch.full((1, 2, 3), 32768 / 65535))


def test_icc_profile_is_carried(tmp_path):
    icc = b"not-really-an-icc-profile" * 4
    x = _grid(3, 4, 5, 16, seed=7)
    for name, bits in [("a.png", 8), ("b.png", 16), ("c.tif", 16), ("d.jpg", 8), ("e.webp", 8)]:
        write_image(tmp_path / name, x, bit_depth=bits, icc_profile=icc)
        img = read_image(tmp_path / name)
        assert img.icc_profile == icc, name
        write_image(tmp_path / ("copy_" + name), img.data, bit_depth=bits, icc_profile=img.icc_profile)
        assert read_image(tmp_path / ("copy_" + name)).icc_profile == icc


# -- modes and orientation --------------------------------------------------------


def test_palette_becomes_rgb_or_rgba(tmp_path):
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 9)
    im = Image.frombytes("P", (3, 2), idx.tobytes())
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "t.png", transparency=1)
    expected = torch.tensor(np.array(palette[:9], np.float32).reshape(3, 3)[idx] / 255).permute(2, 0, 1)
    plain = read_image(tmp_path / "p.png")
    assert plain.alpha is None and torch.equal(plain.data, expected)
    transparent = read_image(tmp_path / "t.png")
    assert torch.equal(transparent.data, expected)
    assert torch.equal(transparent.alpha[0], torch.from_numpy((idx != 1).astype(np.float32)))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_one_bit_becomes_gray_0_1(tmp_path, suffix):
    bits = np.array([[0, 1, 1, 0, 1], [1, 0, 0, 1, 1]], bool)
    Image.fromarray(bits).save(tmp_path / f"b{suffix}")
    img = read_image(tmp_path / f"b{suffix}")
    assert img.bit_depth == 8 and img.channels == 1
    assert torch.equal(img.data[0], torch.from_numpy(bits.astype(np.float32)))


def test_transparency_color_key_becomes_alpha(tmp_path):
    gray = np.array([[3, 7, 3], [9, 3, 7]], np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png", transparency=3)
    img = read_image(tmp_path / "g.png")
    assert torch.equal(img.alpha[0], torch.from_numpy((gray != 3).astype(np.float32)))
    gray16 = gray.astype(np.uint16) * 1000
    Image.fromarray(gray16).save(tmp_path / "g16.png", transparency=7000)
    img16 = read_image(tmp_path / "g16.png")
    assert img16.bit_depth == 16 and torch.equal(img16.alpha[0], torch.from_numpy((gray16 != 7000).astype(np.float32)))
    rgb = np.stack([gray, gray, 255 - gray], 2)
    Image.fromarray(rgb).save(tmp_path / "c.png", transparency=(7, 7, 248))
    assert torch.equal(read_image(tmp_path / "c.png").alpha[0], torch.from_numpy((gray != 7).astype(np.float32)))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = np.random.default_rng(8).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.frombytes("CMYK", (8, 8), cmyk.tobytes()).save(tmp_path / "c.jpg", quality=95)
    with pytest.warns(ColorConversionWarning, match=r"c\.jpg: CMYK without an ICC profile"):  # naive: a warning
        img = read_image(tmp_path / "c.jpg")
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
        expected = np.asarray(im.convert("RGB"), np.float32) / 255
    assert img.channels == 3 and torch.equal(img.data, torch.from_numpy(expected).permute(2, 0, 1))


def test_jpeg_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:, 8:] = 255  # left half black, right half white
    Image.fromarray(rgb).save(tmp_path / "o.jpg", exif=_exif(6), quality=95)
    img = read_image(tmp_path / "o.jpg")
    assert img.data.shape == (3, 16, 8)  # rotated 90 degrees clockwise for display
    assert img.data[:, :8].mean() < 0.05 and img.data[:, 8:].mean() > 0.95  # the left half is now on top


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_same_on_all_decoders(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    rgb8 = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb8).save(tmp_path / "a.png", exif=_exif(orientation))
    with Image.open(tmp_path / "a.png") as im:
        expected = torch.from_numpy(np.asarray(ImageOps.exif_transpose(im), np.float32) / 255).permute(2, 0, 1)
    assert torch.equal(read_image(tmp_path / "a.png").data, expected)
    rgb16 = rgb8.astype(np.uint16) * 257  # the same values on the 16-bit scale
    tifffile.imwrite(tmp_path / "b.tif", rgb16, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    assert torch.equal(read_image(tmp_path / "b.tif").data, expected)  # tifffile decoder
    write_image(tmp_path / "c.png", torch.from_numpy(rgb8 / 255.0).permute(2, 0, 1).float(), bit_depth=16)
    data = (tmp_path / "c.png").read_bytes()
    exif = _exif(orientation).tobytes()
    (tmp_path / "c.png").write_bytes(data[:33] + _png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")) + data[33:])
    assert torch.equal(read_image(tmp_path / "c.png").data, expected)  # pypng decoder


# -- bad input --------------------------------------------------------------------


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    noise = _grid(3, 64, 64, 16, seed=9)
    cases = {"missing": tmp_path / "missing.png", "directory": tmp_path / "dir.png"}
    cases["directory"].mkdir()
    cases["empty"] = tmp_path / "empty.png"
    cases["empty"].write_bytes(b"")
    cases["text"] = tmp_path / "text.jpg"
    cases["text"].write_text("hello, I am not an image\n")
    cases["junk_after_magic"] = tmp_path / "junk.png"
    cases["junk_after_magic"].write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    for name, bits in [("t8.png", 8), ("t16.png", 16), ("t.jpg", 8), ("t8.tif", 8), ("t16.tif", 16), ("t.webp", 8),
                       ("t.bmp", 8)]:
        write_image(tmp_path / name, noise, bit_depth=bits)
        cases["truncated " + name] = _truncate(tmp_path / name)
    return cases


def test_bad_inputs_raise_data_error_naming_the_file(tmp_path):
    for case, path in _bad_files(tmp_path).items():
        with pytest.raises(DataError) as info:
            read_image(path)
        assert path.name in str(info.value), case
        assert "\n" not in str(info.value), case
        if case.startswith("truncated") and not case.endswith("webp"):
            assert "truncated" in str(info.value), case


def test_unsupported_tiff_mode_is_refused(tmp_path):
    cmyk16 = np.zeros((4, 4, 4), np.uint16)
    tifffile.imwrite(tmp_path / "cmyk.tif", cmyk16, photometric="separated")
    with pytest.raises(DataError, match=r"cmyk\.tif.*unsupported"):
        read_image(tmp_path / "cmyk.tif")


# -- decompression-bomb guard -----------------------------------------------------


def test_pixel_limit_argument_and_environment(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png", _grid(1, 10, 10, 8, seed=1))
    assert read_image(tmp_path / "a.png", max_pixels=100).data.shape == (1, 10, 10)
    with pytest.raises(DataError, match=r"a\.png: 10x10 pixels exceeds the limit"):
        read_image(tmp_path / "a.png", max_pixels=99)
    monkeypatch.setenv("AEDENOISE_MAX_PIXELS", "50")
    with pytest.raises(DataError, match="AEDENOISE_MAX_PIXELS"):
        read_image(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png", max_pixels=100).channels == 1  # the argument wins
    monkeypatch.setenv("AEDENOISE_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="AEDENOISE_MAX_PIXELS"):
        read_image(tmp_path / "a.png")


def test_our_limit_replaces_pillows(tmp_path, monkeypatch):
    write_image(tmp_path / "a.jpg", _grid(3, 10, 10, 8, seed=1))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow would refuse 100 pixels
    assert read_image(tmp_path / "a.jpg").data.shape == (3, 10, 10)


@pytest.mark.parametrize("name", ["a.tif", "a.webp"])
def test_pillow_bomb_checks_become_data_error_or_stay_silent(tmp_path, monkeypatch, name):
    write_image(tmp_path / name, torch.zeros(3, 10, 10))  # TIFF: 8-bit, so Pillow decodes it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60)  # 100 pixels: Pillow warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / name).data.shape == (3, 10, 10)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 100 pixels: Pillow raises
    with pytest.raises(DataError, match=name.replace(".", r"\.") + ": over Pillow's decompression-bomb limit"):
        read_image(tmp_path / name)


@pytest.mark.parametrize("name,bits", [("a.tif", 16), ("b.tif", 8), ("c.png", 16), ("d.webp", 8), ("e.bmp", 8)])
def test_pixel_limit_checked_before_decoding(tmp_path, monkeypatch, name, bits):
    write_image(tmp_path / name, _grid(3, 12, 10, bits, seed=2), bit_depth=bits)

    def forbidden(*args, **kwargs):
        raise AssertionError("pixel data decoded before the size check")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", forbidden)
    monkeypatch.setattr(Image.Image, "load", forbidden)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", forbidden)
    with pytest.raises(DataError, match="exceeds the limit"):
        read_image(tmp_path / name, max_pixels=119)


# -- writing ----------------------------------------------------------------------


def test_write_rounds_and_clamps(tmp_path):
    values = [-0.3, 0.0, 0.4 / 255, 0.6 / 255, 100.49 / 255, 100.51 / 255, 254.6 / 255, 1.0, 7.0, float("inf")]
    write_image(tmp_path / "r.png", torch.tensor(values).view(1, 1, -1))
    with Image.open(tmp_path / "r.png") as im:
        assert np.asarray(im)[0].tolist() == [0, 0, 0, 1, 100, 101, 255, 255, 255, 255]
    x16 = torch.tensor([0.5 / 65535, 0.7 / 65535, 1000.4 / 65535]).view(1, 1, -1)
    write_image(tmp_path / "r16.png", x16, bit_depth=16)
    with Image.open(tmp_path / "r16.png") as im:
        assert np.asarray(im)[0].tolist() == [0, 1, 1000]


def test_write_refuses_existing_files_and_inputs(tmp_path):
    x, y = _grid(1, 4, 4, 8, seed=1), _grid(1, 4, 4, 8, seed=2)
    target = tmp_path / "out.png"
    write_image(target, x)
    with pytest.raises(DataError, match=r"out\.png: already exists"):
        write_image(target, y)
    assert torch.equal(read_image(target).data, x)
    write_image(target, y, overwrite=True)
    assert torch.equal(read_image(target).data, y)
    (tmp_path / "sub").mkdir()
    same_file = tmp_path / "sub" / ".." / "out.png"
    with pytest.raises(DataError, match="input image"):
        write_image(target, x, overwrite=True, protect=[same_file])
    assert torch.equal(read_image(target).data, y)
    write_image(target, x, overwrite=True, protect=[tmp_path / "other.png"])  # unrelated protected paths
    assert torch.equal(read_image(target).data, x)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(DataError, match=r"folder\.png: is a directory"):
        write_image(tmp_path / "folder.png", x, overwrite=True)


@pytest.mark.parametrize("name,patch", [("a.png", "PIL.Image.Image.save"), ("a.tif", "tifffile.imwrite")])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, name, patch):
    def broken(self_or_path, *args, **kwargs):
        dst = args[0] if patch.startswith("PIL") else self_or_path
        Path(dst).write_bytes(b"half an image")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(patch, broken)
    with pytest.raises(DataError, match=r"a\.(png|tif): cannot write image \(No space left"):
        write_image(tmp_path / name, _grid(3, 4, 4, 8, seed=1))
    assert _dir_names(tmp_path) == []


def test_write_rejects_impossible_requests(tmp_path):
    x = _grid(3, 4, 4, 8, seed=1)
    a = _grid(1, 4, 4, 8, seed=2)
    for name in ("a.jpg", "a.bmp", "a.webp"):
        with pytest.raises(DataError, match="16-bit"):
            write_image(tmp_path / name, x, bit_depth=16)
    for name in ("a.jpg", "a.bmp"):
        with pytest.raises(DataError, match="alpha"):
            write_image(tmp_path / name, x, alpha=a)
    with pytest.raises(DataError, match="unsupported image extension"):
        write_image(tmp_path / "a.gif", x)
    with pytest.raises(ValueError):
        write_image(tmp_path / "a.png", x[:2])
    with pytest.raises(ValueError):
        write_image(tmp_path / "a.png", x, alpha=a[:, :2])
    with pytest.raises(ValueError):
        write_image(tmp_path / "a.png", x, bit_depth=12)
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "a.png", torch.full((1, 2, 2), float("nan")))
    assert _dir_names(tmp_path) == []


# -- helpers ----------------------------------------------------------------------


def test_to_channels_matches_pillow_luma_and_repeats_gray():
    x = _grid(3, 6, 7, 8, seed=4)
    gray = to_channels(x, 1)
    pil = Image.fromarray((x * 255).round().byte().permute(1, 2, 0).numpy()).convert("L")
    assert gray.shape == (1, 6, 7)
    assert (gray[0] * 255 - torch.from_numpy(np.asarray(pil, np.float32))).abs().max() <= 0.5 + 1e-3
    assert torch.equal(to_channels(torch.ones(3, 2, 2), 1), torch.ones(1, 2, 2))
    batch = x.unsqueeze(0).repeat(2, 1, 1, 1)
    assert torch.equal(to_channels(batch, 1), gray.unsqueeze(0).repeat(2, 1, 1, 1))
    rgb = to_channels(gray, 3)
    assert rgb.shape == (3, 6, 7) and all(torch.equal(rgb[i], gray[0]) for i in range(3))
    assert to_channels(x, 3) is x
    with pytest.raises(ValueError):
        to_channels(torch.zeros(2, 3, 3), 3)


def test_is_image_path_and_suffixes():
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"} == set(IMAGE_SUFFIXES)
    assert is_image_path("a/b.PNG") and is_image_path(Path("x.jpeg")) and is_image_path("c.TIFF")
    assert not is_image_path("notes.txt") and not is_image_path("png")
    assert not is_image_path("dir/.out.png.abc.tmp.png") and not is_image_path("._photo.jpg")
    assert format_for_path("a.JPG") == "JPEG" and format_for_path("b.tif") == "TIFF"
    with pytest.raises(DataError):
        format_for_path("a.gif")

