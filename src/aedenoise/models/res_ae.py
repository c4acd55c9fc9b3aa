"""``res_ae`` and ``res_ae_global``: deeper residual convolutional autoencoders (Fashion-MNIST).

Same shape of idea as the seed (two stride-2 encoder stages, two stride-2 transposed
decoder stages), made deeper and easier to train: residual blocks at every scale,
additive skips from encoder to decoder (U-Net style), and a global residual so the
network predicts the correction ``x_hat - y``::

    y [C, H, W] -> stem conv3x3 -> f0 (w, H)
    f0 -> conv3x3 s2 -> blocks x ResBlock(2w) -> f1 (2w, H/2)
    f1 -> conv3x3 s2 -> blocks x ResBlock(2w) -> bottleneck -> f2 (2w, H/4)
    convT3x3 s2 (f2) + f1 -> blocks x ResBlock(2w) -> g1 (2w, H/2)
    convT3x3 s2 (g1) + f0 -> blocks x ResBlock(w)  -> g0 (w, H)
    x_hat = y + head conv3x3 (g0)

The bottleneck is the identity in ``res_ae`` and a :class:`GlobalContext` MLP in
``res_ae_global`` (preset ``fmnist-best``). With ``width=16, blocks=1`` the convolutions
hold 88,193 parameters for gray images and cost about 15 M multiply-adds per 28x28 image
(the seed's ``conv_ae`` has 3,217 parameters). See docs/models-fmnist.md for the design search.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from aedenoise.errors import ConfigError
from aedenoise.models.base import Denoiser
from aedenoise.models.registry import register_model

ACTIVATIONS = ("relu", "gelu", "silu")


def activation_layer(name: str) -> nn.Module:
    """``relu``, ``gelu`` (exact, erf form) or ``silu`` as a module."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU(inplace=True)
    raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")


