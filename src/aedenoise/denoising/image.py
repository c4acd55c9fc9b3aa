"""Denoising one image of any size: resolve the noise level, adapt channels, tile.

:func:`denoise_image` takes a float tensor ``[C, H, W]`` in ``[0, 1]`` or an
:class:`~aedenoise.io.ImageFile`; :func:`resolve_sigma` turns ``sigma`` (a ``[0, 1]``-scale
level, ``"auto"`` or ``None``) into the level the model is given. The choice of model
is :mod:`aedenoise.denoising.selection`, the tiling :mod:`aedenoise.denoising.tiling`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import torch
from torch import Tensor

from aedenoise.denoising.selection import adapt_channels
from aedenoise.denoising.tiling import denoise_tiled, model_label
from aedenoise.errors import ConfigError
from aedenoise.io import ImageFile
from aedenoise.models import Denoiser
from aedenoise.models.pixel_shuffle import shuffle_down
from aedenoise.noise import estimate_sigma
from aedenoise.noise.level import MIN_SIDE

Sigma = float | Literal["auto"] | None
AUTO_SIGMA_CROP = 512
"""``sigma="auto"`` estimates the noise level on a central crop of at most this side."""


def check_sigma(sigma: float) -> float:
    """``sigma`` as a float if it is a valid noise level on the ``[0, 1]`` scale."""
    value = float(sigma)
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ConfigError(f"noise level {sigma!r} is outside [0, 1] (the command line takes 0-255: --sigma 25)")
    return value


def resolve_sigma(model: Denoiser, y: Tensor, sigma: Sigma, *, min_sigma: float = 0.0) -> float | None:
    """The ``[0, 1]``-scale noise level to pass to ``model`` for image ``y`` ``[C, H, W]``.

    ``None`` for a model that ignores sigma. ``"auto"`` estimates it with
    :func:`aedenoise.noise.estimate_sigma` on a central crop (at most
    :data:`AUTO_SIGMA_CROP` pixels a side; the median over its pixel-shuffled sub-images
    for a model that works on those, ``model.shuffle_stride``, where they are at least
    :data:`aedenoise.noise.level.MIN_SIDE` pixels), and gives at least ``min_sigma`` (the camera
    preset's floor, :data:`aedenoise.denoising.selection.CAMERA_MIN_SIGMA`; a level given
    as a number is used as it is). A model that needs sigma and gets ``None`` raises
    :class:`ConfigError`.
    """
    if not getattr(model, "uses_sigma", False):
        return None
    if sigma is None:
        raise ConfigError(f"{model_label(model)} needs the noise level: give --sigma on the 0-255 scale "
                          f"(e.g. --sigma 25) or --sigma auto to estimate it")
    if sigma == "auto":
        h, w = y.shape[-2:]
        ch, cw = min(h, AUTO_SIGMA_CROP), min(w, AUTO_SIGMA_CROP)
        crop = y[..., (h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
        stride = getattr(model, "shuffle_stride", 1)
        if min(ch, cw) // stride < MIN_SIDE:  # sub-images too small to read: the whole crop (reads correlated noise low)
            stride = 1
        crop = shuffle_down(crop.reshape(1, *crop.shape[-3:]), stride)  # stride 1: the crop itself
        return max(float(estimate_sigma(crop).median()), min_sigma)
    return check_sigma(sigma)


def denoise_image(
    model: Denoiser,
    image: ImageFile | Tensor,
    *,
    sigma: Sigma,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> ImageFile | Tensor:
    """Denoise one image of any size with ``model`` (gray and color adapted both ways).

    ``image``: a float tensor ``[C, H, W]`` in ``[0, 1]`` (C = 1 or 3), or an
    :class:`ImageFile`, which comes back as a copy with new ``data`` and the same
    ``alpha``, ``bit_depth``, format and color profile. ``sigma``: ``[0, 1]`` scale,
    ``"auto"`` or ``None`` (see :func:`resolve_sigma`). ``tile``, ``overlap``,
    ``batch_size``, ``device``, ``progress``: as :func:`aedenoise.denoising.tiling.denoise_tiled`.
    Returns ``x_hat`` in ``[0, 1]``, shaped like the input.
    """
    y = image.data if isinstance(image, ImageFile) else image
    if y.ndim != 3 or y.shape[0] not in (1, 3):
        raise ValueError(f"expected an image [C, H, W] with C = 1 or 3, got shape {tuple(y.shape)}")
    s = resolve_sigma(model, y, sigma)
    x_hat = denoise_tiled(adapt_channels(model, y.shape[0]), y, s, tile=tile, overlap=overlap,
                          batch_size=batch_size, device=device, progress=progress)
    return replace(image, data=x_hat) if isinstance(image, ImageFile) else x_hat
