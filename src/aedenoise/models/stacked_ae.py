"""Stacked convolutional autoencoders: the seed model generalised to several stages.

The seed (:mod:`aedenoise.models.conv_ae`) is two stride-2 conv layers and their
mirror transposed convs. A stacked autoencoder repeats that pattern ``S`` times,
each stage a small autoencoder of its own, so that the classic greedy layer-wise
recipe (:mod:`aedenoise.training.greedy`) can train it one stage at a time::

    level 0 (image, c)  --encoders[0]-->  level 1 (widths[0], H/2)  --encoders[1]-->  ...  level S
    level 0 (image, c)  <--decoders[0]--  level 1                   <--decoders[1]--  ...  level S

``encoders[k]`` maps a level-``k`` code to a level-``k+1`` code: a 3x3 stride-2 conv
then ``convs_per_stage - 1`` 3x3 convs, each followed by a ReLU. ``decoders[k]`` is its
mirror: ``convs_per_stage - 1`` 3x3 convs, then a 3x3 stride-2 transposed conv back
to level ``k``, each followed by a ReLU; ``decoders[0]`` ends with a 3x3 conv to the
image channels and a sigmoid, like the seed, so every output is in ``[0, 1]``.
Codes are ReLU outputs (non-negative). See docs/stacked.md for why the output is a
sigmoid rather than a residual ``y - n_hat``.
"""

from __future__ import annotations

from torch import Tensor, nn

from aedenoise.errors import ConfigError
from aedenoise.models.base import Denoiser
from aedenoise.models.registry import register_model


def _conv(c_in: int, c_out: int, *, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True)]


@register_model(
    "stacked_ae",
    description="Stacked conv autoencoder (stages of strided convs / transposed convs, sigmoid output); greedy layer-wise trainable",
)
class StackedAE(Denoiser):
    """A stack of ``len(widths)`` encoder/decoder stages; gray (1) or color (3) channels.

    Args:
        in_channels: image channels, 1 or 3.
        widths: feature channels of the code after each encoder stage, e.g. ``(48, 96, 192)``.
        convs_per_stage: 3x3 convs per encoder stage (the first one strided) and per decoder stage
            (the last one a stride-2 transposed conv).

    Input ``y`` and output ``[B, in_channels, H, W]`` in ``[0, 1]``; ``H`` and ``W``
    must be multiples of ``2 ** len(widths)``. ``sigma`` is ignored (blind model).
    """

    uses_sigma = False

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] | list[int] = (48, 96, 192), convs_per_stage: int = 2) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if in_channels not in (1, 3):
            raise ConfigError(f"stacked_ae: in_channels must be 1 or 3 (got {in_channels})")
        if not widths or min(widths) < 1:
            raise ConfigError(f"stacked_ae: widths must be a non-empty list of positive channel counts (got {list(widths)})")
        if convs_per_stage < 1:
            raise ConfigError(f"stacked_ae: convs_per_stage must be >= 1 (got {convs_per_stage})")
        self.in_channels = in_channels
        self.widths = widths
        self.convs_per_stage = convs_per_stage
        self.size_multiple = 2 ** len(widths)
        self.receptive_field = self._receptive_field()
        encoders, decoders = [], []
        c_prev = in_channels
        for k, w in enumerate(widths):
            enc = _conv(c_prev, w, stride=2)
            dec: list[nn.Module] = []
            for _ in range(convs_per_stage - 1):
                enc += _conv(w, w)
                dec += _conv(w, w)
            if k == 0:  # back to the image: upsample, then a full-resolution conv to c channels
                dec += _up(w, w) + [nn.Conv2d(w, in_channels, 3, padding=1), nn.Sigmoid()]
            else:
                dec += _up(w, c_prev)
            encoders.append(nn.Sequential(*enc))
            decoders.append(nn.Sequential(*dec))
            c_prev = w
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)

    @property
    def stages(self) -> int:
        return len(self.encoders)

    def _receptive_field(self) -> int:
        """Context in pixels (diameter) of one output pixel, rounded up to ``size_multiple``."""
        rf = 3  # final full-resolution conv
        for k in range(len(self.widths)):
            rf += 2 * 2**k + 2 * (self.convs_per_stage - 1) * 2 ** (k + 1)  # encoder stage k
            rf += 2 * 2**k + 2 * (self.convs_per_stage - 1) * 2 ** (k + 1)  # its mirror
        return -(-rf // self.size_multiple) * self.size_multiple

    def encode_to(self, y: Tensor, k: int) -> Tensor:
        """The level-``k`` code of ``y`` [B, c, H, W]: ``[B, widths[k-1], H/2^k, W/2^k]`` (``k = 0``: ``y``)."""
        self._check_level(k)
        z = y
        for enc in self.encoders[:k]:
            z = enc(z)
        return z

    def decode_from(self, z: Tensor, k: int) -> Tensor:
        """Decode a level-``k`` code through ``decoders[k-1], ..., decoders[0]`` to an image in [0, 1]."""
        self._check_level(k)
        for dec in reversed(self.decoders[:k]):
            z = dec(z)
        return z

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        return self.decode_from(self.encode_to(y, self.stages), self.stages)

    def _check_level(self, k: int) -> None:
        if not 0 <= k <= self.stages:
            raise ValueError(f"level must be in 0..{self.stages} (got {k})")
