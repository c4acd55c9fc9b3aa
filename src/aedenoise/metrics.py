"""Image quality metrics, per image.

Inputs are ``[B, C, H, W]`` tensors in ``[0, 1]`` (data range 1). Both functions
return a ``[B]`` float64 tensor, one value per image; average it yourself.
"""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(x_hat: Tensor, x: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB over all pixels and channels of each image."""
    _check_pair(x_hat, x)
    mse = (x_hat.double() - x.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


SSIM_VARIANT = "Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, population covariance, 5-px border excluded, mean over channels (= skimage gaussian_weights=True)"


def ssim(x_hat: Tensor, x: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Structural similarity (Wang et al. 2004), the variant in :data:`SSIM_VARIANT`.

    Computed with torchmetrics; the SSIM map is cropped by the window radius
    before averaging, which matches ``skimage.metrics.structural_similarity``
    with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(x_hat, x)
    radius = 5
    if min(x.shape[-2:]) <= 2 * radius:
        raise ValueError(f"SSIM needs images larger than {2 * radius + 1}x{2 * radius + 1} pixels")
    _, ssim_map = structural_similarity_index_measure(
        x_hat.double(), x.double(), gaussian_kernel=True, sigma=1.5, kernel_size=11,
        data_range=data_range, return_full_image=True,
    )
    return ssim_map[..., radius:-radius, radius:-radius].flatten(1).mean(1)


def _check_pair(x_hat: Tensor, x: Tensor) -> None:
    if x_hat.shape != x.shape or x.ndim != 4:
        raise ValueError(f"expected two [B, C, H, W] tensors of one shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}")


@torch.no_grad()
def batched_metrics(x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
    """PSNR and SSIM per image: ``{"psnr": [B], "ssim": [B]}``."""
    return {"psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x)}
