"""Run report: fixed-scale comparison grid, training curves, report.md, and no matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aedenoise.report.figures import comparison_grid, training_curves
from aedenoise.report.run import COMPARISON, CURVES, REPORT, Examples, markdown, write_run_report

HISTORY = [{"epoch": e, "train_loss": 0.02 / e, "val_loss": 0.015 / e, "val_psnr": 18 + e, "seconds": 2.0, "lr": 1e-3} for e in (1, 2, 3)]
METRICS = {
    "model": {"name": "conv_ae", "args": {"in_channels": 1}, "parameters": 3217}, "data": "fashion_mnist",
    "noise": "Gaussian sigma=51/255, clipped", "epochs": 3, "batch_size": 32, "optimizer": "adam lr 0.001, MSE loss",
    "device": "cpu", "threads": 1, "torch": torch.__version__, "fast_path": True, "seed": 0, "test_seed": 1234,
    "train_seconds": 6.0, "train_images": 55008, "val_images": 5000, "val_noisy_psnr": 16.0, "ssim_variant": "test variant",
    "history": HISTORY,
    "test": {"images": 10000, "psnr": 22.1, "ssim": 0.81, "noisy_psnr": 15.97, "noisy_ssim": 0.57, "images_per_s": 5e4, "batch_size": 1000},
}


def _center_gray(png: Path, fig_axes_centers: list[tuple[float, float]]) -> list[int]:
    img = np.asarray(Image.open(png).convert("L"))
    h, w = img.shape
    return [int(img[int(round((1 - fy) * h)), int(round(fx * w))]) for fx, fy in fig_axes_centers]


def test_grid_shows_pixels_on_the_fixed_unit_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    levels = (0.0, 0.25, 0.5, 1.0)
    flat = torch.stack([torch.full((1, 8, 8), v) for v in levels])  # constant images: a stretch would change them
    captured: list = []
    monkeypatch.setattr(Figure, "savefig", _spy(Figure.savefig, captured))
    path = comparison_grid(tmp_path / "grid.png", [("clean", flat), ("noisy", flat), ("denoised", flat)])
    fig = captured[0]
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 12
    assert all(im.get_clim() == (0.0, 1.0) and im.get_interpolation() == "nearest" for im in images)
    centers = []
    for ax in fig.axes[:4]:
        box = ax.get_position()
        centers.append(((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2))
    grays = _center_gray(path, centers)
    assert all(abs(g - 255 * v) <= 1.5 for g, v in zip(grays, levels)), grays


def _spy(method, captured):
    def savefig(self, *args, **kwargs):
        captured.append(self)
        return method(self, *args, **kwargs)

    return savefig


def test_curves_and_report_files(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(10, 1, 28, 28, generator=g)
    examples = Examples(clean=clean, noisy=clean + 0.2 * torch.randn(clean.shape, generator=g), denoised=clean, captions=["c"] * 10)
    assert write_run_report(tmp_path, METRICS, examples) is None
    for name in (COMPARISON, CURVES):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width > 300
    text = (tmp_path / REPORT).read_text()
    assert "22.10" in text and "15.97" in text and "0.8100" in text and "+6.13" in text
    assert "6.0 s" in text and f"]({COMPARISON})" in text and f"]({CURVES})" in text and "test variant" in text
    assert training_curves(tmp_path / "c.png", HISTORY[:1]).is_file()


def test_without_matplotlib_the_report_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    clean = torch.rand(10, 1, 28, 28)
    note = write_run_report(tmp_path, METRICS, Examples(clean, clean, clean, ["c"] * 10))
    assert note is not None and "pip install" in note and "aedenoise report" in note
    assert not (tmp_path / COMPARISON).exists() and not (tmp_path / CURVES).exists()
    text = (tmp_path / REPORT).read_text()
    assert "Figures not drawn" in text and "22.10" in text


def test_markdown_without_test_scores() -> None:
    text = markdown({**METRICS, "test": None}, drawn=[CURVES])
    assert "Test set" not in text and "![training curves]" in text and "![comparison]" not in text
