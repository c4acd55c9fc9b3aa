"""Scoring helpers: the fast SSIM equals aedenoise.metrics.ssim; evaluation is seeded."""

from __future__ import annotations

import torch

from aedenoise.benchmark.scoring import denoise_batched, evaluate_images, score, ssim_fast
from aedenoise.metrics import psnr, ssim
from aedenoise.models import create_model
from aedenoise.noise import GaussianNoise


def test_ssim_fast_equals_the_reference_variant() -> None:
    g = torch.Generator().manual_seed(0)
    for shape in ((6, 1, 28, 28), (3, 3, 31, 17)):
        x = torch.rand(shape, generator=g)
        x_hat = (x + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
        torch.testing.assert_close(ssim_fast(x_hat, x), ssim(x_hat, x), rtol=0, atol=1e-12)
        assert torch.allclose(ssim_fast(x, x), torch.ones(shape[0], dtype=torch.float64))


def test_evaluation_is_seeded_and_scores_every_image() -> None:
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    model = create_model("conv_ae")
    noise = GaussianNoise(0.2, clip=True)
    a, b = evaluate_images(model, x, noise, seed=5, batch_size=16), evaluate_images(model, x, noise, seed=5)
    assert torch.equal(a.y, b.y) and torch.allclose(a.x_hat, b.x_hat, atol=1e-6)
    assert a.scores.psnr.shape == (40,) and a.seconds > 0
    torch.testing.assert_close(a.scores.noisy_psnr, psnr(a.y.clamp(0, 1), x))
    with torch.no_grad():
        torch.testing.assert_close(denoise_batched(model, a.y, None, batch_size=7), model(a.y).clamp(0, 1), atol=1e-6, rtol=0)
    s = score(x, a.y, x)
    assert torch.allclose(s.ssim, torch.ones(40, dtype=torch.float64)) and bool((s.psnr > 100).all())
