"""Every registered model honours the Denoiser contract; conv_ae is the seed tutorial model."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from aedenoise.errors import ConfigError
from aedenoise.models import Denoiser, create_model, list_models, model_entry
from aedenoise.models.checkpoint import load_checkpoint, save_checkpoint

MODELS = list_models()


def channel_options(name: str) -> list[int]:
    """1 and 3 when the builder takes ``in_channels``; else only the default."""
    params = inspect.signature(model_entry(name).builder).parameters
    return [1, 3] if "in_channels" in params else [create_model(name).in_channels]


CASES = [(name, c) for name in MODELS for c in channel_options(name)]


def build(name: str, channels: int) -> Denoiser:
    params = inspect.signature(model_entry(name).builder).parameters
    return create_model(name, in_channels=channels) if "in_channels" in params else create_model(name)


def sample_input(model: Denoiser, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """``[batch, C, H, W]`` in [0, 1], H != W, both multiples of ``size_multiple``."""
    m = model.size_multiple
    h, w = m * math.ceil(32 / m), m * math.ceil(40 / m)
    return torch.rand(batch, model.in_channels, h, w, generator=torch.Generator().manual_seed(seed))


def test_registry_is_not_empty() -> None:
    assert "conv_ae" in MODELS and MODELS == sorted(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_builds_with_defaults(name: str) -> None:
    model = create_model(name)
    assert isinstance(model, Denoiser)
    assert model.arch["name"] == name
    assert set(model.arch["args"]) == set(inspect.signature(model_entry(name).builder).parameters)
    assert model.in_channels in (1, 3) and model.size_multiple >= 1 and model.receptive_field >= 1
    assert isinstance(model.uses_sigma, bool)
    assert model_entry(name).description


@pytest.mark.parametrize(("name", "channels"), CASES)
def test_forward_shape_and_finite(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model = build(name, channels).eval()
    assert model.in_channels == channels
    y = sample_input(model)
    with torch.no_grad():
        for sigma in (0.1, torch.tensor([0.05, 0.2])):
            x_hat = model(y, sigma)
            assert x_hat.shape == y.shape and x_hat.dtype == torch.float32
            assert torch.isfinite(x_hat).all()
    if name == "conv_ae":
        assert x_hat.min() >= 0 and x_hat.max() <= 1


@pytest.mark.parametrize(("name", "channels"), CASES)
def test_gradients_flow(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model = build(name, channels).train()
    y = sample_input(model)
    target = sample_input(model, seed=1)  # not y: a residual model may start as the identity
    loss = (model(y, 0.1) - target).pow(2).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads, "model has no trainable parameters"
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.pow(2).sum() for g in grads) > 0
    if name == "conv_ae":
        assert all(g.abs().sum() > 0 for g in grads)  # every layer learns


@pytest.mark.parametrize("name", MODELS)
def test_sigma_contract_and_no_batch_mixing(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        for p in model.parameters():  # leave a zero-initialised (identity) start
            p.add_(0.05 * torch.randn_like(p))
        y = sample_input(model, batch=3)
        low, high = model(y, 0.05), model(y, 0.2)
        if model.uses_sigma:
            assert not torch.allclose(low, high)
        else:
            assert torch.equal(low, high) and torch.equal(model(y, None), low)
        one = model(y[1:2], 0.05)
    assert torch.allclose(one, low[1:2], atol=1e-5)  # each image is denoised on its own


@pytest.mark.parametrize("name", MODELS)
def test_unknown_argument_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="definitely_not_an_option"):
        create_model(name, definitely_not_an_option=1)


def test_unknown_model_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'no_such_model'.*conv_ae"):
        create_model("no_such_model")


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_init(name: str) -> None:
    torch.manual_seed(5)
    a = create_model(name).state_dict()
    torch.manual_seed(5)
    b = create_model(name).state_dict()
    torch.manual_seed(6)
    c = create_model(name).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize(("name", "channels"), CASES)
def test_checkpoint_round_trip(name: str, channels: int, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build(name, channels).eval()
    path = tmp_path / f"{name}.safetensors"
    save_checkpoint(path, model)
    loaded = load_checkpoint(path).model.eval()
    assert type(loaded) is type(model) and loaded.arch == model.arch
    y = sample_input(model)
    with torch.no_grad():
        assert torch.equal(loaded(y, 0.1), model(y, 0.1))


# -- conv_ae: the tutorial model, layer for layer ------------------------------------------


def test_conv_ae_layers_and_parameter_count() -> None:
    model = create_model("conv_ae")
    assert sum(p.numel() for p in model.parameters()) == 3217
    assert sum(p.numel() for p in create_model("conv_ae", in_channels=3).parameters()) == 3795
    assert model.size_multiple == 4 and not model.uses_sigma
    layers = [m for m in model.modules() if not isinstance(m, (nn.Sequential, Denoiser))]
    expected = [
        (nn.Conv2d, 1, 16, 2), (nn.ReLU,), (nn.Conv2d, 16, 8, 2), (nn.ReLU,),
        (nn.ConvTranspose2d, 8, 8, 2), (nn.ReLU,), (nn.ConvTranspose2d, 8, 16, 2), (nn.ReLU,),
        (nn.Conv2d, 16, 1, 1), (nn.Sigmoid,),
    ]
    assert [type(m) for m in layers] == [e[0] for e in expected]
    for layer, (_, c_in, c_out, stride) in ((m, e) for m, e in zip(layers, expected) if len(e) == 4):
        assert (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride) == (c_in, c_out, (3, 3), (stride, stride))


def test_conv_ae_spatial_path() -> None:
    """28x28 -> 14x14 -> 7x7 -> 14x14 -> 28x28, as in the tutorial."""
    model = create_model("conv_ae")
    sizes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(tuple(out.shape[1:]))) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    model(torch.rand(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert sizes == [(16, 14, 14), (8, 7, 7), (8, 14, 14), (16, 28, 28), (1, 28, 28)]


# -- res_ae_global: global context and the flip self-ensemble ---------------------------------


def _perturbed(model: Denoiser, seed: int = 0) -> Denoiser:
    """``model`` with every weight nudged: its zero-initialised (identity) blocks come alive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_res_ae_global_sees_the_whole_image_and_res_ae_does_not() -> None:
    torch.manual_seed(0)
    y = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y2 = y.clone()
    y2[..., 27, 27] = 1 - y2[..., 27, 27]  # one pixel in the far corner
    for name, reaches in (("res_ae_global", True), ("res_ae", False)):
        model = _perturbed(create_model(name, width=4, blocks=0))
        with torch.no_grad():
            changed = (model(y2) - model(y))[..., :4, :4].abs().max()  # the opposite corner
        assert bool(changed > 0) is reaches, (name, float(changed))


