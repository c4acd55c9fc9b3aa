"""Classical denoisers behind the :class:`~aedenoise.models.base.Denoiser` contract.

``create_baseline(name)`` builds one of :func:`list_baselines`; ``x_hat = model(y, sigma)``
with ``y`` a ``[B, C, H, W]`` float tensor (``C`` = 1 or 3, nominally ``[0, 1]``,
unclipped noise allowed) and ``sigma`` the Gaussian noise std on the ``[0, 1]`` scale
(a float or a ``[B]`` tensor). Each image is processed on the CPU with numpy/scipy/
scikit-image (``bm3d`` for BM3D); the result is float32 on ``y``'s device, clipped to
``[0, 1]``. ``sigma == 0`` returns the (clipped) input unchanged.

Every method's parameters are a fixed, documented function of sigma (see
``docs/baselines.md``): values tuned at the knots sigma = 15, 25, 50 (0-255 scale) on
TRAINING images only (Train400 crops for gray, CBSD432 crops for RGB) by::

    .venv/bin/python benchmarks/tune_baselines.py

Between knots continuous parameters are interpolated linearly and held constant
beyond them (``numpy.interp``); integer or categorical ones take the value of the
nearest knot (sigma < 20 -> 15, sigma < 37.5 -> 25, else 50). Parameters that scale
with the noise (TV weight, NLM ``h``) are stored as multiples of sigma.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from aedenoise.errors import AedenoiseError, ConfigError, DataError
from aedenoise.models import Denoiser

#: Noise levels (0-255 scale) at which the tables below were tuned.
KNOTS_255: tuple[float, float, float] = (15.0, 25.0, 50.0)

# ---------------------------------------------------------------------------------------
# Tuned tables, indexed by channel count (1 = gray, 3 = RGB), one value per knot.
# Produced by `.venv/bin/python benchmarks/tune_baselines.py` (its defaults: seed 0, six
# 128x128 Train400 crops and four 128x128 CBSD432 crops); paste its "tables" output here
# when re-tuning, and `--check` verifies that these match a fresh run.
# ---------------------------------------------------------------------------------------
#: Gaussian filter std in pixels (interpolated; 0 at sigma 0).
GAUSSIAN_STD_PX = {1: (0.8, 1.1, 1.9), 3: (0.6, 0.9, 1.7)}
#: Median filter window side (odd; nearest knot).
MEDIAN_SIZE = {1: (3, 5, 7), 3: (3, 3, 7)}
#: TV (Chambolle) weight divided by sigma (interpolated).
TV_WEIGHT_PER_SIGMA = {1: (0.7, 0.8, 1.0), 3: (0.7, 0.8, 0.9)}
#: Wavelet BayesShrink: (wavelet, levels, convert to YCbCr) for all sigmas ...
WAVELET_KIND = {1: ("db4", 4, False), 3: ("sym4", 4, True)}
#: ... and the factor on sigma passed to the thresholds (interpolated).
WAVELET_SIGMA_SCALE = {1: (1.0, 1.0, 1.0), 3: (1.0, 1.0, 1.0)}
#: Non-local means: h divided by sigma (interpolated) ...
NLM_H_PER_SIGMA = {1: (0.7, 0.7, 0.7), 3: (0.6, 0.5, 0.5)}
#: ... patch side and search half-width (nearest knot).
NLM_PATCH_SIZE = {1: (5, 5, 7), 3: (3, 5, 5)}
NLM_PATCH_DISTANCE = {1: (5, 5, 5), 3: (8, 8, 8)}


def interp_knots(sigma_255: float, values: tuple[float, float, float]) -> float:
    """Linear interpolation over :data:`KNOTS_255`, constant outside ``[15, 50]``."""
    return float(np.interp(sigma_255, KNOTS_255, values))


def nearest_knot(sigma_255: float, values: tuple):
    """The value at the knot nearest to ``sigma_255`` (boundaries at 20 and 37.5)."""
    return values[int(np.argmin([abs(sigma_255 - k) for k in KNOTS_255]))]


# ---------------------------------------------------------------------------------------
# Parameter sets: what one call on one image uses.
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GaussianParams:
    std_px: float


@dataclass(frozen=True)
class MedianParams:
    size: int


@dataclass(frozen=True)
class TVParams:
    weight_per_sigma: float


@dataclass(frozen=True)
class WaveletParams:
    wavelet: str
    levels: int
    ycbcr: bool
    sigma_scale: float


@dataclass(frozen=True)
class NLMParams:
    h_per_sigma: float
    patch_size: int
    patch_distance: int


@dataclass(frozen=True)
class NoParams:
    """BM3D takes sigma directly."""


Params = GaussianParams | MedianParams | TVParams | WaveletParams | NLMParams | NoParams


class ClassicalDenoiser(Denoiser):
    """A per-image numpy denoiser with sigma-dependent parameters.

    Subclasses implement :meth:`params_for` (the tuned rule) and :meth:`denoise_array`
    (one ``[H, W, C]`` float32 array, noise std ``sigma`` on the ``[0, 1]`` scale).
    ``in_channels`` only records the caller's intent: ``forward`` accepts 1 or 3 channels.
    """

    uses_sigma = True
    size_multiple = 1
    any_channels = True
    #: (module, pip extra) pairs this method needs; checked when the model is built.
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("scipy", "classical"),)

    def __init__(self, *, in_channels: int = 1) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ConfigError(f"classical denoisers take 1 or 3 channels (got in_channels={in_channels})")
        self.in_channels = in_channels
        for module, extra in self.requires:
            if importlib.util.find_spec(module) is None:
                raise AedenoiseError(
                    f"baseline {self.arch_name()!r} needs the package {module!r}; install it with: pip install 'aedenoise[{extra}]'"
                )

    @classmethod
    def arch_name(cls) -> str:
        return next((n for n, c in _BASELINES.items() if c is cls), cls.__name__)

    def params_for(self, sigma_255: float, channels: int) -> Params:  # pragma: no cover
        raise NotImplementedError

    def denoise_array(self, img: np.ndarray, sigma: float, params: Params) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        if y.ndim != 4:
            raise ValueError(f"expected y of shape [B, C, H, W], got {tuple(y.shape)}")
        b, c = y.shape[:2]
        if c not in (1, 3):
            raise DataError(f"classical denoisers handle gray (1) or RGB (3) images, got {c} channels")
        sigmas = _per_image_sigma(sigma, b, self.arch_name())
        arr = y.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()  # [B, H, W, C]
        out = np.empty_like(arr)
        for i in range(b):
            if sigmas[i] == 0.0:
                out[i] = arr[i]
                continue
            params = self.params_for(sigmas[i] * 255.0, c)
            out[i] = self.denoise_array(np.ascontiguousarray(arr[i]), sigmas[i], params)
        x_hat = torch.from_numpy(np.clip(out, 0.0, 1.0)).permute(0, 3, 1, 2).contiguous()
        return x_hat.to(y.device)


def _per_image_sigma(sigma: float | Tensor | None, batch: int, name: str) -> list[float]:
    if sigma is None:
        raise ConfigError(f"baseline {name!r} needs the noise level: give sigma (e.g. --sigma 25, or --sigma auto)")
    s = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().flatten()
    if s.numel() == 1:
        s = s.expand(batch)
    if s.numel() != batch:
        raise ValueError(f"sigma has {s.numel()} values for a batch of {batch} images")
    values = [float(v) for v in s]
    bad = [v for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
    if bad:
        raise ConfigError(f"noise level sigma must be in [0, 1] on the [0, 1] scale (got {bad[0]:g}); on the 0-255 scale divide by 255")
    return values


def _gray_or_color(img: np.ndarray) -> tuple[np.ndarray, int | None]:
    """``[H, W, C]`` -> (``[H, W]`` for gray or the array itself, channel_axis)."""
    return (img[..., 0], None) if img.shape[-1] == 1 else (img, -1)


def _restore_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    return out.reshape(like.shape).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------
# The methods.
# ---------------------------------------------------------------------------------------
class GaussianFilter(ClassicalDenoiser):
    """Isotropic Gaussian blur (scipy.ndimage, reflect borders), std from :data:`GAUSSIAN_STD_PX`."""

    receptive_field = 2 * math.ceil(4 * max(max(v) for v in GAUSSIAN_STD_PX.values())) + 1  # full width

    def params_for(self, sigma_255: float, channels: int) -> GaussianParams:
        table = GAUSSIAN_STD_PX[channels]
        return GaussianParams(float(np.interp(sigma_255, (0.0, *KNOTS_255), (0.0, *table))))

    def denoise_array(self, img: np.ndarray, sigma: float, params: Params) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        assert isinstance(params, GaussianParams)
        return gaussian_filter(img, sigma=(params.std_px, params.std_px, 0.0), mode="reflect", truncate=4.0)


class MedianFilter(ClassicalDenoiser):
    """Square median filter per channel (scipy.ndimage, reflect borders), side from :data:`MEDIAN_SIZE`."""

    receptive_field = max(max(v) for v in MEDIAN_SIZE.values())  # full window width

    def params_for(self, sigma_255: float, channels: int) -> MedianParams:
        return MedianParams(int(nearest_knot(sigma_255, MEDIAN_SIZE[channels])))

    def denoise_array(self, img: np.ndarray, sigma: float, params: Params) -> np.ndarray:
        from scipy.ndimage import median_filter

        assert isinstance(params, MedianParams)
        return median_filter(img, size=(params.size, params.size, 1), mode="reflect")


class TotalVariation(ClassicalDenoiser):
    """Chambolle's TV denoising (skimage ``denoise_tv_chambolle``, per channel), weight = k(sigma) * sigma."""

    requires = (("skimage", "classical"),)
    receptive_field = 32  # a global method; this overlap keeps tiles consistent in practice

    def params_for(self, sigma_255: float, channels: int) -> TVParams:
        return TVParams(interp_knots(sigma_255, TV_WEIGHT_PER_SIGMA[channels]))

    def denoise_array(self, img: np.ndarray, sigma: float, params: Params) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        assert isinstance(params, TVParams)
        plane, axis = _gray_or_color(img)
        out = denoise_tv_chambolle(plane, weight=params.weight_per_sigma * sigma, channel_axis=axis)
        return _restore_channels(out, img)


