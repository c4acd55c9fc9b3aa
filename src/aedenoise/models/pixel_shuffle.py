"""A model applied to pixel-shuffled sub-images: for noise correlated between neighbouring pixels.

Pixel-shuffle down-sampling with stride ``s`` splits an image into ``s * s`` sub-images, each
made of every ``s``-th pixel (Zhou et al. 2020, "When AWGN-based denoiser meets real noises";
Lee et al. 2022, AP-BSN). Noise correlated over fewer than ``s`` pixels (demosaiced, blurred,
resampled) is independent between the pixels of one sub-image, so a denoiser for white noise,
or a self-supervised objective that assumes it, applies there. ``aedenoise adapt`` writes
such models (``pixel_shuffle`` around the adapted network) when it finds correlated noise.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from aedenoise.errors import ConfigError
from aedenoise.models.base import Denoiser
from aedenoise.models.registry import create_model, register_model


def shuffle_down(y: Tensor, stride: int) -> Tensor:
    """``[B, C, H, W]`` -> its ``stride**2`` sub-images ``[B * stride**2, C, H // stride, W // stride]``.

    Sub-image ``k = i * stride + j`` of image ``b`` (at ``b * stride**2 + k``) holds the pixels
    ``y[b, :, i::stride, j::stride]``; rows and columns past a multiple of ``stride`` are dropped.
    """
    b, c, h, w = y.shape
    s = stride
    y = y[..., : h - h % s, : w - w % s]
    return y.reshape(b, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).reshape(b * s * s, c, h // s, w // s)


def shuffle_up(z: Tensor, stride: int) -> Tensor:
    """The inverse of :func:`shuffle_down`: ``[B * stride**2, C, h, w]`` -> ``[B, C, h * stride, w * stride]``."""
    bs, c, h, w = z.shape
    s = stride
    return z.reshape(bs // (s * s), s, s, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(bs // (s * s), c, h * s, w * s)


@register_model(
    "pixel_shuffle",
    description="Another model applied to the stride x stride pixel-shuffled sub-images (noise correlated between "
    "neighbours); written by aedenoise adapt",
)
class PixelShuffled(Denoiser):
    """``inner`` (an architecture: ``{"name": ..., "args": {...}}``) run on the ``stride**2``
    pixel-shuffled sub-images of ``y`` (:func:`shuffle_down`), put back together.

    ``sigma`` is the noise standard deviation per pixel, which the sub-images share: passed to
    ``inner`` as it is. ``H`` and ``W`` must be multiples of ``stride`` times ``inner``'s own
    multiple. The weights are ``inner``'s, under ``inner.``.
    """

    def __init__(self, stride: int = 2, inner: dict[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(stride, int) or isinstance(stride, bool) or not 1 <= stride <= 8:
            raise ConfigError(f"pixel_shuffle: stride must be a whole number from 1 to 8, got {stride!r}")
        spec = inner or {"name": "unet"}
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ConfigError(f"pixel_shuffle: inner must be an architecture {{'name': ..., 'args': {{...}}}}, got {inner!r}")
        if spec["name"] == "pixel_shuffle":
            raise ConfigError("pixel_shuffle: inner is a pixel_shuffle model; give one stride instead of nesting")
        self.inner = create_model(spec["name"], **spec.get("args", {}))
        self.stride = self.shuffle_stride = stride
        self.in_channels = self.inner.in_channels
        self.uses_sigma = self.inner.uses_sigma
        self.size_multiple = stride * self.inner.size_multiple
        self.receptive_field = stride * self.inner.receptive_field

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        s = self.stride
        if y.shape[-2] % self.size_multiple or y.shape[-1] % self.size_multiple:
            raise ConfigError(f"pixel_shuffle: H and W must be multiples of {self.size_multiple} "
                              f"(got {tuple(y.shape[-2:])}); pad or tile the input")
        if isinstance(sigma, Tensor) and sigma.ndim > 0:
            sigma = sigma.reshape(-1).expand(y.shape[0]).repeat_interleave(s * s)
        return shuffle_up(self.inner(shuffle_down(y, s), sigma), s)


def wrap(model: Denoiser, stride: int) -> Denoiser:
    """``model`` (built by ``create_model``) applied to pixel-shuffled sub-images at ``stride``, with its
    weights; ``model`` itself at stride 1."""
    if stride == 1:
        return model
    wrapped = create_model("pixel_shuffle", stride=stride, inner=model.arch)
    wrapped.inner.load_state_dict(model.state_dict())
    return wrapped