def test_global_context_starts_as_the_identity_and_matches_an_mlp_at_its_grid() -> None:
    from aedenoise.models.res_ae import GlobalContext

    torch.manual_seed(0)
    block = GlobalContext(8, grid=7, hidden=16)
    f = torch.randn(2, 8, 7, 7)
    assert torch.equal(block(f), f)
    _perturbed(block)
    assert torch.allclose(block(f), f + block.mlp(f).view(2, 8, 7, 7))
    assert block(torch.randn(2, 8, 10, 12)).shape == (2, 8, 10, 12)  # pooled to 7x7 and resized back


def test_flip_ensemble_averages_the_mirror_image_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    model = _perturbed(create_model("res_ae_global", width=4, flip_ensemble=True))
    plain = _perturbed(create_model("res_ae_global", width=4, flip_ensemble=False))
    plain.load_state_dict(model.state_dict())
    y = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x_hat = model(y)
        assert torch.allclose(x_hat, 0.5 * (plain(y) + plain(y.flip(-1)).flip(-1)), atol=1e-6)
        assert torch.allclose(model(y.flip(-1)), x_hat.flip(-1), atol=1e-6)  # mirror-equivariant
        assert not torch.allclose(plain(y.flip(-1)), plain(y).flip(-1), atol=1e-4)
        model.train()
        assert torch.equal(model(y), plain(y))


def test_res_ae_activation_is_checked_and_changes_only_the_nonlinearity() -> None:
    with pytest.raises(ConfigError, match="unknown activation 'tanh'"):
        create_model("res_ae", activation="tanh")
    torch.manual_seed(0)
    relu = create_model("res_ae", width=4)
    torch.manual_seed(0)
    gelu = create_model("res_ae", width=4, activation="gelu")
    assert all(torch.equal(a, b) for a, b in zip(relu.state_dict().values(), gelu.state_dict().values()))
    kinds = {type(m) for m in gelu.modules()}
    assert nn.GELU in kinds and nn.ReLU not in kinds
    assert create_model("res_ae_global").arch["args"]["activation"] == "gelu"
