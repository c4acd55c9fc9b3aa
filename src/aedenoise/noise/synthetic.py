"""Synthetic noise models: small seeded classes, ``y = noise(x, generator=g)``.

``x`` is a float32 tensor ``[B, C, H, W]`` (or any shape) in ``[0, 1]``; every
level is on the ``[0, 1]`` intensity scale. Randomness comes only from the
``torch.Generator`` passed in (it must live on ``x``'s device), so the same seed
gives the same noisy images on the same device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from aedenoise.errors import ConfigError


class NoiseModel(Protocol):
    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor: ...

    def describe(self) -> str: ...


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive white Gaussian noise ``y = x + sigma * n``.

    ``sigma`` is the standard deviation on the [0, 1] scale (25/255 ~ 0.098).
    With ``sigma_max`` set, each image gets its own sigma drawn uniformly from
    ``[sigma, sigma_max]`` (blind training). ``clip=True`` clamps ``y`` to [0, 1]
    (the tutorial's ``noise_factor``); the benchmark protocol does not clip.
    """

    sigma: float
    clip: bool = False
    sigma_max: float | None = None

    def __post_init__(self) -> None:
        _check(math.isfinite(self.sigma) and 0 <= self.sigma <= 1, f"Gaussian sigma must be in [0, 1] (got {self.sigma}); on the 0-255 scale divide by 255")
        if self.sigma_max is not None:
            _check(self.sigma <= self.sigma_max <= 1, f"sigma_max must be in [sigma, 1] (got {self.sigma_max})")

    def sample_sigma(
        self, batch: int, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> Tensor:
        """Per-image noise levels ``[batch]`` (random only with ``sigma_max``)."""
        if self.sigma_max is None:
            return torch.full((batch,), self.sigma, device=device)
        u = torch.rand(batch, generator=generator, device=device)
        return self.sigma + (self.sigma_max - self.sigma) * u

    def apply(self, x: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(y, sigma)`` with ``sigma`` the per-image level ``[B]``."""
        sigma = self.sample_sigma(x.shape[0], generator=generator, device=x.device).to(x.dtype)
        n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        y = x + sigma.reshape(-1, *([1] * (x.ndim - 1))) * n
        return (y.clamp(0, 1) if self.clip else y), sigma

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(x, generator=generator)[0]

    def describe(self) -> str:
        level = f"{self.sigma * 255:g}" if self.sigma_max is None else f"U[{self.sigma * 255:g}, {self.sigma_max * 255:g}]"
        return f"Gaussian sigma={level}/255" + (", clipped" if self.clip else "")


@dataclass(frozen=True)
class CorrelatedGaussianNoise:
    """Gaussian noise correlated between neighbouring pixels: ``y = x + box_k(sigma * n)``.

    White noise of standard deviation ``sigma`` is averaged over ``blur x blur`` windows
    (a box filter, reflected at the border, each channel on its own) before it is added, so
    its standard deviation is ``sigma / blur`` and neighbours within ``blur`` pixels share
    it (noise after resampling or a camera's smoothing; what pixel-wise self-supervision
    cannot remove). Not clipped.
    """

    sigma: float
    blur: int = 3

    def __post_init__(self) -> None:
        _check(math.isfinite(self.sigma) and 0 <= self.sigma <= 1, f"Gaussian sigma must be in [0, 1] (got {self.sigma})")
        _check(self.blur >= 1 and self.blur % 2 == 1, f"blur must be an odd window size >= 1 (got {self.blur})")

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device) * self.sigma
        if self.blur > 1:
            shape = n.shape
            flat = n.reshape(-1, 1, *shape[-2:])
            pad = self.blur // 2
            _check(min(shape[-2:]) > pad, f"images of {shape[-2]}x{shape[-1]} pixels are too small for noise averaged "
                                          f"over {self.blur}x{self.blur} (need more than {pad} a side)")
            flat = F.avg_pool2d(F.pad(flat, (pad, pad, pad, pad), mode="reflect"), self.blur, stride=1)
            n = flat.reshape(shape)
        return x + n

    def describe(self) -> str:
        return f"Gaussian sigma={self.sigma * 255:g}/255 averaged over {self.blur}x{self.blur}"


@dataclass(frozen=True)
class PoissonNoise:
    """Shot noise: ``y = Poisson(peak * x) / peak``; lower ``peak`` is noisier."""

    peak: float

    def __post_init__(self) -> None:
        _check(math.isfinite(self.peak) and self.peak > 0, f"Poisson peak must be > 0 (got {self.peak})")

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        rate = x.clamp(0, 1) * self.peak
        return torch.poisson(rate, generator=generator) / self.peak

    def describe(self) -> str:
        return f"Poisson peak={self.peak:g}"


@dataclass(frozen=True)
class SaltPepperNoise:
    """Impulse noise: a fraction ``amount`` of pixels set to 0 or 1 (``salt`` share are 1)."""

    amount: float
    salt: float = 0.5

    def __post_init__(self) -> None:
        _check(0 <= self.amount <= 1, f"salt-and-pepper amount must be in [0, 1] (got {self.amount})")
        _check(0 <= self.salt <= 1, f"salt share must be in [0, 1] (got {self.salt})")

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(x.shape, generator=generator, device=x.device)
        v = torch.rand(x.shape, generator=generator, device=x.device)
        hit = u < self.amount
        value = (v < self.salt).to(x.dtype)
        return torch.where(hit, value, x)

    def describe(self) -> str:
        return f"salt-and-pepper amount={self.amount:g}"


@dataclass(frozen=True)
class SpeckleNoise:
    """Multiplicative noise ``y = x + sigma * x * n`` with ``n ~ N(0, 1)``."""

    sigma: float
    clip: bool = False

    def __post_init__(self) -> None:
        _check(math.isfinite(self.sigma) and 0 <= self.sigma <= 1, f"speckle sigma must be in [0, 1] (got {self.sigma})")

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        y = x + self.sigma * x * n
        return y.clamp(0, 1) if self.clip else y

    def describe(self) -> str:
        return f"speckle sigma={self.sigma * 255:g}/255"


@dataclass(frozen=True)
class ComposeNoise:
    """Apply several noise models in order (e.g. Poisson then Gaussian)."""

    models: tuple[NoiseModel, ...] = field(default_factory=tuple)

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        for model in self.models:
            x = model(x, generator=generator)
        return x

    def describe(self) -> str:
        return " + ".join(m.describe() for m in self.models)


@dataclass(frozen=True)
class MixtureNoise:
    """Each image gets one of ``models``, chosen at random with probabilities ``weights``.

    For training one network on several kinds of noise (camera noise and white Gaussian
    noise, say). ``weights`` need not sum to 1 (they are normalised); ``None``: equal.
    """

    models: tuple[NoiseModel, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _check(len(self.models) >= 1, "a noise mixture needs at least one model")
        if self.weights is not None:
            _check(len(self.weights) == len(self.models), f"noise mixture: {len(self.models)} models but {len(self.weights)} weights")
            _check(all(math.isfinite(w) and w >= 0 for w in self.weights) and sum(self.weights) > 0,
                   f"noise mixture weights must be >= 0 with a positive sum (got {list(self.weights)})")

    def apply(self, x: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(y, sigma)``: ``sigma`` [B] is each image's level: the drawn one for Gaussian noise,
        else the standard deviation of ``y - x`` (on [0, 1])."""
        w = torch.tensor(self.weights if self.weights is not None else [1.0] * len(self.models), dtype=torch.float64)
        choice = torch.multinomial(w, x.shape[0], replacement=True, generator=_cpu(generator)).to(x.device)
        y, sigma = x.clone(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for k, model in enumerate(self.models):
            idx = torch.nonzero(choice == k).flatten()
            if idx.numel() == 0:
                continue
            part = x.index_select(0, idx)
            y_k, s_k = noisy_batch(model, part, generator)
            if s_k is None:
                s_k = (y_k - part).flatten(1).std(dim=1)
            y[idx], sigma[idx] = y_k, s_k.to(x.dtype)
        return y, sigma

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(x, generator=generator)[0]

    def describe(self) -> str:
        w = self.weights if self.weights is not None else [1.0] * len(self.models)
        total = sum(w)
        return "mixture of " + ", ".join(f"{m.describe()} ({100 * p / total:.0f}%)" for m, p in zip(self.models, w))


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    """``generator`` for CPU-side draws (the choice of component): itself when it is a CPU one."""
    if generator is None or generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))


def noisy_batch(noise: NoiseModel, x: Tensor, g: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
    """``(y, sigma)`` for clean ``x`` [B, C, H, W], drawing from ``g``.

    ``sigma`` is the per-image level ``[B]`` for :class:`GaussianNoise` and
    :class:`MixtureNoise` (what a model that reads the level is told), else ``None``.
    """
    if isinstance(noise, (GaussianNoise, MixtureNoise)):
        return noise.apply(x, generator=g)
    return noise(x, generator=g), None
