"""Pixel-shuffled sub-images (aedenoise.models.pixel_shuffle) and what reads them: the ``pixel_shuffle`` model,
``wrap``, ``resolve_sigma`` on its sub-images, and noisy patch data cut from sub-images (pure tensors)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from aedenoise.data.noisy import fit_patch_size, noisy_patch_data
from aedenoise.denoising import resolve_sigma
from aedenoise.errors import ConfigError, DataError
from aedenoise.models import create_model, load_checkpoint, read_metadata, save_checkpoint
from aedenoise.models.pixel_shuffle import PixelShuffled, shuffle_down, shuffle_up, wrap
from aedenoise.noise import estimate_sigma

UNET = {"name": "unet", "args": {"in_channels": 1, "widths": [4, 8], "blocks": 1}}


def _tiny_unet(seed: int = 0):
    """The UNET above with weights large enough that the output depends on the input and sigma."""
    model = create_model("unet", **UNET["args"])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def _shuffled(stride: int, inner: torch.nn.Module) -> PixelShuffled:
    model = PixelShuffled(stride, UNET)
    model.inner.load_state_dict(inner.state_dict())
    return model.eval()


# -- shuffle_down / shuffle_up ---------------------------------------------------------------------------


@pytest.mark.parametrize("s", [2, 3])
def test_sub_image_k_of_image_b_holds_every_s_th_pixel_from_i_j(s: int, gen: torch.Generator) -> None:
    b, c, h, w = 2, 3, 4 * s, 5 * s
    y = torch.rand(b, c, h, w, generator=gen)
    z = shuffle_down(y, s)
    assert z.shape == (b * s * s, c, h // s, w // s)
    for bi in range(b):
        for i in range(s):
            for j in range(s):
                assert torch.equal(z[bi * s * s + i * s + j], y[bi, :, i::s, j::s])
    assert torch.equal(shuffle_up(z, s), y)


@pytest.mark.parametrize("s", [2, 3])
def test_odd_sizes_drop_the_remainder_and_round_trip_on_the_cropped_part(s: int, gen: torch.Generator) -> None:
    y = torch.rand(2, 1, 4 * s + s - 1, 3 * s + 1, generator=gen)  # s - 1 rows and 1 column too many
    z = shuffle_down(y, s)
    assert z.shape == (2 * s * s, 1, 4, 3)
    cropped = y[..., : 4 * s, : 3 * s]
    assert torch.equal(shuffle_up(z, s), cropped)
    assert torch.equal(z[s * s + s + 1], cropped[1, :, 1::s, 1::s])  # image 1, sub-image (1, 1)


def test_stride_1_is_the_identity(gen: torch.Generator) -> None:
    y = torch.rand(2, 3, 5, 7, generator=gen)
    assert torch.equal(shuffle_down(y, 1), y) and torch.equal(shuffle_up(y, 1), y)


# -- the pixel_shuffle model -----------------------------------------------------------------------------


def test_attributes_come_from_the_inner_model() -> None:
    model = PixelShuffled(3, UNET)
    inner = create_model("unet", **UNET["args"])
    assert (model.stride, model.shuffle_stride, model.in_channels, model.uses_sigma) == (3, 3, 1, True)
    assert model.size_multiple == 3 * inner.size_multiple == 6
    assert model.receptive_field == 3 * inner.receptive_field
    assert create_model("unet").shuffle_stride == 1  # Denoiser's default
    assert set(model.state_dict()) == {f"inner.{k}" for k in inner.state_dict()}


@pytest.mark.parametrize("s", [2, 3])
def test_forward_is_the_inner_model_on_the_sub_images_put_back(s: int, gen: torch.Generator) -> None:
    inner = _tiny_unet()
    model = _shuffled(s, inner)
    y = torch.rand(2, 1, 4 * s, 6 * s, generator=gen)
    with torch.no_grad():
        want = shuffle_up(inner(shuffle_down(y, s), 0.1), s)
        got = model(y, 0.1)
        assert torch.allclose(got, want, atol=1e-6)
        assert not torch.allclose(got, inner(y, 0.1), atol=1e-3)  # not the inner model on the whole image


def test_a_per_image_sigma_reaches_that_image_s_sub_images(gen: torch.Generator) -> None:
    model = _shuffled(2, _tiny_unet())
    y = torch.rand(3, 1, 8, 8, generator=gen)
    sigma = torch.tensor([0.02, 0.2, 0.5])
    with torch.no_grad():
        together = model(y, sigma)
        one_by_one = torch.cat([model(y[i : i + 1], float(sigma[i])) for i in range(3)])
        assert torch.allclose(together, one_by_one, atol=1e-6)
        assert not torch.allclose(together, model(y, 0.2), atol=1e-4)  # the level matters to this model
        assert torch.allclose(model(y, torch.tensor(0.2)), model(y, 0.2), atol=1e-6)  # a 0-d tensor: as a float


def test_a_size_not_a_multiple_is_a_config_error() -> None:
    model = PixelShuffled(2, UNET)  # size_multiple 4
    with pytest.raises(ConfigError, match="multiples of 4"):
        model(torch.rand(1, 1, 8, 6), 0.1)
    with pytest.raises(ConfigError, match="multiples of 4"):
        model(torch.rand(1, 1, 10, 8), 0.1)
    assert model(torch.rand(1, 1, 8, 12), 0.1).shape == (1, 1, 8, 12)


@pytest.mark.parametrize("stride", [0, 9, True, -1, 2.0, "2"])
def test_a_stride_outside_1_to_8_is_a_config_error(stride: object) -> None:
    with pytest.raises(ConfigError, match="stride must be a whole number from 1 to 8"):
        PixelShuffled(stride, UNET)  # type: ignore[arg-type]


def test_nesting_pixel_shuffle_is_refused() -> None:
    with pytest.raises(ConfigError, match="nesting"):
        PixelShuffled(2, {"name": "pixel_shuffle", "args": {"stride": 2, "inner": UNET}})
    with pytest.raises(ConfigError, match="nesting"):
        create_model("pixel_shuffle", stride=3, inner={"name": "pixel_shuffle"})


# -- wrap and checkpoints --------------------------------------------------------------------------------


def test_wrap_at_stride_1_is_the_model_itself() -> None:
    model = _tiny_unet()
    assert wrap(model, 1) is model


def test_wrap_carries_the_weights_and_survives_a_checkpoint(tmp_path: Path, gen: torch.Generator) -> None:
    inner = _tiny_unet()
    wrapped = wrap(inner, 2).eval()
    assert isinstance(wrapped, PixelShuffled) and wrapped.stride == 2
    assert wrapped.arch == {"name": "pixel_shuffle", "args": {"stride": 2, "inner": inner.arch}}
    y = torch.rand(2, 1, 12, 8, generator=gen)
    with torch.no_grad():
        want = _shuffled(2, inner)(y, 0.1)
        assert torch.allclose(wrapped(y, 0.1), want, atol=1e-6)
        assert not torch.allclose(wrap(_tiny_unet(seed=5), 2).eval()(y, 0.1), want, atol=1e-4)  # the weights matter
    save_checkpoint(tmp_path / "w.safetensors", wrapped)
    assert read_metadata(tmp_path / "w.safetensors")["model"]["name"] == "pixel_shuffle"
    loaded = load_checkpoint(tmp_path / "w.safetensors").model.eval()
    assert isinstance(loaded, PixelShuffled) and loaded.shuffle_stride == 2 and loaded.arch == wrapped.arch
    with torch.no_grad():
        assert torch.equal(loaded(y, 0.1), wrapped(y, 0.1))


# -- resolve_sigma on the sub-images ---------------------------------------------------------------------


def test_auto_sigma_reads_correlated_noise_on_the_sub_images() -> None:
    """Noise averaged over 3x3 windows (scaled back to a std of 0.05) looks smooth to the estimator on the
    image, but on the 3x3 pixel-shuffled sub-images its pixels are independent again."""
    n, sigma = 192, 0.05
    yy, xx = torch.meshgrid(torch.arange(n) / n, torch.arange(n) / n, indexing="ij")
    clean = 0.5 + 0.2 * torch.sin(6 * xx) * torch.cos(4 * yy)
    white = torch.randn(1, 1, n, n, generator=torch.Generator().manual_seed(0)) * sigma
    shared = F.avg_pool2d(F.pad(white, (1, 1, 1, 1), mode="reflect"), 3, stride=1) * 3
    assert abs(float(shared.std()) - sigma) < 0.1 * sigma  # the per-pixel level is sigma
    y = clean[None] + shared[0]  # [1, H, W]
    plain, sub3 = _tiny_unet(), PixelShuffled(3, UNET)
    on_image = resolve_sigma(plain, y, "auto")
    on_subs = resolve_sigma(sub3, y, "auto")
    assert on_image < 0.6 * sigma
    assert abs(on_subs - sigma) < 0.15 * sigma
    assert on_subs == pytest.approx(float(estimate_sigma(shuffle_down(y[None], 3)).median()))
    assert resolve_sigma(sub3, y, "auto", min_sigma=0.2) == 0.2  # the floor still applies
    assert resolve_sigma(sub3, y, 0.03) == 0.03  # a number is used as given


# -- patches of the sub-images ---------------------------------------------------------------------------


def _coded(n: int = 64) -> torch.Tensor:
    """[1, n, n]: each pixel's value encodes its 2x2 sub-image k (row % 2, col % 2) and its quadrant q."""
    r, c = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    k = 2 * (r % 2) + c % 2
    q = 2 * (r // (n // 2)) + c // (n // 2)
    return ((1 + 4 * k + q) / 20).float()[None]


def _decode(v: float) -> tuple[int, int]:
    code = round(v * 20) - 1
    return code // 4, code % 4  # (sub-image, quadrant)


def _regions(store) -> list[torch.Tensor]:  # noqa: ANN001
    return [store.pixels[int(o) : int(o) + int(h) * int(w)].reshape(int(h), int(w))
            for o, h, w in zip(store.offsets, store.heights, store.widths)]


def test_patches_come_from_one_sub_image_and_a_place_is_held_back_whole() -> None:
    data = noisy_patch_data([("coded", _coded())], patch_size=8, patches_per_epoch=4, val_fraction=0.25,
                            val_count=64, seed=0, estimate_levels=False, shuffle=2)
    assert data.patch_size == 8 and data.val_y.shape == (64, 1, 8, 8)
    # 32x32 sub-images, 8-pixel patches: 2x2 cells of 16 each = the image's quadrants, 4 sub-images each
    regions = _regions(data.noisy)
    assert all(r.shape == (16, 16) and bool((r == r.flatten()[0]).all()) for r in regions)  # one sub-image each
    train = {_decode(float(r.flatten()[0])) for r in regions}
    val_patches = data.val_y.flatten(1)
    assert bool((val_patches == val_patches[:, :1]).all())  # every validation patch is of one sub-image too
    val = {_decode(float(v)) for v in val_patches[:, 0]}
    train_places, val_places = {q for _, q in train}, {q for _, q in val}
    assert len(val_places) == 1 and not train_places & val_places  # a place is held back in every sub-image
    assert train == {(k, q) for k in range(4) for q in train_places} and len(train_places) == 3
    assert {k for k, _ in val} == {0, 1, 2, 3}  # the held-back place of all 4 sub-images
    batch = data.draw(32, generator=torch.Generator().manual_seed(1))
    assert batch.y.shape == (32, 1, 8, 8) and bool((batch.y.flatten(1) == batch.y.flatten(1)[:, :1]).all())
    assert {_decode(float(v))[1] for v in batch.y.flatten(1)[:, 0]} <= train_places


def test_without_shuffle_the_same_image_gives_mixed_patches() -> None:
    data = noisy_patch_data([("coded", _coded())], patch_size=8, patches_per_epoch=4, val_fraction=0.25,
                            val_count=8, seed=0, estimate_levels=False)
    assert not bool((data.val_y.flatten(1) == data.val_y.flatten(1)[:, :1]).all(dim=1).any())


def test_the_level_of_an_image_is_the_median_over_its_sub_images(gen: torch.Generator) -> None:
    white = torch.randn(1, 1, 128, 128, generator=gen) * 0.05
    y = (0.5 + F.avg_pool2d(F.pad(white, (1, 1, 0, 0), mode="reflect"), (1, 3), stride=1) * 3**0.5)[0]
    data = noisy_patch_data([("y", y)], patch_size=16, patches_per_epoch=4, val_fraction=0.25, val_count=8,
                            seed=0, estimate_levels=True, shuffle=2)
    want = float(estimate_sigma(shuffle_down(y[None], 2)).median())
    assert data.levels is not None and data.val_sigma is not None
    assert torch.allclose(data.levels, torch.full_like(data.levels, want))
    assert torch.allclose(data.val_sigma, torch.full_like(data.val_sigma, want))
    plain = noisy_patch_data([("y", y)], patch_size=16, patches_per_epoch=4, val_fraction=0.25, val_count=8,
                             seed=0, estimate_levels=True)
    assert float(plain.levels[0]) == pytest.approx(float(estimate_sigma(y[None])[0]))
    assert float(plain.levels[0]) < want  # horizontally correlated noise reads lower on the image itself


def test_fit_patch_size_counts_the_sub_images_pixels() -> None:
    images = [("a", torch.rand(1, 64, 64))]
    # shuffle 1: 64x64; 32 -> one coarse cell (64 wide), so fine cells of 32: 2x2 = 4 >= 2 -> 32
    assert fit_patch_size(images, 32, multiple=8) == 32
    # shuffle 2: 32x32 sub-images; 32 and 24 fit one cell (coarse and fine); 16: fine 2x2 -> 16
    assert fit_patch_size(images, 32, multiple=8, shuffle=2) == 16
    # shuffle 4: 16x16 sub-images: one 16-pixel cell, and 16 is the minimum -> too small
    with pytest.raises(DataError, match="4x4 pixel-shuffled sub-images"):
        fit_patch_size(images, 32, multiple=8, shuffle=4)


def test_auto_sigma_falls_back_to_the_whole_crop_when_the_sub_images_are_too_small() -> None:
    """A 40x40 image has 13x13 sub-images at stride 3, too small for the estimator: the level is
    read on the whole image (as a stride-1 model would) instead of failing."""
    from aedenoise.denoising import resolve_sigma
    from aedenoise.models.pixel_shuffle import wrap

    inner = create_model("unet", in_channels=1, widths=(4, 8), blocks=1)
    y = 0.5 + 0.05 * torch.randn(1, 40, 40, generator=torch.Generator().manual_seed(0))
    assert resolve_sigma(wrap(inner, 3), y, "auto") == pytest.approx(resolve_sigma(inner, y, "auto"))


def test_paired_evaluation_reads_each_method_s_level_its_own_way() -> None:
    """On real noise with sigma 'auto' the harness estimates once per image and stride: a model
    adapted on sub-images must not get the level estimated on the whole image for another method."""
    from aedenoise.benchmark.methods import Method
    from aedenoise.benchmark.protocol import _Run

    inner = create_model("unet", in_channels=1, widths=(4, 8), blocks=1)
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0.2, 0.8, 192).repeat(192, 1)[None]
    noise = F.avg_pool2d(F.pad(torch.randn(1, 1, 192, 192, generator=g), (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    y = (x + 3 * 0.05 * noise[0])[None]
    run = _Run(seed=0, clip=False, device=torch.device("cpu"), tile=None, cache_dir=None, examples_dir=None)
    whole = run.level(Method("plain", inner, "plain"), "Real", "a.png", y, "real", "auto")
    shuffled = run.level(Method("adapted", wrap(inner, 3), "adapted"), "Real", "a.png", y, "real", "auto")
    assert shuffled == pytest.approx(resolve_sigma(wrap(inner, 3), y[0], "auto"))
    assert whole == pytest.approx(resolve_sigma(inner, y[0], "auto")) and whole < 0.6 * shuffled
