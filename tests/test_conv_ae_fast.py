"""The CPU fast path of the seed ConvAE computes what the nn layers compute."""

from __future__ import annotations

import pytest
import torch

from aedenoise.models import create_model
from aedenoise.models.conv_ae_fast import FastConvAE, fast_conv_ae


def _pair(channels: int, dtype: torch.dtype, seed: int = 0, native: bool = True):
    torch.manual_seed(seed)
    model = create_model("conv_ae", in_channels=channels).to(dtype)
    with torch.no_grad():  # non-default weights, so that no ReLU is silently dead everywhere
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model, fast_conv_ae(model, native=native)


@pytest.mark.parametrize(("channels", "h", "w"), [(1, 28, 28), (3, 16, 20), (1, 8, 12), (1, 4, 4)])
def test_same_outputs_and_gradients_float64(channels: int, h: int, w: int) -> None:
    model, fast = _pair(channels, torch.float64)
    assert isinstance(fast, FastConvAE) and fast.model is model
    g = torch.Generator().manual_seed(1)
    y = torch.rand(5, channels, h, w, generator=g, dtype=torch.float64, requires_grad=False)
    x = torch.rand(5, channels, h, w, generator=g, dtype=torch.float64)
    params = list(model.parameters())
    ref = model(y)
    out = fast(y)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for a, b in zip(torch.autograd.grad(((ref - x) ** 2).mean(), params), torch.autograd.grad(((out - x) ** 2).mean(), params)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("native", [True, False])  # compiled kernel (where a compiler is), matrix products
def test_float32_training_steps_track_the_nn_layers(native: bool) -> None:
    model, fast = _pair(1, torch.float32, seed=3, native=native)
    twin = create_model("conv_ae")
    twin.load_state_dict(model.state_dict())
    # SGD: Adam's normalisation would blow float rounding in near-zero gradients up to lr-sized steps.
    opts = [torch.optim.SGD(m.parameters(), lr=0.05) for m in (model, twin)]
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        x = torch.rand(32, 1, 28, 28, generator=g)
        y = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
        for net, opt in ((fast, opts[0]), (twin, opts[1])):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(y), x).backward()
            opt.step()
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)


def test_falls_back_where_it_does_not_apply() -> None:
    model, fast = _pair(1, torch.float32)
    y = torch.rand(2, 1, 10, 12)  # 10 is not a multiple of 4: the plain layers run
    assert torch.equal(fast(y), model(y))
    assert fast_conv_ae(model, "cuda") is model
    other = create_model("conv_ae")
    assert fast_conv_ae(torch.nn.Sequential(other)) is not other
    assert fast_conv_ae(fast) is fast  # already wrapped
