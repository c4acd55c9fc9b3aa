"""Self-supervised objectives (aedenoise.training.selfsupervised), noisy data (aedenoise.data.noisy), their configs,
and self-supervised training runs from a configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from aedenoise.config import DataConfig, ObjectiveConfig, validate_config
from aedenoise.data.noisy import fixed_noise_data, fixed_noisy_copy, noisy_patch_data
from aedenoise.denoising.selection import load_denoiser
from aedenoise.errors import ConfigError
from aedenoise.metrics import psnr
from aedenoise.models import create_model, read_metadata
from aedenoise.noise import GaussianNoise, noisy_batch
from aedenoise.training.inputs import step_inputs
from aedenoise.training.loop import train
from aedenoise.training.selfsupervised import (
    Neighbor2Neighbor,
    Noise2Void,
    Recorrupted2Recorrupted,
    check_patch_size,
    level_source,
    neighbour_pairs,
    objective_score,
    subsample,
)

SIGMA = 25 / 255


def blobs(n: int, size: int = 64, seed: int = 0) -> Tensor:
    """``[n, 1, size, size]`` smooth images in [0.2, 0.8]: three Gaussian bumps each."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = torch.rand(n, 3, 2, generator=g) * size
    w = 3 + 6 * torch.rand(n, 3, generator=g)
    img = sum(torch.exp(-((yy - c[:, k, 0, None, None]) ** 2 + (xx - c[:, k, 1, None, None]) ** 2) / (2 * w[:, k, None, None] ** 2))
              for k in range(3))
    return (0.2 + 0.6 * img.clamp(0, 1))[:, None]


class _Output(nn.Module):
    """A stand-in model: records its inputs and returns a fixed output tensor (for gradients w.r.t. the output)."""

    def __init__(self, out: Tensor) -> None:
        super().__init__()
        self.out, self.inputs, self.sigmas = out, [], []

    def forward(self, y: Tensor, sigma: Tensor | None = None) -> Tensor:
        self.inputs.append(y)
        self.sigmas.append(sigma)
        return self.out


# -- Neighbor2Neighbor ---------------------------------------------------------------------------------------------


