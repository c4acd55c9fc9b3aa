"""Blind estimation of the Gaussian noise level of an image (for ``--sigma auto``).

:func:`estimate_sigma` combines two published ideas, implemented here in torch:

1. **Weak-texture patch selection** (after Liu, Tanaka & Okutomi, "Single-image noise
   level estimation for blind denoising", IEEE TIP 2013). For every ``r x r`` patch
   the texture strength ``xi`` is the sum of its squared horizontal and vertical
   pixel differences. Patches with ``xi`` below ``texture_ratio`` times its
   expectation on pure noise of the current estimate are "weak texture"; selection
   and estimation are iterated to a fixed point, starting from all patches.
2. **Eigenvalue split of the patch covariance** (Chen, Zhu & Heng, "An Efficient
   Statistical Method for Image Noise Level Estimation", ICCV 2015). The eigenvalues
   of the covariance of the kept patches are sorted; the largest ones carry image
   structure and are dropped one by one until the remaining eigenvalues have as many
   values above their mean as below it (noise-only eigenvalues spread evenly around
   ``sigma^2``). ``sigma^2`` is that mean.

Chen's split alone overestimates on textured gray images (texture leaks into the
small eigenvalues); restricting it to weak-texture patches removes most of that bias.
Liu et al. threshold at a quantile of the pure-noise law of ``xi``; that law is
narrower for RGB patches (3x the degrees of freedom) and the quantile rule then
feeds back into an underestimate on RGB images, so the threshold here is a plain
multiple of the mean instead (for 8x8 patches 1.4 x the mean is about the 96%
quantile of the pure-noise law for gray patches and the 99.9% quantile for RGB ones).

The defaults were chosen on training images (Train400 gray, CBSD432 RGB) with
``benchmarks/noise_level.py tune``; accuracy on BSD68 is in ``docs/baselines.md``.
All levels are standard deviations on the ``[0, 1]`` intensity scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aedenoise.errors import DataError

#: Patch side ``r`` in pixels (chosen on training images, see the module docstring).
PATCH_SIZE = 8
#: Weak-texture threshold as a multiple of the pure-noise mean texture strength.
TEXTURE_RATIO = 1.4
#: Smallest patch side tried when an image is too small for ``patch_size``.
MIN_PATCH_SIZE = 3
#: Images must be at least this many pixels high and wide.
MIN_SIDE = 16
#: A patch set must hold at least this many patches per covariance dimension.
PATCHES_PER_DIM = 4
#: At most this many fixed-point iterations of selection and estimation.
MAX_ITER = 10
#: Patches are taken with the smallest stride that gives at most this many (speed cap).
MAX_PATCHES = 40_000


def estimate_sigma(
    y: Tensor,
    *,
    patch_size: int = PATCH_SIZE,
    texture_ratio: float = TEXTURE_RATIO,
    max_iter: int = MAX_ITER,
) -> Tensor:
    """Estimate the additive white Gaussian noise level of each image.

    Args:
        y: noisy images ``[B, C, H, W]`` (``C`` is 1 or 3; the patch covariance has
            ``C * r * r`` dimensions, so many channels need large images),
            values nominally in ``[0, 1]``; unclipped noise beyond that range is fine.
            The noise must be white, Gaussian and of one level in all channels.
        patch_size: patch side ``r``; ``r * r * C`` is the covariance dimension.
        texture_ratio: ``> 1``; patches whose texture strength is below this multiple
            of its pure-noise mean are used (higher keeps more texture).
        max_iter: cap on the selection/estimation iterations (0: Chen's method alone).

    Returns:
        ``[B]`` float32 tensor on ``y``'s device: the noise standard deviation of each
        image on the ``[0, 1]`` scale (multiply by 255 for the 0-255 scale). A
        noise-free constant image gives 0.

    Raises:
        DataError: an image holds NaN/inf values, or is smaller than
            :data:`MIN_SIDE` (16) pixels in height or width; pass sigma explicitly then.
        ValueError: ``y`` is not 4-D or an option is out of range (programming errors).

    Images too small for ``patch_size`` (fewer than :data:`PATCHES_PER_DIM` patches per
    covariance dimension) use the largest patch side that fits (gray images under
    about 24x24 pixels, RGB ones under about 35x35). Runs on the CPU, one thread:
    about 0.2 s per 481x321 gray image and 0.7 s per RGB one.
    """
    if y.ndim != 4:
        raise ValueError(f"estimate_sigma expects [B, C, H, W], got shape {tuple(y.shape)}")
    if patch_size < MIN_PATCH_SIZE:
        raise ValueError(f"patch_size must be >= {MIN_PATCH_SIZE} (got {patch_size})")
    if not texture_ratio > 1:
        raise ValueError(f"texture_ratio must be > 1 (got {texture_ratio})")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0 (got {max_iter})")
    if min(y.shape[-2:]) < MIN_SIDE:
        raise DataError(
            f"image of {y.shape[-2]}x{y.shape[-1]} pixels is too small to estimate its noise level "
            f"(need at least {MIN_SIDE}x{MIN_SIDE}); give the noise level explicitly (e.g. --sigma 25)"
        )
    if not bool(torch.isfinite(y).all()):
        raise DataError("image contains NaN or infinite values; cannot estimate its noise level")
    out = [
        _estimate_one(img, patch_size=patch_size, texture_ratio=texture_ratio, max_iter=max_iter)
        for img in y.detach().to("cpu", torch.float32)
    ]
    return torch.tensor(out, dtype=torch.float32, device=y.device)


def _fit_patch_size(channels: int, height: int, width: int, patch_size: int) -> int:
    """The largest patch side <= ``patch_size`` with enough patches (MIN_PATCH_SIZE at worst)."""
    for r in range(patch_size, MIN_PATCH_SIZE, -1):
        if (height - r + 1) * (width - r + 1) >= PATCHES_PER_DIM * channels * r * r:
            return r
    return MIN_PATCH_SIZE


def _estimate_one(img: Tensor, *, patch_size: int, texture_ratio: float, max_iter: int) -> float:
    """Noise std of one ``[C, H, W]`` float32 image."""
    c, h, w = img.shape
    r = _fit_patch_size(c, h, w, patch_size)
    stride = _stride_for(h, w, r)
    patches = F.unfold(img[None], r, stride=stride)[0]  # [C*r*r, N], N patch positions row-major
    strength = _texture_strength(img, r, stride)  # [N], same patch order
    threshold_per_var = _texture_threshold(r, c, texture_ratio)
    min_patches = min(PATCHES_PER_DIM * patches.shape[0], patches.shape[1])

    var = _eigen_split_variance(patches)
    for _ in range(max_iter):
        keep = strength < threshold_per_var * var
        if int(keep.sum()) < min_patches:
            break
        new_var = _eigen_split_variance(patches[:, keep])
        converged = abs(new_var - var) <= 1e-3 * var
        var = new_var
        if converged:
            break
    return math.sqrt(max(var, 0.0))


def _stride_for(height: int, width: int, r: int) -> int:
    stride = 1
    while ((height - r) // stride + 1) * ((width - r) // stride + 1) > MAX_PATCHES:
        stride += 1
    return stride


def _texture_strength(img: Tensor, r: int, stride: int) -> Tensor:
    """Sum of squared horizontal and vertical differences inside each ``r x r`` patch."""
    dh = (img[:, :, 1:] - img[:, :, :-1]).square().sum(0, keepdim=True)
    dv = (img[:, 1:, :] - img[:, :-1, :]).square().sum(0, keepdim=True)
    sh = F.avg_pool2d(dh[None], (r, r - 1), stride=stride, divisor_override=1)
    sv = F.avg_pool2d(dv[None], (r - 1, r), stride=stride, divisor_override=1)
    return (sh + sv).flatten()


def _texture_threshold(r: int, channels: int, ratio: float) -> float:
    """``t`` such that a patch is weak texture when ``xi < t * sigma^2``.

    On pure noise each of the ``2 r (r - 1)`` differences per channel has variance
    ``2 sigma^2``, so ``E[xi] = 4 r (r - 1) C sigma^2``; the threshold is ``ratio`` times that.
    """
    return ratio * 4 * r * (r - 1) * channels


def _eigen_split_variance(patches: Tensor) -> float:
    """Chen et al.'s noise variance from a ``[D, N]`` float32 patch matrix (``N >= D``)."""
    centered = patches - patches.mean(1, keepdim=True)
    # float32 products (centred data, N <= MAX_PATCHES) are accurate to well below
    # 0.1/255 in sigma; the eigen-decomposition runs in float64.
    cov = (centered @ centered.T / centered.shape[1]).double()
    eig = torch.linalg.eigvalsh(cov).clamp_min(0.0)  # ascending
    # For every k: the mean of the k smallest eigenvalues, and how many of those k lie
    # strictly above / below it (the mean never exceeds the k-th value, so counting
    # in the whole sorted vector gives the same numbers). Take the largest balanced k.
    k = torch.arange(1, eig.numel() + 1, dtype=eig.dtype)
    means = torch.cumsum(eig, 0) / k
    below = torch.searchsorted(eig, means, right=False)
    above = k.long() - torch.searchsorted(eig, means, right=True)
    balanced = torch.nonzero(above >= below).flatten()
    return float(means[balanced[-1]]) if balanced.numel() else 0.0
