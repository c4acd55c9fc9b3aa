"""A residual U-Net denoiser with a noise-level map input (DRUNet / FFDNet spirit), or fully blind.

Layout for ``widths = (w0, w1, ..., wL)`` and ``blocks`` residual blocks per level::

    [y, sigma map] -> conv3x3 -> w0
    encoder level l < L:  blocks x ResBlock(w_l) -> (skip_l) -> conv2x2 stride 2 -> w_{l+1}
    bottleneck:           blocks x ResBlock(w_L)
    decoder level l < L:  convT2x2 stride 2 -> w_l, + skip_l, blocks x ResBlock(w_l)
    conv3x3 -> C channels = noise estimate;  x_hat = y - noise estimate

``ResBlock(w)`` is ``x + conv3x3(relu(conv3x3(x)))`` without normalisation. The
sigma map makes one network serve every noise level (blind training over a range
of sigma); the noise level must be given (estimate it when unknown). With
``noise_map=False`` the head reads ``y`` alone and the network is fully blind: it
learns to judge the noise from the image (the real-photo models, whose noise has no
single level).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aedenoise.errors import ConfigError
from aedenoise.models.base import Denoiser, sigma_map
from aedenoise.models.registry import register_model


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))``, 3x3 convolutions, ``width`` channels in and out."""

    def __init__(self, width: int, *, bias: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=bias)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=bias)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def unet_receptive_field(levels: int, blocks: int) -> int:
    """Exact receptive field (pixels, full width) of :class:`UNet`, for the worst output phase.

    Walks the network backwards from one output pixel with index intervals: a 3x3 conv
    widens by 1 on each side; the 2x2 stride-2 conv maps ``[a, b]`` to ``[2a, 2b + 1]``
    one level up; the transposed conv maps ``[a, b]`` to ``[a // 2, b // 2]`` one level
    down; a skip connection joins the two intervals.
    """
    c = 2 * blocks  # 3x3 convs per block stack

    def encoder_out(level: int, a: int, b: int) -> tuple[int, int]:
        a, b = a - c, b + c
        return (a - 1, b + 1) if level == 0 else encoder_out(level - 1, 2 * a, 2 * b + 1)

    def decoder_out(level: int, a: int, b: int) -> tuple[int, int]:
        a, b = a - c, b + c
        if level == levels - 1:  # bottleneck, fed by the downsampling conv
            return encoder_out(level - 1, 2 * a, 2 * b + 1) if level else (a - 1, b + 1)
        up, skip = decoder_out(level + 1, a // 2, b // 2), encoder_out(level, a, b)
        return min(up[0], skip[0]), max(up[1], skip[1])

    base = 2 ** (levels + 8)  # far from 0, so // rounds like the network's integer grid
    widths = []
    for phase in range(2 ** (levels - 1)):
        a, b = decoder_out(0, base + phase - 1, base + phase + 1)  # the tail 3x3 conv
        widths.append(b - a + 1)
    return max(widths)


@register_model("unet", description="Residual U-Net with a noise-level map input, blind over a sigma range (~1M params)")
class UNet(Denoiser):
    """Residual U-Net; ``forward(y, sigma)`` needs ``sigma`` (float or ``[B]``, [0, 1] scale).

    Args:
        in_channels: 1 (gray) or 3 (RGB).
        widths: channels per resolution level, finest first; ``len(widths) - 1``
            downsamplings, so ``H`` and ``W`` must be multiples of ``2**(len(widths) - 1)``.
        blocks: residual blocks per level (in the encoder, bottleneck and decoder).
        bias: convolution biases (bias-free by default, as in DRUNet; bias-free
            denoisers are known to generalise better across noise levels).
        noise_map: ``True``: the noise level is an input (a constant map beside ``y``) and
            ``sigma`` is required. ``False``: a fully blind network that reads the noise
            from the image alone and ignores ``sigma`` (for noise with no single level,
            such as a real camera's, learned from examples).
    """

    uses_sigma = True

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128), blocks: int = 2, bias: bool = False,
                 noise_map: bool = True) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if in_channels not in (1, 3):
            raise ConfigError(f"unet: in_channels must be 1 or 3 (got {in_channels})")
        if not 1 <= len(widths) <= 6 or min(widths) < 1:
            raise ConfigError(f"unet: widths must be 1 to 6 positive channel counts (got {list(widths)})")
        if blocks < 1:
            raise ConfigError(f"unet: blocks must be >= 1 (got {blocks})")
        self.in_channels = in_channels
        self.uses_sigma = bool(noise_map)
        self.size_multiple = 2 ** (len(widths) - 1)
        self.receptive_field = unet_receptive_field(len(widths), blocks)
        self.head = nn.Conv2d(in_channels + int(self.uses_sigma), widths[0], 3, padding=1, bias=bias)
        self.encoders = nn.ModuleList(nn.Sequential(*(ResBlock(w, bias=bias) for _ in range(blocks))) for w in widths[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2, bias=bias) for a, b in zip(widths[:-1], widths[1:]))
        self.bottleneck = nn.Sequential(*(ResBlock(widths[-1], bias=bias) for _ in range(blocks)))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2, bias=bias) for a, b in zip(widths[:-1], widths[1:]))
        self.decoders = nn.ModuleList(nn.Sequential(*(ResBlock(w, bias=bias) for _ in range(blocks))) for w in widths[:-1])
        self.tail = nn.Conv2d(widths[0], in_channels, 3, padding=1, bias=bias)
        nn.init.zeros_(self.tail.weight)  # start as the identity x_hat = y
        if self.tail.bias is not None:
            nn.init.zeros_(self.tail.bias)
        self.to(memory_format=torch.channels_last)  # oneDNN and cuDNN run these convs faster NHWC

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """``y`` [B, C, H, W] in [0, 1], ``sigma`` float or [B] ([0, 1] scale) -> ``x_hat`` like ``y``."""
        if sigma is None and self.uses_sigma:
            raise ConfigError("unet needs the noise level sigma (0-255: --sigma N, or --sigma auto to estimate it)")
        m = self.size_multiple
        if y.shape[-2] % m or y.shape[-1] % m:
            raise ConfigError(f"unet: H and W must be multiples of {m} (got {tuple(y.shape[-2:])}); pad or tile "
                              f"the input, or train with a data.patch_size that is a multiple of {m}")
        inputs = torch.cat((y, sigma_map(sigma, y)), dim=1) if self.uses_sigma else y
        h = self.head(inputs.contiguous(memory_format=torch.channels_last))
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for up, dec, skip in zip(reversed(self.ups), reversed(self.decoders), reversed(skips)):
            h = dec(up(h) + skip)
        return (y - self.tail(h)).contiguous()

