"""Scoring a denoiser on a set of clean images with seeded noise.

Used by training (Fashion-MNIST validation and test sets) and by the run reports. The noisy inputs depend only on ``seed``, so every model sees the same ones.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from aedenoise.metrics import psnr
from aedenoise.models.conv_ae_choice import PathChoice, best_conv_ae
from aedenoise.noise import NoiseModel, noisy_batch


def add_noise(x: Tensor, noise: NoiseModel, *, seed: int) -> tuple[Tensor, Tensor | None]:
    """``(y, sigma)`` for clean ``x`` [N, C, H, W]; ``sigma`` [N] for Gaussian noise, else None.

    The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)``, so it is
    identical on every machine and device.
    """
    return noisy_batch(noise, x.cpu(), torch.Generator().manual_seed(seed))


def denoise_batched(
    model: torch.nn.Module, y: Tensor, sigma: Tensor | None, *, batch_size: int = 1000, device: torch.device | str = "cpu"
) -> Tensor:
    """Apply ``model`` to ``y`` [N, C, H, W] in batches; returns ``x_hat`` on the CPU, clamped to [0, 1].

    ``model`` runs in eval mode; the seed ``conv_ae`` on the CPU runs on the path that
    measures fastest here (:func:`aedenoise.models.conv_ae_choice.best_conv_ae`: the
    compiled kernel with ``torch.get_num_threads()`` threads, matrix products, or the
    ``nn`` layers).
    """
    net, _ = _eval_net(model, y, batch_size=batch_size, device=device)
    return _run_batches(net, y, sigma, batch_size=batch_size, device=device)


def _eval_net(model: torch.nn.Module, y: Tensor, *, batch_size: int, device: torch.device | str
              ) -> tuple[torch.nn.Module, PathChoice | None]:
    model.eval()
    return best_conv_ae(model, device, mode="infer", batch_size=min(batch_size, y.shape[0]),
                        height=y.shape[-2], width=y.shape[-1])


@torch.inference_mode()
def _run_batches(net: torch.nn.Module, y: Tensor, sigma: Tensor | None, *, batch_size: int,
                 device: torch.device | str) -> Tensor:
    out = torch.empty(y.shape, dtype=torch.float32)
    for i in range(0, y.shape[0], batch_size):
        yb = y[i : i + batch_size].to(device)
        sb = None if sigma is None else sigma[i : i + batch_size].to(device)
        out[i : i + batch_size] = net(yb, sb).float().clamp_(0, 1)
    return out


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
        parts["ssim"].append(ssim_fast(eb, xb))
        parts["noisy_psnr"].append(psnr(yb, xb))
        parts["noisy_ssim"].append(ssim_fast(yb, xb))
    return Scores(**{k: torch.cat(v) for k, v in parts.items()})


def ssim_fast(x_hat: Tensor, x: Tensor, *, data_range: float = 1.0) -> Tensor:
    """:func:`aedenoise.metrics.ssim` (same variant, same values to float64 rounding), ~100x faster.

    The SSIM map is averaged only where the 11x11 window lies inside the image, so the
    Gaussian filter needs no padding and separates into two small matrix products.
    Returns ``[B]`` float64.
    """
    b, c, h, w = x.shape
    if x_hat.shape != x.shape or min(h, w) <= 10:
        raise ValueError(f"SSIM needs two [B, C, H, W] tensors of one shape larger than 11x11, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    a, t = x_hat.double().reshape(b * c, h, w), x.double().reshape(b * c, h, w)
    mu_a, mu_t, e_aa, e_tt, e_at = _window(h) @ torch.stack((a, t, a * a, t * t, a * t)) @ _window(w).T
    var_a, var_t, cov = e_aa - mu_a**2, e_tt - mu_t**2, e_at - mu_a * mu_t
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * mu_a * mu_t + c1) * (2 * cov + c2) / ((mu_a**2 + mu_t**2 + c1) * (var_a + var_t + c2))
    return s.reshape(b, c, -1).mean(-1).mean(-1)


@functools.lru_cache(maxsize=8)
def _window(n: int, size: int = 11, sigma: float = 1.5) -> Tensor:
    """``[n - 10, n]`` float64: row ``i`` is the normalised Gaussian window over pixels ``i .. i + 10``."""
    k = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    m = torch.zeros(n - size + 1, n, dtype=torch.float64)
    for i in range(n - size + 1):
        m[i, i : i + size] = k / k.sum()
    return m


@dataclass(frozen=True)
class Evaluation:
    """A model on one seeded noisy set: ``y`` and ``x_hat`` [N, C, H, W], per-image scores, denoising time.

    ``path``: the seed ``conv_ae``'s CPU path that ran (with why), else ``None``.
    """

    y: Tensor
    x_hat: Tensor
    scores: Scores
    seconds: float
    path: PathChoice | None = None


def evaluate_images(
    model: torch.nn.Module, x: Tensor, noise: NoiseModel, *, seed: int, batch_size: int = 1000,
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Noise clean ``x`` [N, C, H, W] with :func:`add_noise` (``seed``), denoise and score every image.

    ``seconds`` is the wall time of the denoising alone (batches of ``batch_size``; the
    choice of the seed model's CPU path happens before the clock starts).
    """
    y, sigma = add_noise(x, noise, seed=seed)
    net, choice = _eval_net(model, y, batch_size=batch_size, device=device)
    t0 = time.perf_counter()
    x_hat = _run_batches(net, y, sigma, batch_size=batch_size, device=device)
    seconds = time.perf_counter() - t0
    return Evaluation(y=y, x_hat=x_hat, scores=score(x_hat, y, x), seconds=seconds, path=choice)
