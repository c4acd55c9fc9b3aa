"""PSNR and SSIM: agreement with scikit-image and the properties a metric must have."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aedenoise.metrics import batched_metrics, psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is the reference (pip install aedenoise[classical])")


def structured(channels: int, h: int, w: int) -> torch.Tensor:
    """A smooth image with edges: gradients, a disc and stripes, ``[C, H, W]`` in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.08).float()
    stripes = (torch.sin(xx * 40) > 0).float() * (yy > 0.7).float()
    base = [0.6 * xx + 0.3 * disc + 0.1 * stripes, 0.5 * yy + 0.4 * disc, 0.2 + 0.6 * stripes * xx]
    return torch.stack(base[:channels]).clamp(0, 1)


def pairs(channels: int, h: int = 48, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_hat, x)`` batches ``[4, C, H, W]``: random, structured, and noisy/blurred versions."""
    g = torch.Generator().manual_seed(channels)
    x = torch.stack([torch.rand(channels, h, w, generator=g), structured(channels, h, w), structured(channels, h, w), torch.rand(channels, h, w, generator=g) * 0.2 + 0.4])
    noisy = x + 0.1 * torch.randn(x.shape, generator=g)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    x_hat = torch.stack([noisy[0].clamp(0, 1), noisy[1], blurred[2], torch.rand(channels, h, w, generator=g)])
    return x_hat, x


def sk_image(t: torch.Tensor) -> np.ndarray:
    a = t.double().numpy()
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_matches_skimage(channels: int) -> None:
    x_hat, x = pairs(channels)
    ours = psnr(x_hat, x)
    assert ours.shape == (4,) and ours.dtype == torch.float64
    for i in range(4):
        ref = skimage_metrics.peak_signal_noise_ratio(sk_image(x[i]), sk_image(x_hat[i]), data_range=1)
        assert ours[i].item() == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize(("channels", "h", "w"), [(1, 48, 64), (3, 48, 64), (1, 37, 53), (3, 12, 13)])
def test_ssim_matches_skimage(channels: int, h: int, w: int) -> None:
    x_hat, x = pairs(channels, h, w)
    ours = ssim(x_hat, x)
    assert ours.shape == (4,) and ours.dtype == torch.float64
    for i in range(4):
        ref = skimage_metrics.structural_similarity(
            sk_image(x[i]), sk_image(x_hat[i]), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1, channel_axis=None if channels == 1 else -1,
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-4)


def test_identical_images() -> None:
    x = torch.stack([structured(3, 40, 40), torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))])
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-9)
    assert (psnr(x, x) > 100).all()


def test_psnr_exact_formula_and_data_range() -> None:
    x = structured(1, 32, 32)[None]
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    for s in (0.01, 0.1):
        mse = (s * n).double().pow(2).mean().item()
        assert psnr(x + s * n, x).item() == pytest.approx(-10 * math.log10(mse), abs=1e-5)
    y = x + 0.05 * n
    assert psnr(y * 255, x * 255, data_range=255).item() == pytest.approx(psnr(y, x).item(), abs=1e-4)
    assert ssim(y * 255, x * 255, data_range=255).item() == pytest.approx(ssim(y, x).item(), abs=1e-6)
    assert psnr(y, x).item() == pytest.approx(psnr(x, y).item(), abs=1e-12)
    assert ssim(y, x).item() == pytest.approx(ssim(x, y).item(), abs=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_monotone_in_noise_level(channels: int) -> None:
    x = structured(channels, 64, 64)[None]
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    sigmas = [0.0, 0.01, 0.03, 0.1, 0.3]
    p = torch.cat([psnr(x + s * n, x) for s in sigmas])
    q = torch.cat([ssim(x + s * n, x) for s in sigmas])
    assert (p.diff() < 0).all() and (q.diff() < 0).all()
    assert q[-1] < 0.5 < q[1]


def test_per_image_in_a_batch() -> None:
    x = torch.stack([structured(1, 32, 32), structured(1, 32, 32).flip(-1)])
    y = x + torch.tensor([0.02, 0.2]).reshape(2, 1, 1, 1) * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    both = batched_metrics(y, x)
    for key, fn in (("psnr", psnr), ("ssim", ssim)):
        assert both[key].shape == (2,)
        assert torch.allclose(both[key], torch.cat([fn(y[i : i + 1], x[i : i + 1]) for i in range(2)]))
    assert both["psnr"][0] > both["psnr"][1] + 15  # 10x the noise -> 20 dB


def test_bad_shapes() -> None:
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(ValueError):
        psnr(x, x[..., :16])
    with pytest.raises(ValueError):
        ssim(x[0], x[0])
    with pytest.raises(ValueError, match="larger than 11x11"):
        ssim(x[..., :10, :10], x[..., :10, :10])
