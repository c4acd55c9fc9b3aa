"""Scoring a denoiser on a set of clean images with seeded noise.

Used by training (Fashion-MNIST test set) and by the benchmark harness. The
noisy inputs depend only on ``seed``, so every model sees the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from aedenoise.metrics import psnr, ssim
from aedenoise.models.base import Denoiser
from aedenoise.noise import GaussianNoise, NoiseModel


def add_noise(x: Tensor, noise: NoiseModel, *, seed: int) -> tuple[Tensor, Tensor | None]:
    """``(y, sigma)`` for clean ``x`` [N, C, H, W]; ``sigma`` [N] for Gaussian noise, else None.

    The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)``, so it is
    identical on every machine and device.
    """
    g = torch.Generator().manual_seed(seed)
    if isinstance(noise, GaussianNoise):
        return noise.apply(x.cpu(), generator=g)
    return noise(x.cpu(), generator=g), None


@torch.inference_mode()
def denoise_batched(
    model: Denoiser, y: Tensor, sigma: Tensor | None, *, batch_size: int = 1000, device: torch.device | str = "cpu"
) -> Tensor:
    """Apply ``model`` to ``y`` [N, C, H, W] in batches; returns ``x_hat`` on the CPU, clamped to [0, 1]."""
    model.eval()
    out = []
    for i in range(0, y.shape[0], batch_size):
        yb = y[i : i + batch_size].to(device)
        sb = None if sigma is None else sigma[i : i + batch_size].to(device)
        out.append(model(yb, sb).float().clamp(0, 1).cpu())
    return torch.cat(out)


@dataclass(frozen=True)
class Scores:
    """Per-image scores [N] (float64) of the estimate and of the noisy input."""

    psnr: Tensor
    ssim: Tensor
    noisy_psnr: Tensor
    noisy_ssim: Tensor

    def means(self) -> dict[str, float]:
        return {k: float(getattr(self, k).mean()) for k in ("psnr", "ssim", "noisy_psnr", "noisy_ssim")}


def score(x_hat: Tensor, y: Tensor, x: Tensor, *, batch_size: int = 2000) -> Scores:
    """PSNR/SSIM of ``x_hat`` and of ``y`` (clamped to [0, 1]) against ``x``, per image."""
    parts: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "noisy_psnr": [], "noisy_ssim": []}
    for i in range(0, x.shape[0], batch_size):
        xb, yb, eb = x[i : i + batch_size], y[i : i + batch_size].clamp(0, 1), x_hat[i : i + batch_size]
        parts["psnr"].append(psnr(eb, xb))
        parts["ssim"].append(ssim(eb, xb))
        parts["noisy_psnr"].append(psnr(yb, xb))
        parts["noisy_ssim"].append(ssim(yb, xb))
    return Scores(**{k: torch.cat(v) for k, v in parts.items()})
