"""Noise models: the statistics they promise, seeding, composition and validation."""

from __future__ import annotations

import math

import pytest
import torch

from aedenoise.errors import ConfigError
from aedenoise.noise import ComposeNoise, GaussianNoise, PoissonNoise, SaltPepperNoise, SpeckleNoise


def levels(values: list[float], size: int = 256) -> torch.Tensor:
    """``[len(values), 1, size, size]``: image i constant at ``values[i]``."""
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()


def test_gaussian_mean_and_std(gen: torch.Generator) -> None:
    x = torch.rand(4, 3, 128, 128, generator=gen)
    sigma = 25 / 255
    y = GaussianNoise(sigma)(x, generator=gen)
    n = (y - x).double()
    count = n.numel()
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert abs(n.mean().item()) < 5 * sigma / math.sqrt(count)
    assert n.std().item() == pytest.approx(sigma, rel=0.01)
    assert y.min() < 0 and y.max() > 1  # the benchmark protocol does not clip
    # Independent of the signal: noise uncorrelated with x.
    assert abs(torch.corrcoef(torch.stack([n.flatten(), x.double().flatten()]))[0, 1].item()) < 0.01


def test_gaussian_clip_is_clamped_unclipped(gen: torch.Generator) -> None:
    x = torch.rand(2, 1, 64, 64, generator=gen)
    seed = 7
    y = GaussianNoise(0.3)(x, generator=torch.Generator().manual_seed(seed))
    y_clip = GaussianNoise(0.3, clip=True)(x, generator=torch.Generator().manual_seed(seed))
    assert y_clip.min() >= 0 and y_clip.max() <= 1
    assert torch.equal(y_clip, y.clamp(0, 1))
    assert (y_clip == 0).any() and (y_clip == 1).any()


def test_gaussian_sigma_max_per_image_uniform(gen: torch.Generator) -> None:
    low, high = 5 / 255, 50 / 255
    x = torch.full((2000, 1, 16, 16), 0.5)
    y, sigma = GaussianNoise(low, sigma_max=high).apply(x, generator=gen)
    assert sigma.shape == (2000,) and sigma.dtype == torch.float32
    assert sigma.min() >= low and sigma.max() <= high
    # Uniform on [low, high]: mean, spread and coverage of both ends.
    assert sigma.mean().item() == pytest.approx((low + high) / 2, abs=0.005)
    assert sigma.std().item() == pytest.approx((high - low) / math.sqrt(12), rel=0.05)
    assert sigma.min() < low + 0.01 * (high - low) and sigma.max() > high - 0.01 * (high - low)
    # Each image's noise has the level reported for it.
    per_image = (y - x).flatten(1).std(dim=1)
    assert torch.corrcoef(torch.stack([per_image, sigma]))[0, 1] > 0.99
    assert ((per_image - sigma).abs() / sigma).median() < 0.05
    # Without sigma_max every image gets sigma.
    assert torch.equal(GaussianNoise(low).apply(x[:3], generator=gen)[1], torch.full((3,), low))


def test_poisson_mean_and_variance(gen: torch.Generator) -> None:
    peak = 30.0
    values = [0.05, 0.2, 0.5, 0.9]
    x = levels(values)
    y = PoissonNoise(peak)(x, generator=gen)
    assert y.dtype == torch.float32 and y.min() >= 0
    assert torch.equal(y * peak, (y * peak).round())  # counts / peak
    for i, v in enumerate(values):
        yi = y[i].double()
        assert yi.mean().item() == pytest.approx(v, rel=0.02)
        assert yi.var().item() == pytest.approx(v / peak, rel=0.05)
    # Lower peak is noisier.
    y_low = PoissonNoise(5.0)(x, generator=gen)
    assert (y_low - x).pow(2).mean() > 4 * (y - x).pow(2).mean()


