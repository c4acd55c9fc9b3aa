"""DnCNN-style residual denoiser (Zhang et al. 2017), without batch normalisation.

``depth`` 3x3 convolutions at full resolution, ``width`` channels, ReLU between
them; the network predicts the noise and ``x_hat = y - noise``. With
``noise_map=True`` a sigma map is an extra input channel (as in FFDNet), so the
model is told the noise level; without it the model is blind and ignores sigma.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aedenoise.errors import ConfigError
from aedenoise.models.base import Denoiser, sigma_map
from aedenoise.models.registry import register_model


@register_model("dncnn", description="DnCNN-style residual CNN without BN; blind, or told sigma through a noise-map channel")
class DnCNN(Denoiser):
    """Args:
        in_channels: 1 (gray) or 3 (RGB).
        depth: number of 3x3 convolutions (>= 2).
        width: channels of the hidden layers.
        noise_map: add a sigma map input channel; ``forward`` then needs ``sigma``.

    Works at any ``H``, ``W``; ``receptive_field`` is ``2 * depth + 1``.
    """

    size_multiple = 1

    def __init__(self, in_channels: int = 1, depth: int = 12, width: int = 48, noise_map: bool = False) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ConfigError(f"dncnn: in_channels must be 1 or 3 (got {in_channels})")
        if depth < 2 or width < 1:
            raise ConfigError(f"dncnn: depth must be >= 2 and width >= 1 (got depth {depth}, width {width})")
        self.in_channels = in_channels
        self.uses_sigma = bool(noise_map)
        self.receptive_field = 2 * depth + 1
        layers: list[nn.Module] = [nn.Conv2d(in_channels + int(noise_map), width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        tail = nn.Conv2d(width, in_channels, 3, padding=1)
        nn.init.zeros_(tail.weight)  # start as the identity x_hat = y
        nn.init.zeros_(tail.bias)
        self.body = nn.Sequential(*layers, tail)
        self.to(memory_format=torch.channels_last)  # oneDNN and cuDNN run these convs faster NHWC

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """``y`` [B, C, H, W] in [0, 1] -> ``x_hat`` like ``y``; ``sigma`` only with ``noise_map``."""
        if not self.uses_sigma:
            h = y
        elif sigma is None:
            raise ConfigError("this dncnn takes a noise-level map: it needs sigma (0-255: --sigma N, or --sigma auto)")
        else:
            h = torch.cat((y, sigma_map(sigma, y)), dim=1)
        return (y - self.body(h.contiguous(memory_format=torch.channels_last))).contiguous()