def test_subsampler_picks_two_adjacent_pixels_of_each_cell_the_same_in_every_channel() -> None:
    b, c, h, w = 2, 3, 8, 10
    y = torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w)  # value -> (image, channel, row, col)
    first, second = neighbour_pairs(y, torch.Generator().manual_seed(0))
    g1, g2 = subsample(y, first), subsample(y, second)
    assert g1.shape == g2.shape == (b, c, h // 2, w // 2)
    for g in (g1, g2):
        v = g.long()
        img, ch, row, col = v // (c * h * w), v // (h * w) % c, v // w % h, v % w
        assert torch.equal(img, torch.arange(b).reshape(-1, 1, 1, 1).expand_as(v))
        assert torch.equal(ch, torch.arange(c).reshape(1, -1, 1, 1).expand_as(v))
        assert torch.equal(row // 2, torch.arange(h // 2).reshape(1, 1, -1, 1).expand_as(v))  # the cell's pixel
        assert torch.equal(col // 2, torch.arange(w // 2).reshape(1, 1, 1, -1).expand_as(v))
    r1, c1, r2, c2 = g1.long() // w % h, g1.long() % w, g2.long() // w % h, g2.long() % w
    assert torch.equal((r1 - r2).abs() + (c1 - c2).abs(), torch.ones_like(r1))  # different, edge-adjacent
    assert torch.equal(r1, r1[:, :1].expand_as(r1)) and torch.equal(c2, c2[:, :1].expand_as(c2))  # same in every channel
    assert len({(int(a), int(b_)) for a, b_ in zip(first.flatten(), second.flatten())}) == 8  # all 8 ordered pairs occur


def test_subsampler_is_seeded() -> None:
    y = torch.rand(2, 1, 16, 16)
    a = neighbour_pairs(y, torch.Generator().manual_seed(5))
    assert torch.equal(a, neighbour_pairs(y, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, neighbour_pairs(y, torch.Generator().manual_seed(6)))


def test_n2n_loss_terms_and_validation_loss() -> None:
    y = torch.rand(2, 1, 16, 16)
    identity = lambda t, s: t  # noqa: E731
    first, second = neighbour_pairs(y, torch.Generator().manual_seed(0))
    expected = (subsample(y, first) - subsample(y, second)).square().mean()
    n2n = Neighbor2Neighbor(gamma=2.0)
    # For the identity, f(g1 y) - g2 y equals g1 f(y) - g2 f(y): the regulariser is zero.
    assert torch.allclose(n2n.loss(identity, y, None, torch.Generator().manual_seed(0)), expected)
    halve = lambda t, s: t / 2  # noqa: E731  f(g1) - g2 = g1/2 - g2; the gap g1/2 - g2/2; their difference -g2/2
    loss = n2n.loss(halve, y, None, torch.Generator().manual_seed(0))
    g1, g2 = subsample(y, first), subsample(y, second)
    assert torch.allclose(loss, (g1 / 2 - g2).square().mean() + 2 * (g2 / 2).square().mean())
    assert torch.allclose(n2n.validation_loss(halve, y, None, torch.Generator().manual_seed(0)), (g1 / 2 - g2).square().mean())


def test_n2n_regulariser_has_no_gradient_through_f_of_y() -> None:
    model = create_model("dncnn", depth=3, width=4)
    y = torch.rand(2, 1, 16, 16)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    Neighbor2Neighbor(gamma=2.0).loss(model, y, None, torch.Generator().manual_seed(0)).backward()
    assert sorted(calls) == [False, True]  # f(y) without, f(g1(y)) with a gradient


def test_patch_size_must_fit_half_size_images() -> None:
    unet = create_model("unet", in_channels=1)  # size_multiple 8
    n2n, n2v = ObjectiveConfig(kind="neighbor2neighbor"), ObjectiveConfig(kind="n2v")
    check_patch_size(n2n, unet, 64, what="data.patch_size")
    check_patch_size(n2v, unet, 24, what="data.patch_size")
    with pytest.raises(ConfigError, match=r"data.patch_size = 24 must be a multiple of 16 .*half-size.* use 16 or 32"):
        check_patch_size(n2n, unet, 24, what="data.patch_size")


# -- Noise2Void -----------------------------------------------------------------------------------------------------


def _neighbours(y: Tensor) -> Tensor:
    """``[B, C, 24, H, W]``: each pixel's 5x5 window without the centre, reflected at the border,
    the opposite neighbour where a reflection lands on the centre (written out pixel by pixel)."""
    b, c, h, w = y.shape

    def reflect(i: int, n: int) -> int:
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i

    out = torch.empty(b, c, 24, h, w)
    offsets = [(dr, dc) for dr in range(-2, 3) for dc in range(-2, 3) if (dr, dc) != (0, 0)]
    for r in range(h):
        for col in range(w):
            for k, (dr, dc) in enumerate(offsets):
                rr, cc = reflect(r + dr, h), reflect(col + dc, w)
                if (rr, cc) == (r, col):
                    rr, cc = reflect(r - dr, h), reflect(col - dc, w)
                out[:, :, k, r, col] = y[:, :, rr, cc]
    return out


@pytest.mark.parametrize("n2v2", [False, True])
def test_n2v_never_shows_a_masked_pixel_its_own_value_even_at_the_border(n2v2: bool) -> None:
    y = torch.randperm(3 * 8 * 8, generator=torch.Generator().manual_seed(2)).float().reshape(1, 3, 8, 8) / 192
    for seed in range(5):
        y_in, mask = Noise2Void(mask_fraction=1.0, n2v2=n2v2).mask(y, torch.Generator().manual_seed(seed))
        assert bool(mask.all()) and not bool((y_in == y).any())


@pytest.mark.parametrize("n2v2", [False, True])
def test_n2v_masks_a_fraction_and_replaces_from_the_neighbourhood_without_the_centre(n2v2: bool) -> None:
    y = torch.randperm(2 * 3 * 16 * 16, generator=torch.Generator().manual_seed(1)).float().reshape(2, 3, 16, 16) / 1536
    y_in, mask = Noise2Void(mask_fraction=0.05, n2v2=n2v2).mask(y, torch.Generator().manual_seed(0))
    assert mask.shape == (2, 1, 16, 16) and mask.sum(dim=(1, 2, 3)).tolist() == [13, 13]  # round(0.05 * 256)
    m = mask.expand_as(y)
    assert torch.equal(y_in[~m], y[~m])  # unmasked pixels untouched
    assert not (y_in[m] == y[m]).any()  # masked ones never keep their own value (the centre is excluded)
    around = _neighbours(y)
    if n2v2:
        assert torch.equal(y_in[m], around.median(dim=2).values[m])
    else:
        assert ((around == y_in[:, :, None]).any(dim=2))[m].all()  # one of the 24 neighbours


def test_n2v_loss_depends_on_masked_pixels_only_and_is_seeded() -> None:
    y = torch.rand(2, 1, 16, 16)
    out = torch.rand(2, 1, 16, 16, requires_grad=True)
    model = _Output(out)
    n2v = Noise2Void(mask_fraction=0.05, n2v2=False)
    n2v.loss(model, y, None, torch.Generator().manual_seed(3)).backward()
    y_in, mask = n2v.mask(y, torch.Generator().manual_seed(3))
    assert torch.equal(model.inputs[0], y_in)  # the model sees the masked input
    assert torch.equal(out.grad != 0, mask)  # gradient exactly on the masked pixels
    _, other = n2v.mask(y, torch.Generator().manual_seed(4))
    assert not torch.equal(mask, other)


# -- Recorrupted-to-Recorrupted -------------------------------------------------------------------------------------


def test_r2r_recorrupted_pair_has_independent_noise_of_the_right_levels() -> None:
    sigma, alpha = 0.1, 0.5
    g = torch.Generator().manual_seed(0)
    y = 0.5 + sigma * torch.randn(1, 1, 256, 256, generator=g)  # a large constant image with its noise
    r2r = Recorrupted2Recorrupted(alpha=alpha)
    y_hat, y_bar = r2r.recorrupt(y, torch.tensor([sigma]), g)
    a, b = (y_hat - 0.5).flatten().double(), (y_bar - 0.5).flatten().double()
    var = sigma**2
    assert abs(float(a.var()) / (var * (1 + alpha**2)) - 1) < 0.03
    assert abs(float(b.var()) / (var * (1 + 1 / alpha**2)) - 1) < 0.03
    assert abs(float(((a - a.mean()) * (b - b.mean())).mean())) < 0.05 * var  # uncorrelated: independent (Gaussian)


def test_r2r_tells_the_model_the_recorrupted_level() -> None:
    model = _Output(torch.zeros(2, 1, 8, 8))
    Recorrupted2Recorrupted(alpha=0.5).loss(model, torch.rand(2, 1, 8, 8), torch.tensor([0.1, 0.2]), torch.Generator())
    assert torch.allclose(model.sigmas[0], torch.tensor([0.1, 0.2]) * (1.25 ** 0.5))


def test_level_source() -> None:
    blind, reads = create_model("dncnn", depth=3, width=4), create_model("unet", in_channels=1, widths=(4, 8), blocks=1)
    assert level_source(ObjectiveConfig(), reads) == "drawn"
    assert level_source(ObjectiveConfig(kind="neighbor2neighbor"), blind) == "none"
    assert level_source(ObjectiveConfig(kind="neighbor2neighbor"), reads) == "estimated"
    assert level_source(ObjectiveConfig(kind="r2r"), blind) == "estimated"
    assert level_source(ObjectiveConfig(kind="r2r", sigma=0.1), blind) == "given"


def test_objective_score_repeats() -> None:
    model, y = create_model("dncnn", depth=3, width=4), torch.rand(10, 1, 16, 16)
    n2v = Noise2Void(mask_fraction=0.05, n2v2=True)
    a = objective_score(n2v, model, y, None, seed=1, batch_size=4)
    assert a == objective_score(n2v, model, y, None, seed=1, batch_size=4) and a != objective_score(n2v, model, y, None, seed=2, batch_size=4)


# -- configuration --------------------------------------------------------------------------------------------------


def test_objective_settings_of_another_kind_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"objective.gamma applies to kind = 'neighbor2neighbor' only"):
        validate_config({"objective": {"kind": "n2v", "gamma": 1.0}})
    with pytest.raises(ConfigError, match=r"objective.sigma applies to the self-supervised kinds only"):
        validate_config({"objective": {"sigma": 0.1}})
    with pytest.raises(ConfigError, match="objective.kind"):
        validate_config({"objective": {"kind": "noise2noise"}})
    config = validate_config({"objective": {"kind": "r2r", "alpha": 1.0}})
    assert validate_config(config.to_json_dict()) == config  # saved configurations round-trip
    assert config.objective.settings() == {"kind": "r2r", "alpha": 1.0, "sigma": None}


def test_noisy_folder_needs_a_self_supervised_objective_and_no_noise() -> None:
    data = {"kind": "noisy_folder", "train_dirs": ["./x"]}
    with pytest.raises(ConfigError, match="noisy_folder' holds no clean images"):
        validate_config({"data": data})
    with pytest.raises(ConfigError, match=r"\[noise\] does not apply"):
        validate_config({"data": data, "objective": {"kind": "n2v"}, "noise": {"sigma": 0.2}})
    with pytest.raises(ConfigError, match="fixed_noise applies to kind = 'image_folder' only"):
        validate_config({"data": {**data, "fixed_noise": True}, "objective": {"kind": "n2v"}})
    with pytest.raises(ConfigError, match="scales and data.color_jitter"):
        validate_config({"data": {"kind": "image_folder", "train_dirs": ["./x"], "fixed_noise": True, "scales": [1.0, 0.5]}})
    assert validate_config({"data": data, "objective": {"kind": "n2v"}}).data.kind == "noisy_folder"


def test_self_supervised_objective_on_clean_data_adds_the_configured_noise_first() -> None:
    config = validate_config({"objective": {"kind": "neighbor2neighbor"}, "noise": {"sigma": 0.1}})
    noise = config.noise.build()
    x = torch.rand(4, 1, 16, 16)
    step = step_inputs(config, noise, "none")(x, torch.Generator().manual_seed(0))
    y, _ = noisy_batch(noise, x, torch.Generator().manual_seed(0))
    assert torch.equal(step.y, y) and step.x is None and step.sigma is None  # noisy input; the clean one never given
    assert abs(float((step.y - x).std()) - 0.1) < 0.01


# -- noisy data -----------------------------------------------------------------------------------------------------


def _png(path: Path, x: Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((x[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()).save(path)
    return path


def test_fixed_noise_is_one_copy_per_image_seeded_by_its_index(tmp_path: Path) -> None:
    for k, x in enumerate(blobs(4, size=48)):
        _png(tmp_path / "clean" / f"{k}.png", x)
    data = DataConfig(kind="image_folder", train_dirs=(str(tmp_path / "clean"),), patch_size=16, patches_per_epoch=32,
                      val_count=8, fixed_noise=True)
    noise = GaussianNoise(SIGMA)
    a, b = fixed_noise_data(data, noise, seed=0, levels="drawn"), fixed_noise_data(data, noise, seed=0, levels="drawn")
    assert torch.equal(a.val_y, b.val_y) and a.val_x is not None
    assert abs(float((a.val_y - a.val_x).std()) - SIGMA) < 0.2 * SIGMA  # the same crops of noisy and clean
    batch = next(a.epoch_batches(0, 32, seed=0, drop_last=False, device="cpu"))
    assert abs(float((batch.y - batch.x).std()) - SIGMA) < 0.1 * SIGMA
    assert torch.allclose(batch.sigma, torch.full((32,), SIGMA))
    x = torch.rand(1, 16, 16)
    assert torch.equal(fixed_noisy_copy(x, noise, 3)[0], fixed_noisy_copy(x, noise, 3)[0])  # the index alone fixes it
    assert not torch.equal(fixed_noisy_copy(x, noise, 3)[0], fixed_noisy_copy(x, noise, 4)[0])
    # Every epoch crops the same noisy copy: two crops at one place carry the same noise.
    crops = torch.tensor([[0, 5, 7, 0], [0, 5, 7, 0]])
    assert torch.equal(*a.cut(crops).y)


def test_noisy_patch_data_holds_back_cells_no_training_patch_touches() -> None:
    y = torch.randperm(128 * 192).float().reshape(1, 128, 192) / (128 * 192)  # every value distinct
    data = noisy_patch_data([("a", y)], patch_size=32, patches_per_epoch=64, val_fraction=0.1, val_count=16, seed=0,
                            estimate_levels=True)
    assert data.noisy.heights.numel() == 5 and data.val_y.shape == (16, 1, 32, 32)  # 2 x 3 cells of 64: 1 held back
    assert data.val_sigma is not None and data.val_x is None and data.names == ("a",)
    held = set(data.val_y.flatten().tolist())
    assert not held & set(data.noisy.pixels.tolist())  # held-back pixels are in no training cell


# -- training runs --------------------------------------------------------------------------------------------------


def test_n2n_on_a_few_noisy_images_beats_the_noisy_input() -> None:
    """Quality floor: Neighbor2Neighbor, 100 tiny steps on eight 64x64 noisy images, no clean image used."""
    torch.manual_seed(0)
    x = blobs(8)
    y = x + SIGMA * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    model = create_model("dncnn", depth=3, width=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    n2n, g = Neighbor2Neighbor(gamma=2.0), torch.Generator().manual_seed(0)
    for _ in range(100):
        idx = torch.randint(0, 8, (8,), generator=g)
        r, c = torch.randint(0, 33, (2,), generator=g).tolist()
        loss = n2n.loss(model, y[idx, :, r:r + 32, c:c + 32], None, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        gain = float(psnr(model(y, None).clamp(0, 1), x).mean() - psnr(y.clamp(0, 1), x).mean())
    assert gain > 5, gain


@pytest.mark.parametrize("kind", ["neighbor2neighbor", "n2v", "r2r"])
def test_tiny_noisy_folder_run_writes_a_checkpoint_denoise_loads(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(0)
    for k, x in enumerate(blobs(3)):
        _png(tmp_path / "noisy" / f"{k}.png", x + SIGMA * torch.from_numpy(rng.standard_normal(x.shape)).float())
    config = validate_config({
        "model": {"name": "unet", "args": {"widths": [4, 8], "blocks": 1}},
        "data": {"kind": "noisy_folder", "train_dirs": [str(tmp_path / "noisy")], "patch_size": 16,
                 "patches_per_epoch": 32, "val_count": 8},
        "objective": {"kind": kind}, "epochs": 2, "batch_size": 8, "threads": 1, "eval_batch_size": 8,
    })
    result = train(config, tmp_path / "run", progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2] and result.val_noisy_psnr is None
    assert all(h["val_loss"] > 0 and np.isnan(h["val_psnr"]) for h in result.history)  # no clean image: no PSNR
    ckpt = tmp_path / "run" / "model.safetensors"
    assert read_metadata(ckpt)["noise"].startswith("the images' own")
    model = load_denoiser(ckpt)
    assert model(torch.rand(1, 1, 24, 24), torch.tensor([SIGMA])).shape == (1, 1, 24, 24)


def test_fixed_noise_n2n_run_lowers_its_validation_loss_and_reports_psnr(tmp_path: Path) -> None:
    for k, x in enumerate(blobs(6)):
        _png(tmp_path / "clean" / f"{k}.png", x)
    config = validate_config({
        "model": {"name": "dncnn", "args": {"depth": 3, "width": 16}},
        "noise": {"sigma": SIGMA},
        "data": {"kind": "image_folder", "train_dirs": [str(tmp_path / "clean")], "patch_size": 32,
                 "patches_per_epoch": 256, "val_count": 16, "fixed_noise": True},
        "objective": {"kind": "neighbor2neighbor"}, "epochs": 3, "batch_size": 8, "threads": 1,
        "optim": {"lr": 3e-3},
    })
    result = train(config, tmp_path / "run", progress=False)
    losses = [h["val_loss"] for h in result.history]
    assert losses[-1] < losses[0] and result.history[-1]["val_psnr"] > result.val_noisy_psnr + 2, (result.history, result.val_noisy_psnr)


def test_patch_too_small_for_the_half_size_images_is_a_config_error(tmp_path: Path) -> None:
    config = validate_config({
        "model": {"name": "unet", "args": {"widths": [4, 8, 16], "blocks": 1}},
        "data": {"kind": "noisy_folder", "train_dirs": [str(tmp_path)], "patch_size": 20},
        "objective": {"kind": "neighbor2neighbor"}, "threads": 1,
    })
    with pytest.raises(ConfigError, match="data.patch_size = 20 must be a multiple of 8"):
        train(config, tmp_path / "run", progress=False)


def test_self_supervised_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    """Also for a channels-last model (unet), whose Adam moments are laid out like its weights on resume."""
    rng = np.random.default_rng(0)
    for k, x in enumerate(blobs(3)):
        _png(tmp_path / "noisy" / f"{k}.png", x + SIGMA * torch.from_numpy(rng.standard_normal(x.shape)).float())
    settings = {
        "model": {"name": "unet", "args": {"widths": [4, 8], "blocks": 1}},
        "data": {"kind": "noisy_folder", "train_dirs": [str(tmp_path / "noisy")], "patch_size": 16,
                 "patches_per_epoch": 32, "val_count": 8},
        "objective": {"kind": "neighbor2neighbor"}, "batch_size": 8, "threads": 1, "eval_batch_size": 8,
    }
    straight = train(validate_config({**settings, "epochs": 2}), tmp_path / "a", progress=False).model
    train(validate_config({**settings, "epochs": 1}), tmp_path / "b", progress=False)
    resumed = train(validate_config({**settings, "epochs": 2}), tmp_path / "b", resume=True, progress=False).model
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
