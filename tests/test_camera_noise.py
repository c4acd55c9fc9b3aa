"""Camera noise (unprocessed raw, shot + read noise, demosaicing, JPEG): its properties, not just its shape."""

from __future__ import annotations

import pytest
import torch

from aedenoise.errors import ConfigError
from aedenoise.noise import CameraNoise
from aedenoise.noise.camera import _demosaic, _linear_to_srgb, _mosaic, _srgb_to_linear


def _flat(level: float, h: int = 64, w: int = 64) -> torch.Tensor:
    return torch.full((1, 3, h, w), level)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_the_tone_curve_and_gamma_invert_exactly() -> None:
    x = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    assert torch.allclose(_linear_to_srgb(_srgb_to_linear(x)), x, atol=1e-9)


def test_mosaic_then_demosaic_keeps_a_smooth_image() -> None:
    ramp = torch.linspace(0.2, 0.6, 32, dtype=torch.float64)
    cam = torch.stack([ramp.expand(32, 32), 0.5 * ramp.expand(32, 32).T + 0.1, torch.full((32, 32), 0.3, dtype=torch.float64)])
    back = _demosaic(_mosaic(cam))
    assert float((back - cam)[:, 1:-1, 1:-1].abs().max()) < 1e-9  # bilinear is exact on linear ramps inside


def test_noise_grows_with_brightness_in_the_raw_domain() -> None:
    noise = CameraNoise(shot_min=0.01, shot_max=0.01, jpeg=None)
    spread = []
    for level in (0.15, 0.4, 0.75):
        x = _flat(level)
        y = noise(x, generator=torch.Generator().manual_seed(0))
        spread.append(float(_srgb_to_linear(y.double()).var()))
    assert spread[0] < spread[1] < spread[2]


def test_demosaicing_correlates_neighbours_and_channels() -> None:
    x = _flat(0.5, 96, 96)
    y = CameraNoise(shot_min=0.01, shot_max=0.01, jpeg=None)(x, generator=torch.Generator().manual_seed(1))
    r = (y - x)[0]
    assert _corr(r[:, :, :-1], r[:, :, 1:]) > 0.2  # left-right neighbours
    assert _corr(r[:, :-1, :], r[:, 1:, :]) > 0.2  # up-down neighbours
    assert abs(_corr(r[0], r[1])) > 0.2 and abs(_corr(r[1], r[2])) > 0.2  # across channels (the colour matrix)
    assert abs(_corr(torch.randn(96, 95), torch.randn(96, 95))) < 0.1  # the test can tell: white noise does not


def test_same_seed_same_noise_and_jpeg_levels() -> None:
    x = torch.rand(2, 3, 33, 47, generator=torch.Generator().manual_seed(2))
    noise = CameraNoise()
    a = noise(x, generator=torch.Generator().manual_seed(5))
    b = noise(x, generator=torch.Generator().manual_seed(5))
    c = noise(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal((a * 255).round() / 255, a.double().float())  # JPEG output: 8-bit levels
    assert float((a - x).abs().mean()) > 0.005  # it does add noise


def test_gray_images_and_bad_settings() -> None:
    x = torch.rand(1, 1, 30, 31, generator=torch.Generator().manual_seed(3))
    y = CameraNoise(jpeg=(90, 90))(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and "camera" in CameraNoise().describe()
    with pytest.raises(ConfigError):
        CameraNoise(shot_min=0.1, shot_max=0.01)
    with pytest.raises(ConfigError):
        CameraNoise(jpeg=(0, 50))
    with pytest.raises(ValueError):
        CameraNoise()(torch.rand(2, 2, 8, 8))


def test_a_training_config_trains_on_camera_noise(tmp_path) -> None:
    from aedenoise.config import validate_config
    from aedenoise.data.sources import TensorData
    from aedenoise.training.loop import train

    g = torch.Generator().manual_seed(0)
    data = TensorData(train_x=torch.rand(16, 3, 32, 32, generator=g), val_x=torch.rand(4, 3, 32, 32, generator=g))
    config = validate_config({"model": {"name": "dncnn", "args": {"depth": 3, "width": 8}}, "epochs": 1, "batch_size": 8,
                              "threads": 1, "noise": {"kind": "camera", "shot_min": 0.001, "shot_max": 0.01,
                                                      "jpeg": [80, 90]}})
    assert isinstance(config.noise.build(), CameraNoise)
    result = train(config, tmp_path / "run", progress=False, data=data)
    assert result.history[0]["val_psnr"] > 0
    with pytest.raises(ConfigError):
        validate_config({"noise": {"kind": "camera", "jpeg": [0, 5]}}).noise.build()


def test_without_noise_the_pipeline_gives_back_the_image() -> None:
    """Unprocess, develop: only the noise's own change is added, so the clean target stays x."""
    from aedenoise.metrics import psnr

    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(4)) * 0.8 + 0.1
    y = CameraNoise(shot_min=1e-9, shot_max=1e-9, jpeg=None)(x, generator=torch.Generator().manual_seed(0))
    assert float(psnr(y, x)[0]) > 60
    low = CameraNoise(shot_min=1e-4, shot_max=1e-4, jpeg=None)(x, generator=torch.Generator().manual_seed(0))
    high = CameraNoise(shot_min=1e-2, shot_max=1e-2, jpeg=None)(x, generator=torch.Generator().manual_seed(0))
    assert float(psnr(high, x)[0]) + 10 < float(psnr(low, x)[0])  # the shot level sets the strength
