"""What trains the real-photo models: the blind U-Net, starting it from a noise-map one,
noise mixtures, in-camera smoothing of camera noise, colour jitter and rescaled copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from aedenoise.config import validate_config
from aedenoise.data.images import jitter_colors, patch_training_data, resized
from aedenoise.errors import ConfigError
from aedenoise.models import create_model, save_checkpoint
from aedenoise.noise import CameraNoise, GaussianNoise, MixtureNoise, noisy_batch
from aedenoise.training.loop import init_from_checkpoint

ARGS = {"in_channels": 3, "widths": (8, 16), "blocks": 1}


def test_a_blind_unet_reads_no_noise_level() -> None:
    net = create_model("unet", **ARGS, noise_map=False).eval()
    assert net.uses_sigma is False
    assert net.head.in_channels == 3
    torch.nn.init.normal_(net.tail.weight, std=0.1)  # not the identity it starts as
    y = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(y)
        assert torch.equal(out, net(y, 0.3))  # sigma, if given, changes nothing
    assert not torch.allclose(out, y)
    assert create_model("unet", **ARGS).uses_sigma is True


def test_a_blind_unet_starts_from_the_noise_map_one_told_sigma_zero(tmp_path: Path) -> None:
    source = create_model("unet", **ARGS).eval()
    for p in source.parameters():
        torch.nn.init.normal_(p, std=0.1)
    path = tmp_path / "map.safetensors"
    save_checkpoint(path, source)
    blind = create_model("unet", **ARGS, noise_map=False).eval()
    init_from_checkpoint(blind, path)
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(blind(y), source(y, 0.0))
    # Any other difference in architecture is still refused, and so is the opposite direction.
    with pytest.raises(ConfigError, match="does not match"):
        init_from_checkpoint(create_model("unet", in_channels=3, widths=(8, 16), blocks=2, noise_map=False), path)
    save_checkpoint(tmp_path / "blind.safetensors", blind)
    with pytest.raises(ConfigError, match="does not match"):
        init_from_checkpoint(create_model("unet", **ARGS), tmp_path / "blind.safetensors")


def test_init_weights_takes_the_name_of_shipped_weights() -> None:
    net = create_model("unet", in_channels=3, widths=(16, 32, 64, 128), blocks=2, noise_map=False)
    init_from_checkpoint(net, "color-blind")
    assert float(net.tail.weight.detach().abs().sum()) > 0  # not the fresh identity init


def test_a_mixture_gives_each_image_one_model_and_reports_its_level() -> None:
    x = torch.full((64, 3, 16, 16), 0.5)
    mix = MixtureNoise((GaussianNoise(0.1), CameraNoise(0.005, 0.005, jpeg=None)), weights=(1.0, 1.0))
    y, sigma = noisy_batch(mix, x, torch.Generator().manual_seed(0))
    y2, sigma2 = noisy_batch(mix, x, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2) and torch.equal(sigma, sigma2)  # seeded
    gaussian = torch.isclose(sigma, torch.tensor(0.1))
    assert 10 < int(gaussian.sum()) < 54  # both models used, about half each
    measured = (y - x).flatten(1).std(dim=1)
    torch.testing.assert_close(sigma[~gaussian], measured[~gaussian])  # camera: the level is measured
    # Camera noise is correlated across channels (demosaicing and the colour matrix), Gaussian noise is not.
    n = y - x
    corr = [float(torch.corrcoef(torch.stack([n[i, 0].flatten(), n[i, 1].flatten()]))[0, 1]) for i in range(64)]
    assert abs(np.mean([c for c, gs in zip(corr, gaussian) if not gs])) > 0.2 > abs(np.mean([c for c, gs in zip(corr, gaussian) if gs]))
    only_first = MixtureNoise((GaussianNoise(0.05), CameraNoise()), weights=(1.0, 0.0))
    assert torch.allclose(noisy_batch(only_first, x, torch.Generator().manual_seed(1))[1], torch.tensor(0.05))
    with pytest.raises(ConfigError):
        MixtureNoise((GaussianNoise(0.1),), weights=(1.0, 2.0))
    with pytest.raises(ConfigError):
        MixtureNoise((GaussianNoise(0.1), GaussianNoise(0.2)), weights=(0.0, 0.0))


def test_mixture_configs_are_checked() -> None:
    config = validate_config({"noise": {"kind": "mixture", "weights": [3, 1], "components": [
        {"kind": "camera", "smooth_max": 1.5}, {"kind": "gaussian", "sigma": 0, "sigma_max": 0.2}]}})
    noise = config.noise.build()
    assert isinstance(noise, MixtureNoise) and noise.models[0].smooth_max == 1.5
    assert "75%" in noise.describe()
    for bad in ({"kind": "mixture"}, {"kind": "gaussian", "components": [{"kind": "gaussian"}]},
                {"kind": "mixture", "weights": [1], "components": [{"kind": "gaussian"}, {"kind": "camera"}]},
                {"kind": "mixture", "components": [{"kind": "camera", "shot_mx": 0.1}]}):
        with pytest.raises(ConfigError):
            validate_config({"noise": bad})


def test_in_camera_smoothing_widens_and_weakens_the_noise() -> None:
    x = torch.full((1, 3, 64, 64), 0.4)

    def stats(smooth: float) -> tuple[float, float]:
        ratios, stds = [], []
        for seed in range(6):
            n = CameraNoise(0.004, 0.004, jpeg=None, smooth_max=smooth)(x, generator=torch.Generator().manual_seed(seed)) - x
            ratios.append(float(F.avg_pool2d(n, 4).std() / n.std()))
            stds.append(float(n.std()))
        return float(np.mean(ratios)), float(np.mean(stds))

    (r0, s0), (r3, s3) = stats(0.0), stats(3.0)
    assert r3 > r0 + 0.1  # blotchier: more of the noise survives 4x4 averaging
    assert s3 < s0
    with pytest.raises(ConfigError):
        CameraNoise(smooth_max=-1)


def test_color_jitter_permutes_channels_and_scales_saturation() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, 8, 8, generator=g) * 0.5 + 0.25
    x[:, :, :2] = x[:, :1, :2]  # two gray rows in every patch
    out = jitter_colors(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, jitter_colors(x, generator=torch.Generator().manual_seed(3)))
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out[:, :, :2], x[:, :, :2])  # gray stays gray, whatever the draw
    torch.testing.assert_close(out.mean(1), x.mean(1))  # each pixel's gray level is kept (no clamping here)
    # The red plane of the output comes from each of the three input planes for some patches.
    spread = (out - out.mean(1, keepdim=True))[:, 0, 2:]
    sources = {int(torch.argmax(torch.stack([F.cosine_similarity(spread[i].flatten(), (x[i, c, 2:] - x[i, :, 2:].mean(0)).flatten(), dim=0)
                                             for c in range(3)]))) for i in range(200)}
    assert sources == {0, 1, 2}
    saturation = (out - out.mean(1, keepdim=True)).flatten(1).norm(dim=1) / (x - x.mean(1, keepdim=True)).flatten(1).norm(dim=1)
    assert 0.5 - 1e-4 <= float(saturation.min()) < 0.7 and 1.4 < float(saturation.max()) <= 1.6 + 1e-4


def test_rescaled_copies_join_the_training_images(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(5):
        Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    base = {"kind": "image_folder", "train_dirs": [str(folder)], "channels": 3, "patch_size": 32, "val_count": 4}
    plain = patch_training_data(validate_config({"data": base}).data, seed=0)
    more = patch_training_data(validate_config({"data": {**base, "scales": [1.0, 0.5, 0.25]}}).data, seed=0)
    n = plain.store.heights.numel()
    assert n == 4  # one of 5 held out
    assert more.store.heights.tolist() == [80] * n + [40] * n  # 20x25 copies are below the patch size: left out
    assert more.store.widths.tolist() == [100] * n + [50] * n
    torch.testing.assert_close(more.val_x, plain.val_x)  # validation stays at full size
    im = torch.full((3, 10, 10), 200, dtype=torch.uint8)
    assert torch.equal(resized([im], 0.5)[0], torch.full((3, 5, 5), 200, dtype=torch.uint8))
    for bad in ({"scales": [1.5]}, {"scales": []}, {"color_jitter": True, "channels": 1}):
        with pytest.raises(ConfigError):
            validate_config({"data": {**base, **bad}})


def test_correlated_gaussian_noise_is_averaged_white_noise() -> None:
    from aedenoise.noise import CorrelatedGaussianNoise

    x = torch.full((2, 3, 96, 96), 0.5)
    noise = validate_config({"noise": {"kind": "correlated_gaussian", "sigma": 0.09, "blur": 3}}).noise.build()
    assert isinstance(noise, CorrelatedGaussianNoise)
    n = noise(x, generator=torch.Generator().manual_seed(0)) - x
    assert torch.equal(n, noise(x, generator=torch.Generator().manual_seed(0)) - x)  # seeded
    assert abs(float(n.std()) - 0.03) < 0.002  # sigma / blur
    right = float(torch.corrcoef(torch.stack([n[..., :-1].flatten(), n[..., 1:].flatten()]))[0, 1])
    assert abs(right - 2 / 3) < 0.05  # neighbours share 6 of their 9 samples
    channels = float(torch.corrcoef(torch.stack([n[:, 0].flatten(), n[:, 1].flatten()]))[0, 1])
    assert abs(channels) < 0.05  # channels independent
    white = CorrelatedGaussianNoise(0.09, blur=1)(x, generator=torch.Generator().manual_seed(0)) - x
    assert abs(float(white.std()) - 0.09) < 0.003
    with pytest.raises(ConfigError):
        CorrelatedGaussianNoise(0.1, blur=2)


def test_correlated_gaussian_noise_on_an_image_smaller_than_its_window_is_a_clear_error() -> None:
    from aedenoise.errors import ConfigError
    from aedenoise.noise import CorrelatedGaussianNoise

    with pytest.raises(ConfigError, match="too small for noise averaged over 5x5"):
        CorrelatedGaussianNoise(0.1, blur=5)(torch.rand(1, 1, 1, 5))
    assert CorrelatedGaussianNoise(0.1, blur=5)(torch.rand(1, 1, 3, 5)).shape == (1, 1, 3, 5)