class WaveletShrink(ClassicalDenoiser):
    """Wavelet soft thresholding with BayesShrink thresholds (skimage ``denoise_wavelet``) at the given sigma."""

    requires = (("skimage", "classical"), ("pywt", "classical"))
    receptive_field = 32

    def params_for(self, sigma_255: float, channels: int) -> WaveletParams:
        wavelet, levels, ycbcr = WAVELET_KIND[channels]
        return WaveletParams(wavelet, levels, ycbcr, interp_knots(sigma_255, WAVELET_SIGMA_SCALE[channels]))

    def denoise_array(self, img: np.ndarray, sigma: float, params: Params) -> np.ndarray:
        import pywt
        from skimage.restoration import denoise_wavelet

        assert isinstance(params, WaveletParams)
        plane, axis = _gray_or_color(img)
        # Fewer levels on small images, so that every level has real coefficients.
        max_level = pywt.dwt_max_level(min(img.shape[:2]), pywt.Wavelet(params.wavelet).dec_len)
        levels = max(1, min(params.levels, max_level))
        out = denoise_wavelet(
            plane, sigma=params.sigma_scale * sigma, wavelet=params.wavelet, mode="soft",
            wavelet_levels=levels, convert2ycbcr=params.ycbcr and axis is not None,
            method="BayesShrink", rescale_sigma=True, channel_axis=axis,
        )
        return _restore_channels(out, img)


