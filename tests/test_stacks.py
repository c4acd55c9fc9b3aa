"""Multi-page TIFF (z-stacks, time series): page_count, read_pages, TiffPageWriter and ``aedenoise denoise``."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import TiffImagePlugin

import aedenoise.io.stacks as stacks
from aedenoise.cli import main
from aedenoise.errors import DataError
from aedenoise.io import TiffPageWriter, needs_bigtiff, page_count, read_image, read_pages, write_image

H, W = 40, 48
DENOISE = ("--model", "gaussian", "--sigma", "25", "--no-progress", "--device", "cpu")


def _gray16(n: int = 3) -> list[np.ndarray]:
    """``n`` different 16-bit gray pages (smooth pattern + noise, a different pattern per page)."""
    yy, xx = np.mgrid[:H, :W]
    rng = np.random.default_rng(1)
    pages = [30000 + 15000 * np.sin(xx / (3.0 + i)) * np.cos(yy / (5.0 + 2 * i)) + rng.normal(0, 2000, (H, W))
             for i in range(n)]
    return [np.clip(p, 0, 65535).astype(np.uint16) for p in pages]


def _rgb8(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def _write_stack(path: Path, pages: list[np.ndarray], **options) -> Path:
    """One TIFF page per array (uint8/uint16, [H, W] or [H, W, 3]), as tifffile writes a series of pages."""
    with tifffile.TiffWriter(path) as tif:
        for p in pages:
            tif.write(p, photometric="rgb" if p.ndim == 3 else "minisblack", metadata=None, **options)
    return path


def _on_disk(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [page.asarray() for page in tif.pages]


def _denoise(*argv: str | Path) -> int:
    return main(["denoise", *map(str, argv), *DENOISE])


# -- reading ------------------------------------------------------------------------


def test_page_count_and_read_pages_give_every_page(tmp_path: Path) -> None:
    pages = _gray16()
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, np.stack(pages), imagej=True, metadata={"axes": "ZYX"})  # as ImageJ saves a z-stack
    assert page_count(path) == 3
    images = list(read_pages(path))
    assert [img.page for img in images] == [0, 1, 2]
    for img, p in zip(images, pages):
        assert img.bit_depth == 16 and img.format == "TIFF" and img.path == path
        assert img.data.dtype == torch.float32 and torch.equal(img.data[0], torch.from_numpy(p / np.float32(65535)))
    assert torch.equal(read_image(path).data, images[0].data)  # read_image: the first page
    write_image(tmp_path / "one.png", images[1].data, bit_depth=16)
    assert page_count(tmp_path / "one.png") == 1
    assert [torch.equal(img.data, images[1].data) for img in read_pages(tmp_path / "one.png")] == [True]


@pytest.mark.parametrize("kind", ["gray16 (Pillow decodes)", "rgb16 (tifffile decodes)"])
def test_read_pages_decodes_one_page_at_a_time(tmp_path: Path, monkeypatch, kind: str) -> None:
    pages = _gray16() if kind.startswith("gray") else [np.repeat(p[..., None], 3, axis=2) for p in _gray16()]
    path = _write_stack(tmp_path / "s.tif", pages)
    decoded: list[int] = []
    pillow_load, tifffile_asarray = TiffImagePlugin.TiffImageFile.load, tifffile.TiffPage.asarray

    def counting_load(self, *args, **kwargs):
        decoded.append(self.tell())
        return pillow_load(self, *args, **kwargs)

    def counting_asarray(self, *args, **kwargs):
        decoded.append(self.index)
        return tifffile_asarray(self, *args, **kwargs)

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load", counting_load)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", counting_asarray)
    it = read_pages(path)
    assert iter(it) is it and decoded == []  # an iterator; nothing decoded yet
    assert next(it).page == 0
    assert sorted(set(decoded)) == [0]  # page 0 yielded before page 1 or 2 was decoded
    assert next(it).page == 1 and 2 not in decoded
    assert next(it).page == 2
    assert next(it, None) is None


def test_bad_page_is_reported_when_reached_naming_file_and_page(tmp_path: Path) -> None:
    path = _write_stack(tmp_path / "s.tif", _gray16(), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        start, length = tif.pages[2].dataoffsets[0], tif.pages[2].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[start:start + length] = b"\xff" * length  # page 3's deflate stream destroyed, the file still complete
    path.write_bytes(bytes(data))
    it = read_pages(path)
    assert [next(it).page, next(it).page] == [0, 1]
    with pytest.raises(DataError, match=r"s\.tif \(page 3 of 3\): cannot decode"):
        next(it)


def test_pixel_limit_applies_per_page(tmp_path: Path) -> None:
    path = _write_stack(tmp_path / "s.tif", [*_gray16(2), np.zeros((H + 1, W), np.uint16)])
    with pytest.raises(DataError, match=r"s\.tif \(page 1 of 3\): 48x40 pixels exceeds the limit"):
        next(read_pages(path, max_pixels=H * W - 1))
    it = read_pages(path, max_pixels=H * W)
    assert [next(it).page, next(it).page] == [0, 1]
    with pytest.raises(DataError, match=r"page 3 of 3\): 48x41 pixels exceeds the limit"):
        next(it)


def test_truncated_or_looping_page_chain_is_an_error_not_fewer_pages(tmp_path: Path) -> None:
    path = _write_stack(tmp_path / "s.tif", _gray16())
    with tifffile.TiffFile(path) as tif:
        third = tif.pages[2].offset
    data = path.read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:third])  # pages 1 and 2 complete, page 3 gone
    with pytest.raises(DataError, match=r"cut\.tif: truncated TIFF \(page 3's directory lies after the end"):
        page_count(tmp_path / "cut.tif")
    (entries,) = struct.unpack("<H", data[third:third + 2])
    pointer = third + 2 + 12 * entries  # page 3's "next directory": make it page 1 again
    (tmp_path / "loop.tif").write_bytes(data[:pointer] + struct.pack("<I", 8) + data[pointer + 4:])
    with pytest.raises(DataError, match=r"loop\.tif: corrupt TIFF \(page 4's directory is an earlier page's"):
        page_count(tmp_path / "loop.tif")


def test_imagej_stack_with_one_directory_for_all_images_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.stack(_gray16()), imagej=True, truncate=True, metadata={"axes": "ZYX"})
    with pytest.raises(DataError, match=r"big\.tif: ImageJ stack of 3 images stored with 1 page directory"):
        read_pages(path)


# -- writing ------------------------------------------------------------------------


def test_writer_appends_pages_and_keeps_depth_and_channels(tmp_path: Path) -> None:
    gray, rgb = torch.from_numpy(_gray16(1)[0] / np.float32(65535))[None], torch.rand(3, 20, 30)
    alpha = torch.rand(1, 20, 30)
    with TiffPageWriter(tmp_path / "out.tif") as out:
        out.write(gray, bit_depth=16)
        assert not (tmp_path / "out.tif").exists()  # only the finished file gets the name
        out.write(rgb, alpha=alpha, bit_depth=8)
    assert out.pages == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    first, second = read_pages(tmp_path / "out.tif")
    assert first.bit_depth == 16 and torch.equal(first.data, gray)
    assert second.bit_depth == 8 and second.data.shape == (3, 20, 30) and second.alpha is not None
    assert torch.allclose(second.data, rgb, atol=0.5 / 255) and torch.allclose(second.alpha, alpha, atol=0.5 / 255)


def test_writer_leaves_nothing_on_failure_and_refuses_inputs(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="page 2 failed"):
        with TiffPageWriter(tmp_path / "out.tif") as out:
            out.write(torch.rand(1, 8, 8))
            raise RuntimeError("page 2 failed")
    with pytest.raises(DataError, match=r"out\.tif: no page was written"):
        with TiffPageWriter(tmp_path / "out.tif"):
            pass
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file
    src = _write_stack(tmp_path / "in.tif", _gray16(2))
    with pytest.raises(DataError, match=r"in\.tif: is an input image"):
        TiffPageWriter(src, overwrite=True, protect=[src])
    with pytest.raises(DataError, match=r"in\.tif: already exists"):
        TiffPageWriter(src)
    with pytest.raises(DataError, match=r"out\.png: only a TIFF"):
        TiffPageWriter(tmp_path / "out.png")


def test_bigtiff_when_the_output_could_pass_4_gib(tmp_path: Path, monkeypatch) -> None:
    src = _write_stack(tmp_path / "s.tif", _gray16())
    assert not needs_bigtiff(src)
    monkeypatch.setattr(stacks, "CLASSIC_TIFF_BYTES", 3 * H * W * 2 - 1)  # 3 pages of 16-bit gray: just over
    assert needs_bigtiff(src) and not needs_bigtiff(src, bit_depth=8)
    with TiffPageWriter(tmp_path / "big.tif", bigtiff=True) as out:
        out.write(torch.rand(1, 8, 8), bit_depth=16)
        out.write(torch.rand(1, 8, 8), bit_depth=16)
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        assert tif.is_bigtiff and len(tif.pages) == 2
    assert page_count(tmp_path / "big.tif") == 2


# -- aedenoise denoise ---------------------------------------------------------------


def _alone(tmp_path: Path, pixels: np.ndarray, i: int) -> np.ndarray:
    """``pixels`` (one page) written as a one-page TIFF and denoised alone, as it is on disk."""
    src, out = _write_stack(tmp_path / f"alone{i}.tif", [pixels]), tmp_path / "alone" / f"page{i}.tif"
    assert _denoise(src, "-o", out) == 0
    return tifffile.imread(out)


@pytest.mark.parametrize("kind", ["gray16", "rgb8"])
def test_denoise_stack_gives_one_stack_equal_to_its_pages_alone(tmp_path: Path, capsys, kind: str) -> None:
    pages = _gray16() if kind == "gray16" else _rgb8()
    src = _write_stack(tmp_path / "stack.tif", pages)
    out = tmp_path / "out" / "stack.tif"
    assert _denoise(src, "-o", out) == 0
    stdout = capsys.readouterr().out
    assert f"{src} -> {out} (3 pages, " in stdout and "done: 1 written (1 multi-page, 3 pages)" in stdout
    written = _on_disk(out)
    assert len(written) == 3
    for i, (page, before) in enumerate(zip(written, pages)):
        assert page.dtype == before.dtype and page.shape == before.shape
        assert not np.array_equal(page, before)  # denoised
        alone = _alone(tmp_path, before, i)
        assert np.abs(page.astype(np.int64) - alone.astype(np.int64)).max() <= 1


def test_pages_of_different_sizes_and_kinds_are_each_their_own(tmp_path: Path) -> None:
    pages = [_gray16(1)[0], np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)]
    src = _write_stack(tmp_path / "mixed.tif", pages)
    assert _denoise(src, "-o", tmp_path / "out.tif") == 0
    written = _on_disk(tmp_path / "out.tif")
    assert [(p.dtype, p.shape) for p in written] == [(np.uint16, (H, W)), (np.uint8, (20, 30, 3))]


def test_folder_with_a_stack_and_bit_depth_override(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    _write_stack(folder / "z.tif", _gray16())
    write_image(folder / "flat.png", torch.rand(1, 10, 12))
    assert _denoise(folder, "-o", tmp_path / "out", "--bit-depth", "8") == 0
    assert [(p.dtype, p.shape) for p in _on_disk(tmp_path / "out" / "z.tif")] == [(np.uint8, (H, W))] * 3
    assert read_image(tmp_path / "out" / "flat.png").data.shape == (1, 10, 12)


@pytest.mark.parametrize("cut", ["inside page 3's pixels", "before page 3's directory"])
def test_truncated_stack_fails_naming_the_file_and_writes_nothing(tmp_path: Path, capsys, cut: str) -> None:
    src = _write_stack(tmp_path / "stack.tif", _gray16(), compression="zlib")
    with tifffile.TiffFile(src) as tif:
        page = tif.pages[2]
        end = page.offset if cut.startswith("before") else page.dataoffsets[0] + page.databytecounts[0] // 2
    src.write_bytes(src.read_bytes()[:end])
    out = tmp_path / "out"
    assert _denoise(src, "-o", out) == 1
    err = capsys.readouterr().err
    expected = "stack.tif (page 3 of 3): truncated TIFF" if cut.startswith("inside") else \
        "stack.tif: truncated TIFF (page 3's directory"
    assert expected in err and "failed files:" in err
    assert not out.exists() or list(out.iterdir()) == []  # no output, no temporary file


def test_stack_output_never_overwrites_its_input(tmp_path: Path, capsys) -> None:
    src = _write_stack(tmp_path / "stack.tif", _gray16())
    before = src.read_bytes()
    assert _denoise(src, "-o", src, "--overwrite") == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert _denoise(src, "-o", tmp_path / "flat.png") == 1  # one image cannot hold three pages
    assert "a TIFF of 3 pages, but its output flat.png holds one image; name a .tif output" in capsys.readouterr().err
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]
