"""Training losses: ``loss(x_hat, x)`` on ``[B, C, H, W]`` images in [0, 1], a scalar to minimise.

* ``mse``: mean squared error over all pixels of the batch.
* ``l1``: mean absolute error.
* ``psnr``: minus the mean per-image PSNR (dB), the quantity :mod:`aedenoise.benchmark.scoring`
  reports, with the output scored the way evaluation scores it, clamped to [0, 1], where
  that can be had with a gradient. Images with little error weigh as much as images with
  a lot (in dB, not in squared error). Where a clean pixel sits at 0 or 1, an estimate
  beyond it costs nothing, since the clamp removes that error; elsewhere the whole
  difference counts, so the loss is never below minus the PSNR of the clamped output.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor, nn

LossName = Literal["mse", "l1", "psnr"]
LOSSES: tuple[str, ...] = ("mse", "l1", "psnr")

#: Added to each image's mean squared error before the log: a floor of 60 dB, far above what
#: denoising reaches, that keeps the gradient finite for a perfect estimate.
PSNR_LOSS_EPS = 1e-6


def range_aware_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """``x_hat - x``, zero where clamping ``x_hat`` to [0, 1] would remove the error.

    That is where ``x == 0`` and ``x_hat < 0``, or ``x == 1`` and ``x_hat > 1``. Elsewhere
    the error is the plain difference, so an estimate on the wrong side of the range
    still gets a gradient towards ``x`` (a clamp would give it none).
    """
    d = x_hat - x
    beyond = ((x <= 0) & (d < 0)) | ((x >= 1) & (d > 0))
    return torch.where(beyond, torch.zeros_like(d), d)


def psnr_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """Minus the mean over images of ``10 log10(1 / mse)``, in dB (data range 1).

    ``mse`` is each image's mean of :func:`range_aware_error` squared, over channels and
    pixels, plus :data:`PSNR_LOSS_EPS`.
    """
    mse = range_aware_error(x_hat, x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(mse + PSNR_LOSS_EPS).mean()


def build_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss called ``name`` (one of :data:`LOSSES`)."""
    if name == "mse":
        return nn.MSELoss()
    if name == "l1":
        return nn.L1Loss()
    if name == "psnr":
        return psnr_loss
    raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