class NonLocalMeans(ClassicalDenoiser):
    """Non-local means (skimage ``denoise_nl_means``, fast mode, noise variance given), h = k(sigma) * sigma."""

    requires = (("skimage", "classical"),)
    receptive_field = 2 * (max(max(v) for v in NLM_PATCH_DISTANCE.values()) + max(max(v) for v in NLM_PATCH_SIZE.values())) + 1  # full width

    def params_for(self, sigma_255: float, channels: int) -> NLMParams:
        return NLMParams(
            interp_knots(sigma_255, NLM_H_PER_SIGMA[channels]),
            int(nearest_knot(sigma_255, NLM_PATCH_SIZE[channels])),
            int(nearest_knot(sigma_255, NLM_PATCH_DISTANCE[channels])),
        )

    def denoise_array(self, img: np.ndarray, sigma: float, params: Params) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        assert isinstance(params, NLMParams)
        plane, axis = _gray_or_color(img)
        out = denoise_nl_means(
            plane, h=params.h_per_sigma * sigma, sigma=sigma, fast_mode=True,
            patch_size=params.patch_size, patch_distance=params.patch_distance, channel_axis=axis,
        )
        return _restore_channels(out, img)


class BM3D(ClassicalDenoiser):
    """BM3D (Dabov et al. 2007) for gray and CBM3D (opponent colour space) for RGB, from the ``bm3d`` package.

    Default ``'np'`` profile, both stages; takes sigma directly (no tuning). The
    ``bm3d`` package is free for non-commercial use only (see ``docs/baselines.md``).
    """

    requires = (("bm3d", "bm3d"),)
    receptive_field = 32

    def params_for(self, sigma_255: float, channels: int) -> NoParams:
        return NoParams()

    def denoise_array(self, img: np.ndarray, sigma: float, params: Params) -> np.ndarray:
        import bm3d

        z = img.astype(np.float64)
        out = bm3d.bm3d(z[..., 0], sigma_psd=sigma) if img.shape[-1] == 1 else bm3d.bm3d_rgb(z, sigma_psd=sigma)
        return _restore_channels(np.asarray(out), img)


