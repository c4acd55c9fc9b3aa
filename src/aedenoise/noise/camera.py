"""Realistic camera noise for training: a clean sRGB image taken back to raw, noised, and developed again.

After Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising" (CVPR): the clean
sRGB image ``x`` ``[B, 3, H, W]`` in ``[0, 1]`` is *unprocessed* (inverse tone curve, inverse
gamma, inverse colour-correction matrix, inverse white-balance gains, RGGB Bayer mosaic),
shot and read noise are added in that linear raw space (variance ``read + shot * signal``,
the read level tied to the shot level as the paper measured on real sensors), and the image
is *processed* again (bilinear demosaicing, the gains, the matrix, gamma, tone curve). What
the noise changed in the developed image is added to ``x`` (so the clean target is ``x``, not
``x`` blurred by a demosaicing round trip), and the result is saved as JPEG at a random quality. So the noise grows with brightness, is correlated between
neighbouring pixels and between channels (demosaicing), and is compressed like a camera's.

Every random draw comes from the ``torch.Generator`` passed in (the JPEG step is
deterministic), so the same seed gives the same noisy images. Gray images go through the
same pipeline as RGB with equal channels, and come back as the channels' mean.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aedenoise.errors import ConfigError

# XYZ -> camera matrices of four cameras (Brooks et al., after the Adobe DNG converter); a
# random convex mix of them is each image's camera.
_XYZ2CAMS = torch.tensor([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
], dtype=torch.float64)
_RGB2XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)

_RGB2YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                        dtype=torch.float64)  # JPEG's YCbCr (BT.601, full range), for luma/chroma noise
_YCC2RGB = torch.linalg.inv(_RGB2YCC)


@dataclass(frozen=True)
class CameraNoise:
    """Camera noise with the shot level drawn per image, log-uniform in ``[shot_min, shot_max]``.

    ``shot`` is the shot-noise gain on the linear ``[0, 1]`` raw scale (Brooks et al.: 1e-4 to
    0.012, ISO 100 to beyond 3200); ``read`` follows ``log(read) = 2.18 log(shot) + 1.2 + N(0, 0.26)``.
    ``jpeg``: the JPEG quality range (``None``: no compression). ``smooth_max``: in-camera
    noise reduction, which leaves the noise in blotches wider than demosaicing's, coloured
    blotches widest: the noise of each image is split into luma and chroma (YCbCr), the luma
    part blurred by a Gaussian of standard deviation ~ U[0, ``smooth_max``] pixels and the
    chroma part by one of ~ U[0.5, 1.5] x ``smooth_max``, before JPEG (0: none, the default).
    ``grain_max``: the size of the noise's grain. Each image's noise is made at ``1/g`` of its
    resolution, ``g`` ~ U[1, ``grain_max``], and enlarged (bilinear) to full size: noise in
    blotches of several pixels, as in full-resolution photos after in-camera processing and
    in downscaled ones (1: pixel-sized grain, the default).
    """

    shot_min: float = 1e-4
    shot_max: float = 0.012
    jpeg: tuple[int, int] | None = (70, 95)
    smooth_max: float = 0.0
    grain_max: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.shot_min <= self.shot_max <= 1:
            raise ConfigError(f"camera noise: need 0 < shot_min <= shot_max <= 1 (got {self.shot_min}, {self.shot_max})")
        if self.jpeg is not None and not 1 <= self.jpeg[0] <= self.jpeg[1] <= 100:
            raise ConfigError(f"camera noise: JPEG quality range must lie in 1..100 (got {self.jpeg})")
        if not 0 <= self.smooth_max <= 8:
            raise ConfigError(f"camera noise: smooth_max must be in [0, 8] pixels (got {self.smooth_max})")
        if not 1 <= self.grain_max <= 8:
            raise ConfigError(f"camera noise: grain_max must be in [1, 8] (got {self.grain_max})")

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"camera noise takes [B, 1 or 3, H, W] images, got {tuple(x.shape)}")
        gray = x.shape[1] == 1
        rgb = x.expand(-1, 3, -1, -1) if gray else x
        out = torch.stack([self._one(img, generator) for img in rgb.to("cpu", torch.float64)])
        out = out.mean(1, keepdim=True) if gray else out
        return out.to(x.device, x.dtype)

    def describe(self) -> str:
        jpeg = f", JPEG quality {self.jpeg[0]}-{self.jpeg[1]}" if self.jpeg else ""
        smooth = f", noise blurred up to {self.smooth_max:g} px" if self.smooth_max else ""
        grain = f", grain up to {self.grain_max:g} px" if self.grain_max > 1 else ""
        return f"camera (unprocessed raw, shot {self.shot_min:g}-{self.shot_max:g}, read tied{smooth}{grain}{jpeg})"

    # -- one image [3, H, W], float64 on the CPU ---------------------------------------------

    def _one(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        h, w = x.shape[-2:]
        u = torch.rand(7, generator=g, dtype=torch.float64)
        grain = 1.0 + (self.grain_max - 1.0) * float(u[6])
        if grain > 1.0:  # the noise of a reduced copy, enlarged
            size = (max(2, round(h / grain)), max(2, round(w / grain)))
            small = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
            delta = F.interpolate(self._delta(small, u, g)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        else:
            delta = self._delta(x, u, g)
        y = (x + delta).clamp(0, 1)
        if self.jpeg is not None:
            quality = int(self.jpeg[0] + int(u[3] * (self.jpeg[1] - self.jpeg[0] + 1)))
            y = _jpeg(y, min(quality, self.jpeg[1]))
        return y

    def _delta(self, x: Tensor, u: Tensor, g: torch.Generator | None) -> Tensor:
        """What the noise changes in the developed image ``x`` [3, H, W] (``u``: the image's uniform draws)."""
        h, w = x.shape[-2:]
        x = F.pad(x[None], (0, w % 2, 0, h % 2), mode="replicate")[0] if (h % 2 or w % 2) else x
        mix = torch.rand(4, generator=g, dtype=torch.float64)
        rgb2cam = self._rgb2cam(mix / mix.sum())
        red, blue = 1.9 + 0.5 * u[0], 1.5 + 0.4 * u[1]
        rgb_gain = 1.0 / (0.8 + 0.1 * torch.randn(1, generator=g, dtype=torch.float64)).clamp_min(0.4)
        log_shot = math.log(self.shot_min) + u[2] * (math.log(self.shot_max) - math.log(self.shot_min))
        log_read = 2.18 * log_shot + 1.20 + 0.26 * torch.randn(1, generator=g, dtype=torch.float64)
        shot, read = math.exp(float(log_shot)), math.exp(float(log_read))
        gains = torch.stack([rgb_gain[0] * red, rgb_gain[0], rgb_gain[0] * blue])

        linear = _srgb_to_linear(x)
        cam = torch.einsum("ij,jhw->ihw", rgb2cam, linear)
        cam = _inverse_gains(cam, gains)
        raw = _mosaic(cam)  # [4, H/2, W/2]: R, G (red row), G (blue row), B
        variance = read + shot * raw
        noisy = (raw + variance.clamp_min(0).sqrt() * torch.randn(raw.shape, generator=g, dtype=raw.dtype)).clamp(0, 1)

        def develop(mosaic: Tensor) -> Tensor:
            cam = _demosaic(mosaic) * gains[:, None, None]
            return _linear_to_srgb(torch.einsum("ij,jhw->ihw", torch.linalg.inv(rgb2cam), cam).clamp(0, 1))

        # What the noise changes in the developed image, added to x itself by the caller: the
        # target stays x, not x blurred by demosaicing (a real clean reference is demosaiced too, and sharp).
        delta = develop(noisy) - develop(raw)
        if self.smooth_max > 0:
            ycc = torch.einsum("ij,jhw->ihw", _RGB2YCC, delta)
            ycc = torch.cat([_blur(ycc[:1], self.smooth_max * float(u[4])),
                             _blur(ycc[1:], self.smooth_max * (0.5 + float(u[5])))])
            delta = torch.einsum("ij,jhw->ihw", _YCC2RGB, ycc)
        return delta[:, :h, :w]

    @staticmethod
    def _rgb2cam(weights: Tensor) -> Tensor:
        xyz2cam = (weights[:, None, None] * _XYZ2CAMS).sum(0)
        rgb2cam = xyz2cam @ _RGB2XYZ
        return rgb2cam / rgb2cam.sum(-1, keepdim=True)  # white stays white


def _srgb_to_linear(x: Tensor) -> Tensor:
    """Inverse of Brooks et al.'s smoothstep tone curve, then of gamma 2.2."""
    x = x.clamp(0, 1)
    untoned = 0.5 - torch.sin(torch.asin((1.0 - 2.0 * x).clamp(-1, 1)) / 3.0)
    return untoned.clamp_min(1e-8) ** 2.2


def _linear_to_srgb(x: Tensor) -> Tensor:
    gamma = x.clamp_min(1e-8) ** (1 / 2.2)
    return (3.0 * gamma**2 - 2.0 * gamma**3).clamp(0, 1)


def _inverse_gains(cam: Tensor, gains: Tensor) -> Tensor:
    """Divide by the white-balance gains, keeping highlights from clipping (Brooks et al.'s safe inversion)."""
    gray = cam.mean(0, keepdim=True)
    inv = 1.0 / gains[:, None, None]
    mask = ((gray - 0.9).clamp_min(0) / 0.1) ** 2
    safe = torch.maximum(mask + (1 - mask) * inv, inv)
    return cam * safe


def _mosaic(cam: Tensor) -> Tensor:
    r, g, b = cam
    return torch.stack([r[0::2, 0::2], g[0::2, 1::2], g[1::2, 0::2], b[1::2, 1::2]])


def _demosaic(raw: Tensor) -> Tensor:
    """Bilinear demosaicing of an RGGB mosaic ``[4, h, w]`` to ``[3, 2h, 2w]``."""
    h, w = raw.shape[-2:]
    full = torch.zeros(3, 2 * h, 2 * w, dtype=raw.dtype)
    have = torch.zeros(3, 2 * h, 2 * w, dtype=raw.dtype)
    full[0, 0::2, 0::2], have[0, 0::2, 0::2] = raw[0], 1
    full[1, 0::2, 1::2], have[1, 0::2, 1::2] = raw[1], 1
    full[1, 1::2, 0::2], have[1, 1::2, 0::2] = raw[2], 1
    full[2, 1::2, 1::2], have[2, 1::2, 1::2] = raw[3], 1
    k = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], dtype=raw.dtype)[None, None]
    num = F.conv2d(F.pad(full[:, None], (1, 1, 1, 1), mode="reflect"), k)[:, 0]
    den = F.conv2d(F.pad(have[:, None], (1, 1, 1, 1), mode="reflect"), k)[:, 0]
    return torch.where(have > 0, full, num / den.clamp_min(1e-12))


def _blur(x: Tensor, std: float) -> Tensor:
    """``x`` [C, H, W] blurred by a Gaussian of ``std`` pixels (reflect padding); below 0.1 px unchanged."""
    if std < 0.1:
        return x
    radius = max(1, math.ceil(3 * std))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / std) ** 2)
    k = k / k.sum()
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    k = k[radius - pad : radius + pad + 1]
    z = F.pad(x[:, None], (pad, pad, pad, pad), mode="reflect")
    z = F.conv2d(z, k.reshape(1, 1, 1, -1))
    return F.conv2d(z, k.reshape(1, 1, -1, 1))[:, 0]


def _jpeg(x: Tensor, quality: int) -> Tensor:
    from PIL import Image

    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(torch.float64) / 255.0
