"""MuonAdam: Muon's update for convolution kernels, torch's Adam for the rest."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aedenoise.config import validate_config
from aedenoise.errors import ConfigError
from aedenoise.training.muon import MuonAdam, is_muon_kernel, orthogonalize
from aedenoise.training.optimizers import make_optimizer


def gaussian(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(3, 16, 144), (2, 288, 32)])
def test_orthogonalize_brings_every_singular_value_near_one(shape: tuple[int, int, int]) -> None:
    n, rows, cols = shape
    k = min(rows, cols)
    u = torch.linalg.qr(gaussian(n, rows, k, seed=1)).Q
    v = torch.linalg.qr(gaussian(n, cols, k, seed=2)).Q
    g = u @ torch.diag(torch.logspace(-1.5, 0.5, k)) @ v.transpose(-2, -1)  # singular values 0.03 to 3
    o = orthogonalize(g)
    assert o.shape == g.shape and o.dtype == torch.float32
    s = torch.linalg.svdvals(o)
    assert float(s.min()) > 0.5 and float(s.max()) < 1.5, s
    assert torch.allclose(o.transpose(-2, -1) @ g, (o.transpose(-2, -1) @ g).transpose(-2, -1), atol=1e-3)  # same singular vectors
    assert torch.allclose(orthogonalize(g[1:2]), o[1:2], atol=1e-5)  # batched = one at a time


def test_is_muon_kernel_leaves_first_last_and_non_conv_layers_to_adam() -> None:
    stem, body, head, up = nn.Conv2d(1, 16, 3), nn.Conv2d(16, 16, 3), nn.Conv2d(16, 1, 3), nn.ConvTranspose2d(32, 16, 3)
    linear = nn.Linear(8, 8)
    assert [is_muon_kernel(p) for p in (stem.weight, body.weight, head.weight, up.weight)] == [False, True, False, True]
    assert not any(is_muon_kernel(p) for p in (body.bias, linear.weight, linear.bias))


@pytest.mark.parametrize("shape", [(8, 4, 3, 3), (32, 2, 3, 3)], ids=["wide", "tall"])
def test_kernel_update_is_torch_muon_on_the_matrix_view(shape: tuple[int, int, int, int]) -> None:
    rows, cols = shape[0], shape[1] * shape[2] * shape[3]
    kernel = nn.Parameter(gaussian(*shape))
    matrix = nn.Parameter(kernel.detach().reshape(rows, cols).clone())
    ours = MuonAdam([kernel], [], lr=1e-3, muon_lr=0.02)
    theirs = torch.optim.Muon([matrix], lr=0.02, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
    start = kernel.detach().clone()
    for step in range(3):
        grad = gaussian(*shape, seed=step + 1)
        kernel.grad, matrix.grad = grad.clone(), grad.reshape(rows, cols).clone()
        ours.step()
        theirs.step()
    moved = (kernel.detach() - start).reshape(rows, cols)
    gap = kernel.detach().reshape(rows, cols) - matrix.detach()
    assert float(moved.norm()) > 0.05
    assert float(gap.norm()) < 0.03 * float(moved.norm())  # torch's Newton-Schulz runs in bfloat16, ours in float32


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_other_parameters_get_torch_adam_exactly(weight_decay: float) -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(6, 5), nn.Linear(6, 5)
    b.load_state_dict(a.state_dict())
    ours = MuonAdam([], list(a.parameters()), lr=1e-2, muon_lr=1.0, weight_decay=weight_decay)
    theirs = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=weight_decay, fused=True)
    for step in range(4):
        x = gaussian(3, 6, seed=step)
        for model, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_make_optimizer_muon_splits_a_model_and_schedules_both_groups() -> None:
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    opt = make_optimizer("muon", list(model.parameters()), lr=1e-2, weight_decay=0.0, muon_lr=2e-2)
    assert isinstance(opt, MuonAdam)
    adam, muon = opt.param_groups
    assert (muon["muon"], muon["lr"], len(muon["params"])) == (True, 2e-2, 1)
    assert (adam["muon"], adam["lr"], len(adam["params"])) == (False, 1e-2, 5)
    x = gaussian(4, 1, 12, 12)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = (model(x) - x).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    assert [g["lr"] for g in opt.param_groups] == [5e-3, 1e-2]
    assert make_optimizer("muon", list(model.parameters()), lr=1e-3, weight_decay=0.0).param_groups[1]["lr"] == 1e-3  # muon_lr defaults to lr


def test_config_takes_muon_and_refuses_muon_lr_for_another_optimizer() -> None:
    optim = validate_config({"optim": {"name": "muon", "lr": 2e-3, "muon_lr": 5e-3}}).optim
    assert (optim.name, optim.lr, optim.muon_lr) == ("muon", 2e-3, 5e-3)
    with pytest.raises(ConfigError, match="muon_lr applies to optimizer 'muon' only"):
        validate_config({"optim": {"name": "adam", "muon_lr": 5e-3}})
    with pytest.raises(ConfigError, match="muon_lr"):
        validate_config({"optim": {"name": "muon", "muon_lr": 0}})
