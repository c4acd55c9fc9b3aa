"""The one denoiser contract that learned models and classical filters share."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class Denoiser(nn.Module):
    """Base class: ``x_hat = denoiser(y, sigma)``.

    ``y`` is a float32 tensor ``[B, C, H, W]`` with values in ``[0, 1]``;
    ``sigma`` is the Gaussian noise standard deviation on the same ``[0, 1]``
    scale, as a float, a ``[B]`` tensor, or ``None`` (blind models and models
    trained at one noise level ignore it). The result has the shape of ``y``.

    Class attributes a subclass sets:

    * ``in_channels``: 1 (gray) or 3 (RGB); set per instance.
    * ``size_multiple``: ``H`` and ``W`` must be multiples of it (tiling pads).
    * ``uses_sigma``: whether ``forward`` reads ``sigma``.
    * ``receptive_field``: pixels of context each output needs (tiling overlap).
    * ``any_channels``: ``forward`` takes gray (1) and RGB (3) images alike, whatever
      ``in_channels`` says (the classical filters); callers then adapt nothing.
    * ``shuffle_stride``: ``forward`` works on pixel-shuffled sub-images at this stride
      (:mod:`aedenoise.models.pixel_shuffle`), so an estimated ``sigma`` is read on those.
    """

    in_channels: int = 1
    size_multiple: int = 1
    uses_sigma: bool = False
    receptive_field: int = 16
    any_channels: bool = False
    shuffle_stride: int = 1

    def __init__(self) -> None:
        super().__init__()
        # Filled in by ``create_model``: what ``create_model`` needs to rebuild it.
        self.arch: dict[str, Any] = {}

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


def sigma_map(sigma: float | Tensor | None, y: Tensor) -> Tensor:
    """Broadcast ``sigma`` (float, ``[B]`` tensor) to a ``[B, 1, H, W]`` map like ``y``."""
    if sigma is None:
        raise ValueError("this denoiser needs a noise level sigma")
    s = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    if s.ndim == 0:
        s = s.expand(y.shape[0])
    return s.reshape(-1, 1, 1, 1).expand(y.shape[0], 1, y.shape[2], y.shape[3])