def test_salt_pepper_fraction_and_values(gen: torch.Generator) -> None:
    x = torch.full((4, 3, 128, 128), 0.5)
    amount = 0.1
    y = SaltPepperNoise(amount)(x, generator=gen)
    changed = y != x
    assert changed.float().mean().item() == pytest.approx(amount, abs=0.003)
    assert set(y[changed].unique().tolist()) == {0.0, 1.0}
    assert (y[changed] == 1).float().mean().item() == pytest.approx(0.5, abs=0.02)
    all_salt = SaltPepperNoise(0.2, salt=1.0)(x, generator=gen)
    assert set(all_salt[all_salt != x].unique().tolist()) == {1.0}
    assert torch.equal(SaltPepperNoise(0.0)(x, generator=gen), x)


def test_speckle_variance_scales_with_signal(gen: torch.Generator) -> None:
    sigma = 0.2
    values = [0.0, 0.25, 0.5, 1.0]
    x = levels(values)
    y = SpeckleNoise(sigma)(x, generator=gen)
    for i, v in enumerate(values):
        d = (y[i] - x[i]).double()
        assert abs(d.mean().item()) < 5 * sigma * v / 256 + 1e-12
        assert d.std().item() == pytest.approx(sigma * v, rel=0.02, abs=1e-12)
    assert torch.equal(y[0], x[0])  # black stays black
    y_clip = SpeckleNoise(0.9, clip=True)(x, generator=gen)
    assert y_clip.min() >= 0 and y_clip.max() <= 1


def test_compose_applies_in_order() -> None:
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    poisson, gauss = PoissonNoise(20.0), GaussianNoise(0.05)
    composed = ComposeNoise((poisson, gauss))(x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    by_hand = gauss(poisson(x, generator=g), generator=g)
    assert torch.equal(composed, by_hand)
    # Order matters: impulses last leave exact 0/1 pixels, impulses first get blurred by Gaussian noise.
    sp = SaltPepperNoise(0.2)
    sp_last = ComposeNoise((gauss, sp))(x, generator=torch.Generator().manual_seed(3))
    sp_first = ComposeNoise((sp, gauss))(x, generator=torch.Generator().manual_seed(3))
    assert ((sp_last == 0) | (sp_last == 1)).float().mean() > 0.15
    assert ((sp_first == 0) | (sp_first == 1)).float().mean() < 0.01
    assert ComposeNoise((poisson, gauss)).describe() == "Poisson peak=20 + Gaussian sigma=12.75/255"
    assert torch.equal(ComposeNoise(())(x), x)


MODELS = [
    GaussianNoise(0.1),
    GaussianNoise(0.05, sigma_max=0.2, clip=True),
    PoissonNoise(10.0),
    SaltPepperNoise(0.05),
    SpeckleNoise(0.1),
    ComposeNoise((PoissonNoise(30.0), GaussianNoise(0.02))),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.describe())
def test_seeding(model) -> None:
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    x_before = x.clone()
    a = model(x, generator=torch.Generator().manual_seed(11))
    b = model(x, generator=torch.Generator().manual_seed(11))
    c = model(x, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, x_before)  # the input is never modified
    assert a.dtype == torch.float32 and a.shape == x.shape


def test_describe_uses_the_0_255_scale() -> None:
    assert GaussianNoise(25 / 255).describe() == "Gaussian sigma=25/255"
    assert GaussianNoise(5 / 255, sigma_max=50 / 255, clip=True).describe() == "Gaussian sigma=U[5, 50]/255, clipped"


@pytest.mark.parametrize(
    "build",
    [
        lambda: GaussianNoise(25),  # the 0-255 scale by mistake
        lambda: GaussianNoise(-0.1),
        lambda: GaussianNoise(float("nan")),
        lambda: GaussianNoise(0.2, sigma_max=0.1),
        lambda: GaussianNoise(0.2, sigma_max=1.5),
        lambda: PoissonNoise(0),
        lambda: PoissonNoise(-3),
        lambda: PoissonNoise(float("inf")),
        lambda: SaltPepperNoise(1.5),
        lambda: SaltPepperNoise(float("nan")),
        lambda: SaltPepperNoise(0.1, salt=-0.5),
        lambda: SpeckleNoise(-0.2),
        lambda: SpeckleNoise(float("inf")),
    ],
)
def test_invalid_settings_raise_config_error(build) -> None:
    with pytest.raises(ConfigError):
        build()


def test_sigma_message_points_at_the_scale() -> None:
    with pytest.raises(ConfigError, match="divide by 255"):
        GaussianNoise(25)
