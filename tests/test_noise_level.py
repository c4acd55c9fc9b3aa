"""Blind noise-level estimation: accuracy on texture, constant images, batches, edge cases."""

from __future__ import annotations

import pytest
import torch

from aedenoise.errors import DataError
from aedenoise.noise.level import estimate_sigma


def textured_image(channels: int = 1, size: int = 96, seed: int = 0) -> torch.Tensor:
    """``[1, C, size, size]`` in [0, 1]: gratings of several frequencies, edges and a smooth ramp."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    img = 0.35 + 0.002 * (xx + yy)
    half = size // 2
    img[:half, :half] += 0.15 * torch.sin(xx[:half, :half] * 0.9)  # fine vertical stripes
    img[half:, :half] += 0.12 * torch.sin(0.3 * xx[half:, :half] + 0.4 * yy[half:, :half])  # oblique grating
    img[:half, half:] += 0.2 * ((xx[:half, half:] // 6 + yy[:half, half:] // 6) % 2)  # checkerboard edges
    planes = [img + 0.05 * torch.rand(1, generator=g) * c for c in range(channels)]
    return torch.stack(planes)[None].clamp(0, 1)


def add_noise(x: torch.Tensor, sigma_255: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + sigma_255 / 255 * torch.randn(x.shape, generator=g)


@pytest.mark.parametrize("sigma_255", [5, 15, 25, 50])
def test_accurate_on_textured_image(sigma_255):
    est = estimate_sigma(add_noise(textured_image(), sigma_255))
    assert est.shape == (1,) and est.dtype == torch.float32
    assert abs(float(est[0]) * 255 - sigma_255) <= max(1.5, 0.06 * sigma_255)


def test_beats_wavelet_mad_on_texture():
    # The Donoho MAD of the finest diagonal Haar band overestimates on texture;
    # the weak-texture estimate must be closer to the truth.
    y = add_noise(textured_image(), 10)
    a, b, c, d = y[0, 0, 0::2, 0::2], y[0, 0, 0::2, 1::2], y[0, 0, 1::2, 0::2], y[0, 0, 1::2, 1::2]
    hh = (a - b - c + d) / 2
    mad = float(hh.abs().median()) / 0.6745 * 255
    est = float(estimate_sigma(y)[0]) * 255
    assert abs(est - 10) < abs(mad - 10)


def test_color_image():
    est = estimate_sigma(add_noise(textured_image(channels=3), 25, seed=3))
    assert abs(float(est[0]) * 255 - 25) <= 1.5


def test_constant_image_gives_zero_and_no_nan():
    for value in (0.0, 0.5, 1.0):
        est = estimate_sigma(torch.full((1, 1, 40, 40), value))
        assert torch.isfinite(est).all() and float(est[0]) * 255 < 0.01
    noisy_flat = add_noise(torch.full((1, 1, 64, 64), 0.5), 20, seed=7)
    assert abs(float(estimate_sigma(noisy_flat)[0]) * 255 - 20) <= 1.5


def test_batch_matches_single_images():
    x = torch.cat([textured_image(seed=s) for s in range(3)])
    y = torch.cat([add_noise(x[i : i + 1], s, seed=i) for i, s in enumerate((10, 30, 0))])
    batch = estimate_sigma(y)
    assert batch.shape == (3,)
    singles = torch.cat([estimate_sigma(y[i : i + 1]) for i in range(3)])
    assert torch.equal(batch, singles)
    assert abs(float(batch[0]) * 255 - 10) <= 1.5 and abs(float(batch[1]) * 255 - 30) <= 1.8
    assert float(batch[2]) * 255 < 1.0  # the clean synthetic image itself


def test_small_images_shrink_the_patch_or_raise():
    y = add_noise(torch.full((1, 1, 16, 16), 0.5), 25, seed=1)
    est = float(estimate_sigma(y)[0]) * 255  # falls back to a smaller patch
    assert 15 < est < 35
    with pytest.raises(DataError, match="too small"):
        estimate_sigma(torch.rand(1, 1, 8, 8))
    with pytest.raises(DataError, match="too small"):
        estimate_sigma(torch.rand(1, 3, 12, 12))


def test_bad_inputs():
    with pytest.raises(DataError, match="NaN"):
        estimate_sigma(torch.full((1, 1, 32, 32), float("nan")))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        estimate_sigma(torch.rand(1, 32, 32))
