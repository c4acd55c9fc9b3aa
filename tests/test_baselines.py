"""Classical baselines: the Denoiser contract, quality floors, the registry, the sigma rules."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from aedenoise.classical import create_baseline, list_baselines
from aedenoise.classical import denoisers as B
from aedenoise.errors import AedenoiseError, ConfigError, DataError
from aedenoise.metrics import psnr
from aedenoise.models.base import Denoiser

FAST = ["gaussian", "median", "tv", "wavelet", "nlm"]
HAS_BM3D = importlib.util.find_spec("bm3d") is not None


def smooth_image(channels: int, size: int = 64) -> torch.Tensor:
    """A deterministic smooth test image ``[1, C, size, size]`` in [0.1, 0.9]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = 0.5 + 0.25 * torch.sin(6 * xx) * torch.cos(4 * yy) + 0.1 * (xx - yy)
    planes = [base, 0.8 * base + 0.1, 1.0 - base][:channels]
    return torch.stack(planes)[None].clamp(0.1, 0.9)


def noisy(x: torch.Tensor, sigma_255: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + sigma_255 / 255 * torch.randn(x.shape, generator=g)


def test_registry_names_and_types():
    assert list_baselines() == sorted(["bm3d", "gaussian", "median", "nlm", "tv", "wavelet"])
    for name in FAST:
        model = create_baseline(name)
        assert isinstance(model, Denoiser)
        assert model.uses_sigma and model.size_multiple == 1 and model.receptive_field > 0
        assert model.arch == {"name": name, "args": {"in_channels": 1}}


def test_unknown_name_lists_choices():
    with pytest.raises(ConfigError) as err:
        create_baseline("bm4d")
    msg = str(err.value)
    assert "bm4d" in msg and all(n in msg for n in list_baselines())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", FAST)
def test_quality_floor_shape_range_determinism(name, channels):
    x = smooth_image(channels)
    y = noisy(x, 25)
    model = create_baseline(name, in_channels=channels)
    x_hat = model(y, 25 / 255)
    assert x_hat.shape == y.shape and x_hat.dtype == torch.float32
    assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0
    gain = float(psnr(x_hat, x) - psnr(y, x))
    assert gain >= 3.0, f"{name} gained only {gain:.2f} dB"
    assert torch.equal(model(y, 25 / 255), x_hat)  # deterministic


@pytest.mark.parametrize("name", FAST)
def test_per_image_sigma_tensor_matches_single_calls(name):
    x = torch.cat([smooth_image(1), smooth_image(1).flip(-1)])
    y = torch.cat([noisy(x[:1], 15, seed=1), noisy(x[1:], 50, seed=2)])
    model = create_baseline(name)
    sigma = torch.tensor([15 / 255, 50 / 255])
    batch = model(y, sigma)
    assert torch.equal(batch[:1], model(y[:1], float(sigma[0])))
    assert torch.equal(batch[1:], model(y[1:], sigma[1:]))
    # A stronger noise level means stronger smoothing: the two outputs differ from a
    # call with the sigmas swapped.
    assert not torch.equal(batch, model(y, torch.tensor([50 / 255, 15 / 255])))


def test_sigma_zero_returns_input_and_bad_sigma_raises():
    x = smooth_image(1)
    model = create_baseline("tv")
    assert torch.equal(model(x, 0.0), x)
    with pytest.raises(ConfigError, match="needs the noise level"):
        model(x, None)
    with pytest.raises(ConfigError, match="divide by 255"):
        model(x, 25.0)
    with pytest.raises(DataError, match="2 channels"):
        model(torch.rand(1, 2, 16, 16), 0.1)


def test_parameter_rules_are_functions_of_sigma():
    # At the knots the tables are returned exactly; outside they are held constant.
    for channels in (1, 3):
        tv = create_baseline("tv")
        for k, v in zip(B.KNOTS_255, B.TV_WEIGHT_PER_SIGMA[channels]):
            assert tv.params_for(k, channels).weight_per_sigma == pytest.approx(v)
        assert tv.params_for(100.0, channels).weight_per_sigma == pytest.approx(B.TV_WEIGHT_PER_SIGMA[channels][-1])
        mid = tv.params_for(20.0, channels).weight_per_sigma
        lo, hi = sorted(B.TV_WEIGHT_PER_SIGMA[channels][:2])
        assert lo - 1e-12 <= mid <= hi + 1e-12
        # The Gaussian blur vanishes as the noise does.
        gauss = create_baseline("gaussian")
        assert gauss.params_for(0.0, channels).std_px == 0.0
        assert gauss.params_for(7.5, channels).std_px == pytest.approx(B.GAUSSIAN_STD_PX[channels][0] / 2)
        # Integer parameters come from the nearest knot.
        assert create_baseline("median").params_for(36.0, channels).size == B.MEDIAN_SIZE[channels][1]
        assert create_baseline("median").params_for(40.0, channels).size == B.MEDIAN_SIZE[channels][2]
        assert all(s % 2 == 1 for s in B.MEDIAN_SIZE[channels])


def test_missing_optional_package_gives_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bm3d" else real(name, *a))
    with pytest.raises(AedenoiseError, match=r"pip install 'aedenoise\[bm3d\]'"):
        create_baseline("bm3d")


@pytest.mark.skipif(not HAS_BM3D, reason="bm3d is not installed (pip install 'aedenoise[bm3d]')")
@pytest.mark.parametrize("channels", [1, 3])
def test_bm3d_quality_floor(channels):
    x = smooth_image(channels)
    y = noisy(x, 25)
    x_hat = create_baseline("bm3d")(y, 25 / 255)
    assert x_hat.shape == y.shape and x_hat.dtype == torch.float32
    assert 0.0 <= float(x_hat.min()) and float(x_hat.max()) <= 1.0
    assert float(psnr(x_hat, x) - psnr(y, x)) >= 3.0
