"""Training losses: the PSNR loss is the evaluation metric, negated, of the clamped output."""

from __future__ import annotations

import math

import pytest
import torch

from aedenoise.config import validate_config
from aedenoise.errors import ConfigError
from aedenoise.metrics import psnr
from aedenoise.training.losses import LOSSES, PSNR_LOSS_EPS, build_loss, psnr_loss, range_aware_error


def images(seed: int, n: int = 4) -> torch.Tensor:
    """``[n, 1, 16, 16]`` in [0, 1] with exact 0 and 1 pixels, like clipped garments on black."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g)
    x[..., :4, :] = 0
    x[..., -2:, :] = 1
    return x


def test_psnr_loss_is_minus_the_mean_psnr_of_the_clamped_estimate() -> None:
    x = images(0)
    x_hat = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    at_bound = (x == 0) | (x == 1)
    scored = torch.where(at_bound, x_hat, x_hat.clamp(0, 1))  # out of range only where x sits at 0 or 1
    mse = (scored.clamp(0, 1) - x).pow(2).flatten(1).mean(1)
    assert float(mse.min()) > 1000 * PSNR_LOSS_EPS  # the floor changes nothing measurable here
    assert bool((scored < 0).any() and (scored > 1).any())
    assert float(psnr_loss(scored, x)) == pytest.approx(float(-psnr(scored.clamp(0, 1), x).mean()), abs=1e-3)
    # Beyond [0, 1] where x is inside it, the loss counts the whole error: an upper bound.
    assert float(psnr_loss(x_hat, x)) > float(-psnr(x_hat.clamp(0, 1), x).mean()) + 0.1


def test_every_image_counts_the_same_in_db() -> None:
    x = images(0, n=2)[:, :, 4:-2]  # no pixel at 0 or 1
    def loss_at(errors: tuple[float, float]) -> float:
        return float(psnr_loss(x + torch.tensor(errors).view(2, 1, 1, 1), x))

    def db(e: float) -> float:
        return 10 * math.log10(e * e + PSNR_LOSS_EPS)

    assert loss_at((0.01, 0.1)) == pytest.approx((db(0.01) + db(0.1)) / 2, abs=1e-3)  # about -30 dB
    # Halving the easy image's error gains as much as halving the hard one's: about 3 dB each.
    easy, hard = loss_at((0.005, 0.1)), loss_at((0.01, 0.05))
    assert loss_at((0.01, 0.1)) - hard == pytest.approx(6.02 / 2, abs=0.01)
    assert loss_at((0.01, 0.1)) - easy == pytest.approx(6.02 / 2, abs=0.1)  # the floor bites a little at 46 dB


def test_errors_the_clamp_removes_cost_nothing_and_others_keep_their_gradient() -> None:
    x = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.3, 0.3]).view(1, 1, 1, 6)
    x_hat = torch.tensor([-0.5, 0.2, 1.4, 0.9, -0.1, 0.5]).view(1, 1, 1, 6).requires_grad_()
    err = range_aware_error(x_hat, x)
    assert err.flatten().tolist() == pytest.approx([0.0, 0.2, 0.0, -0.1, -0.4, 0.2])
    build_loss("psnr")(x_hat, x).backward()
    grad = x_hat.grad.flatten()
    assert grad[0] == 0 and grad[2] == 0  # beyond the bound the clean pixel sits at
    assert grad[1] > 0 and grad[3] < 0 and grad[4] < 0 and grad[5] > 0  # towards x, even from outside [0, 1]


@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_is_zero_or_least_at_the_clean_image(name: str) -> None:
    x = images(2)
    loss = build_loss(name)
    noisy = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert float(loss(x, x)) < float(loss(noisy, x))


def test_config_takes_the_psnr_loss_and_names_a_wrong_one() -> None:
    assert validate_config({"optim": {"loss": "psnr"}}).optim.loss == "psnr"
    with pytest.raises(ConfigError, match="optim.loss"):
        validate_config({"optim": {"loss": "ssim"}})
    with pytest.raises(ValueError, match="unknown loss 'ssim'"):
        build_loss("ssim")
