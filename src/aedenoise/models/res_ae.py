"""``res_ae``: a deeper residual convolutional autoencoder (the stronger Fashion-MNIST model).

Same shape of idea as the seed (two stride-2 encoder stages, two stride-2 transposed
decoder stages), made deeper and easier to train: residual blocks at every scale,
additive skips from encoder to decoder (U-Net style), and a global residual so the
network predicts the correction ``x_hat - y``::

    y [C, H, W] -> stem conv3x3 -> f0 (w, H)
    f0 -> conv3x3 s2 -> blocks x ResBlock(2w) -> f1 (2w, H/2)
    f1 -> conv3x3 s2 -> blocks x ResBlock(2w) -> f2 (2w, H/4)
    convT3x3 s2 (f2) + f1 -> blocks x ResBlock(2w) -> g1 (2w, H/2)
    convT3x3 s2 (g1) + f0 -> blocks x ResBlock(w)  -> g0 (w, H)
    x_hat = y + head conv3x3 (g0)

With ``width=16, blocks=1`` (preset ``fmnist-best``) it has 88,193 parameters for
gray images and costs about 15 M multiply-adds per 28x28 image (the seed's
``conv_ae`` has 3,217 parameters). See docs/models-fmnist.md for the design search.
"""

from __future__ import annotations

from torch import Tensor, nn

from aedenoise.errors import ConfigError
from aedenoise.models import register_model
from aedenoise.models.base import Denoiser


class ResBlock(nn.Module):
    """``x + conv3x3(relu(conv3x3(x)))``, ``width`` channels in and out, no normalisation."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def res_ae_receptive_field(blocks: int) -> int:
    """Receptive field (pixels, full width) of :class:`ResAE`, rounded up to a multiple of 4.

    A 3x3 conv at scale ``s`` adds ``2 s``; a 3x3 stride-2 transposed conv from
    scale ``s`` adds ``s``. Full resolution: stem, head, ``blocks`` decoder blocks
    (``2 + 2 + 4 blocks``) and the first strided conv (2); half: ``2 blocks`` blocks
    (``8 blocks``), the second strided conv (4) and the last transposed conv (2);
    quarter: ``blocks`` blocks (``16 blocks``) and the first transposed conv (4).
    """
    rf = 1 + 2 + 2 + 2 + 4 + 2 + 4 + 36 * blocks
    return -(-rf // 4) * 4


@register_model("res_ae", description="Residual conv autoencoder, 2 stride-2 stages with skips (stronger Fashion-MNIST model, 88k params)")
class ResAE(Denoiser):
    """Residual autoencoder for ``[B, C, H, W]`` in [0, 1]; ``H``, ``W`` multiples of 4.

    Args:
        in_channels: 1 (gray) or 3 (RGB).
        width: channels at full resolution; ``2 * width`` at 1/2 and 1/4.
        blocks: residual blocks per scale (0 or more).

    ``sigma`` is ignored (trained at one noise level, or blind). The output is
    ``y`` plus a learned correction, not clamped (callers clamp to [0, 1]).
    """

    size_multiple = 4

    def __init__(self, in_channels: int = 1, width: int = 32, blocks: int = 1) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ConfigError(f"res_ae: in_channels must be 1 or 3 (got {in_channels})")
        if width < 1 or blocks < 0:
            raise ConfigError(f"res_ae: width must be >= 1 and blocks >= 0 (got width {width}, blocks {blocks})")
        self.in_channels = in_channels
        w, w2 = width, 2 * width
        self.receptive_field = res_ae_receptive_field(blocks)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(inplace=True))
        self.down1 = nn.Sequential(nn.Conv2d(w, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                   *[ResBlock(w2) for _ in range(blocks)])
        self.down2 = nn.Sequential(nn.Conv2d(w2, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                   *[ResBlock(w2) for _ in range(blocks)])
        self.up2 = nn.Sequential(nn.ConvTranspose2d(w2, w2, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True))
        self.dec1 = nn.Sequential(*[ResBlock(w2) for _ in range(blocks)])
        self.up1 = nn.Sequential(nn.ConvTranspose2d(w2, w, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True))
        self.dec0 = nn.Sequential(*[ResBlock(w) for _ in range(blocks)])
        self.head = nn.Conv2d(w, in_channels, 3, padding=1)

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """``y`` [B, C, H, W] in [0, 1] (``H``, ``W`` multiples of 4) -> ``x_hat`` like ``y``."""
        if y.shape[-2] % 4 or y.shape[-1] % 4:
            raise ValueError(f"res_ae: H and W must be multiples of 4 (got {tuple(y.shape[-2:])}); pad or tile the input")
        f0 = self.stem(y)
        f1 = self.down1(f0)
        f2 = self.down2(f1)
        g1 = self.dec1(self.up2(f2) + f1)
        g0 = self.dec0(self.up1(g1) + f0)
        return y + self.head(g0)
