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


def noisy_batch(noise: NoiseModel, x: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """``(y, sigma)`` for clean ``x`` [B, C, H, W], drawing from ``g``.

    ``sigma`` is the per-image level ``[B]`` for :class:`GaussianNoise` (what a model that
    reads the level is told), else ``None``.
    """
    if isinstance(noise, GaussianNoise):
        return noise.apply(x, generator=g)
    return noise(x, generator=g), None