class ResBlock(nn.Module):
    """``x + conv3x3(act(conv3x3(x)))``, ``width`` channels in and out, no normalisation."""

    def __init__(self, width: int, activation: str = "relu") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), activation_layer(activation), nn.Conv2d(width, width, 3, padding=1)
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
        activation: ``relu``, ``gelu`` or ``silu``, after every convolution but the last.

    ``sigma`` is ignored (trained at one noise level, or blind). The output is
    ``y`` plus a learned correction, not clamped (callers clamp to [0, 1]).
    """

    size_multiple = 4

    def __init__(self, in_channels: int = 1, width: int = 32, blocks: int = 1, activation: str = "relu") -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ConfigError(f"res_ae: in_channels must be 1 or 3 (got {in_channels})")
        if width < 1 or blocks < 0:
            raise ConfigError(f"res_ae: width must be >= 1 and blocks >= 0 (got width {width}, blocks {blocks})")
        self.in_channels = in_channels
        w, w2 = width, 2 * width
        self.receptive_field = res_ae_receptive_field(blocks)

        def act() -> nn.Module:
            return activation_layer(activation)

        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1), act())
        self.down1 = nn.Sequential(nn.Conv2d(w, w2, 3, stride=2, padding=1), act(), *[ResBlock(w2, activation) for _ in range(blocks)])
        self.down2 = nn.Sequential(nn.Conv2d(w2, w2, 3, stride=2, padding=1), act(), *[ResBlock(w2, activation) for _ in range(blocks)])
        self.up2 = nn.Sequential(nn.ConvTranspose2d(w2, w2, 3, stride=2, padding=1, output_padding=1), act())
        self.dec1 = nn.Sequential(*[ResBlock(w2, activation) for _ in range(blocks)])
        self.up1 = nn.Sequential(nn.ConvTranspose2d(w2, w, 3, stride=2, padding=1, output_padding=1), act())
        self.dec0 = nn.Sequential(*[ResBlock(w, activation) for _ in range(blocks)])
        self.head = nn.Conv2d(w, in_channels, 3, padding=1)
        self.bottleneck: nn.Module = nn.Identity()

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """``y`` [B, C, H, W] in [0, 1] (``H``, ``W`` multiples of 4) -> ``x_hat`` like ``y``."""
        if y.shape[-2] % 4 or y.shape[-1] % 4:
            raise ValueError(f"res_ae: H and W must be multiples of 4 (got {tuple(y.shape[-2:])}); pad or tile the input")
        f0 = self.stem(y)
        f1 = self.down1(f0)
        f2 = self.bottleneck(self.down2(f1))
        g1 = self.dec1(self.up2(f2) + f1)
        g0 = self.dec0(self.up1(g1) + f0)
        return y + self.head(g0)


class GlobalContext(nn.Module):
    """``f + resize(MLP(pool(f)))``: whole-image context for ``[B, channels, h, w]`` features.

    The features are average-pooled to a ``grid x grid`` map (a no-op at ``h = w = grid``),
    flattened, passed through ``Linear -> ReLU -> Linear`` with ``hidden`` units, and the
    result, a ``[B, channels, grid, grid]`` map, is resized back to ``h x w`` (bilinear;
    a no-op at the grid size) and added. Every output position thus sees every input
    position, which a stack of 3x3 convolutions only does in principle. The last layer
    starts at zero, so the block starts as the identity.
    """

    def __init__(self, channels: int, *, grid: int, hidden: int) -> None:
        super().__init__()
        self.grid = grid
        n = channels * grid * grid
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, f: Tensor) -> Tensor:
        size, g = tuple(f.shape[-2:]), self.grid
        at_grid = size == (g, g)
        context = self.mlp(f if at_grid else F.adaptive_avg_pool2d(f, g)).view(f.shape[0], -1, g, g)
        if not at_grid:
            context = F.interpolate(context, size=size, mode="bilinear", align_corners=False)
        return f + context


@register_model("res_ae_global", description="res_ae with a fully connected global-context block at the bottleneck (Fashion-MNIST fmnist-best, 1.7 M params)")
class ResAEGlobal(ResAE):
    """:class:`ResAE` plus a :class:`GlobalContext` block on the 1/4-scale features.

    Args:
        in_channels, width, blocks, activation: as :class:`ResAE` (GELU by default here).
        flip_ensemble: in eval mode, average the estimates of the image and of its mirror
            image (a self-ensemble; train with ``hflip = true`` so both are in-distribution).
        global_hidden: hidden units of the context MLP.
        global_grid: the MLP's grid (``global_grid x global_grid`` positions of ``2 * width``
            channels): 7 is the bottleneck of a 28x28 image, where pooling and resizing are
            no-ops. Other sizes work (pooled, then resized back), but the weights learn
            the layout of the size they were trained at.

    Its output depends on the whole image, so tiles of a large image are not
    independent: ``receptive_field`` is that of :class:`ResAE` and tiling stays an
    approximation for this model. Parameters: about ``2 * (2 * width * grid^2) * hidden`` in
    the MLP (1.6 M for ``width=16, global_hidden=512``, 0.8 M at 256 as in ``fmnist-best``);
    compute: the same number of multiply-adds, 5-11 % of the convolutions' at 28x28.
    """

    def __init__(
        self, in_channels: int = 1, width: int = 16, blocks: int = 1, activation: str = "gelu", global_hidden: int = 512,
        global_grid: int = 7, flip_ensemble: bool = False,
    ) -> None:
        super().__init__(in_channels, width, blocks, activation)
        if global_hidden < 1 or global_grid < 1:
            raise ConfigError(f"res_ae_global: global_hidden and global_grid must be >= 1 (got {global_hidden}, {global_grid})")
        self.bottleneck = GlobalContext(2 * width, grid=global_grid, hidden=global_hidden)
        self.flip_ensemble = flip_ensemble

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """As :meth:`ResAE.forward`; with ``flip_ensemble``, in eval mode, the mean of the
        estimates for ``y`` and for ``y`` flipped left-right (flipped back): twice the compute."""
        x_hat = super().forward(y)
        if self.flip_ensemble and not self.training:
            x_hat = 0.5 * (x_hat + super().forward(y.flip(-1)).flip(-1))
        return x_hat