# ---------------------------------------------------------------------------------------
# Registry.
# ---------------------------------------------------------------------------------------
_BASELINES: dict[str, type[ClassicalDenoiser]] = {
    "gaussian": GaussianFilter,
    "median": MedianFilter,
    "tv": TotalVariation,
    "wavelet": WaveletShrink,
    "nlm": NonLocalMeans,
    "bm3d": BM3D,
}


def list_baselines() -> list[str]:
    """Names accepted by :func:`create_baseline`, sorted."""
    return sorted(_BASELINES)


def create_baseline(name: str, *, in_channels: int = 1) -> ClassicalDenoiser:
    """Build the classical denoiser ``name`` (parameters are fixed functions of sigma).

    ``in_channels`` (1 or 3) only sets the ``in_channels`` attribute; the model
    accepts both. Raises :class:`ConfigError` for an unknown name and
    :class:`AedenoiseError` (with the pip command) when an optional package is missing.
    """
    try:
        cls = _BASELINES[name]
    except KeyError:
        raise ConfigError(f"unknown baseline {name!r}; choose one of: {', '.join(list_baselines())}") from None
    model = cls(in_channels=in_channels)
    model.arch = {"name": name, "args": {"in_channels": in_channels}}
    return model



__all__ = [
    "BM3D", "ClassicalDenoiser", "GaussianFilter", "KNOTS_255", "MedianFilter", "NonLocalMeans",
    "TotalVariation", "WaveletShrink", "create_baseline", "interp_knots", "list_baselines", "nearest_knot",
]
