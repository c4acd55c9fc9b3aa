"""The stacked autoencoder family and greedy layer-wise pretraining."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from aedenoise.config import validate_config
from aedenoise.data.sources import TensorData
from aedenoise.errors import ConfigError
from aedenoise.models import create_model, list_models
from aedenoise.models.checkpoint import load_checkpoint, save_checkpoint
from aedenoise.noise import GaussianNoise
from aedenoise.training.greedy import freeze_all_but, greedy_pretrain, train_stage
from aedenoise.training.loop import train

SMALL = {"widths": (8, 16, 24), "convs_per_stage": 2}


def _smooth_images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Clean test images in [0, 1]: random 4x4 grids upsampled bilinearly (smooth, learnable)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 4, 4, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)


def _data(channels: int = 1, size: int = 16, n: int = 64, seed: int = 0) -> TensorData:
    x = _smooth_images(n + 16, channels, size, seed)
    return TensorData(train_x=x[:n], val_x=x[n:])


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_range_and_stage_codes(channels: int) -> None:
    assert "stacked_ae" in list_models()
    model = create_model("stacked_ae", in_channels=channels, **SMALL)
    assert model.stages == 3 and model.size_multiple == 8 and model.in_channels == channels
    assert model.receptive_field % model.size_multiple == 0 and model.receptive_field > 8
    y = torch.rand(2, channels, 24, 32)
    with torch.no_grad():
        x_hat = model(y, None)
    assert x_hat.shape == y.shape and 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1
    for k, width in enumerate((channels, 8, 16, 24)):
        with torch.no_grad():
            code = model.encode_to(y, k)
        assert code.shape == (2, width, 24 // 2**k, 32 // 2**k)
        if k:
            assert float(code.min()) >= 0  # codes are ReLU outputs
    assert torch.equal(model.encode_to(y, 0), y)


def test_stage_addressing_composes_to_forward() -> None:
    model = create_model("stacked_ae", in_channels=3, **SMALL).eval()
    y = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        z2 = model.encoders[1](model.encoders[0](y))
        assert torch.allclose(model.encode_to(y, 2), z2)
        assert torch.allclose(model.decode_from(z2, 2), model.decoders[0](model.decoders[1](z2)))
        full = model.decode_from(model.encode_to(y, 3), 3)
        assert torch.allclose(full, model(y))
        # stage k is an autoencoder of level-k codes: decoders[k] returns to level k's shape
        assert model.decoders[2](model.encoders[2](z2)).shape == z2.shape
    with pytest.raises(ValueError):
        model.encode_to(y, 4)


def test_invalid_arguments_are_config_errors() -> None:
    for bad in ({"in_channels": 2}, {"widths": ()}, {"widths": (8, 0)}, {"convs_per_stage": 0}):
        with pytest.raises(ConfigError):
            create_model("stacked_ae", **bad)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = create_model("stacked_ae", in_channels=3, widths=[8, 16], convs_per_stage=1)
    save_checkpoint(tmp_path / "m.safetensors", model)
    loaded = load_checkpoint(tmp_path / "m.safetensors").model
    y = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded(y), model(y)) and loaded.arch["args"]["widths"] == [8, 16]


def test_train_stage_changes_only_that_stage() -> None:
    torch.manual_seed(0)
    model = create_model("stacked_ae", in_channels=1, **SMALL)
    before = {name: _snapshot(getattr(model, part)[k]) for part in ("encoders", "decoders") for k in range(3) for name in [f"{part}{k}"]}
    records = train_stage(model, 1, _data(), GaussianNoise(0.1), epochs=1, batch_size=16, lr=1e-2)
    assert [(r["stage"], r["epoch"]) for r in records] == [(2, 1)] and records[0]["train_loss"] > 0
    for part in ("encoders", "decoders"):
        for k in range(3):
            assert _changed(before[f"{part}{k}"], getattr(model, part)[k]) == (k == 1), f"{part}[{k}]"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("encoders.1.", "decoders.1.")) for n in trainable)


def test_greedy_pretrain_trains_stages_in_order_and_unfreezes_all() -> None:
    torch.manual_seed(0)
    model = create_model("stacked_ae", in_channels=1, **SMALL)
    init = _snapshot(model)
    records = greedy_pretrain(model, _data(), GaussianNoise(0.1), epochs_per_stage=2, batch_size=16, lr=1e-2)
    assert [(r["stage"], r["epoch"]) for r in records] == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert all(p.requires_grad for p in model.parameters())
    assert all(not torch.equal(init[k], v) for k, v in model.state_dict().items()), "every stage was pretrained"
    with pytest.raises(ConfigError):
        greedy_pretrain(create_model("conv_ae"), _data(), GaussianNoise(0.1), epochs_per_stage=1, batch_size=16)


def test_frozen_stage_gets_no_gradient() -> None:
    model = create_model("stacked_ae", in_channels=1, **SMALL)
    freeze_all_but(model, 2)
    model(torch.rand(2, 1, 16, 16)).mean().backward()
    assert all(p.grad is None for p in model.encoders[0].parameters())
    assert all(p.grad is not None for p in model.encoders[2].parameters())
    freeze_all_but(model, None)
    assert all(p.requires_grad for p in model.parameters())


def test_train_with_greedy_then_fine_tunes_every_stage(tmp_path: Path) -> None:
    """The training loop pretrains (same seeds as a direct greedy_pretrain call), then fine-tunes all stages."""
    config = validate_config({
        "model": {"name": "stacked_ae", "args": {"widths": [8, 16], "convs_per_stage": 1}},
        "noise": {"sigma": 0.1}, "epochs": 1, "batch_size": 16, "seed": 5, "device": "cpu",
        "optim": {"name": "sgd", "lr": 0.05}, "greedy_epochs_per_stage": 1,
    })
    data = _data()
    torch.manual_seed(config.seed)
    pretrained = create_model("stacked_ae", in_channels=1, widths=[8, 16], convs_per_stage=1)
    greedy_pretrain(pretrained, data, config.noise.build(), epochs_per_stage=1, batch_size=16, optimizer="sgd", lr=0.05, seed=5)
    result = train(config, tmp_path / "run", progress=False, data=data)
    meta = load_checkpoint(tmp_path / "run" / "model.safetensors").metadata
    assert [(g["stage"], g["epoch"]) for g in meta["greedy"]] == [(1, 1), (2, 1)]
    assert meta["train_seconds"] >= sum(g["seconds"] for g in meta["greedy"])
    final = result.model.state_dict()
    for name, value in pretrained.state_dict().items():
        assert not torch.equal(value, final[name]), f"{name} was not fine-tuned"


def test_tiny_run_denoises_better_than_the_noisy_input(tmp_path: Path) -> None:
    config = validate_config({
        "model": {"name": "stacked_ae", "args": {"widths": [16, 32], "convs_per_stage": 1}},
        "noise": {"sigma": 0.2}, "epochs": 6, "batch_size": 16, "seed": 0, "device": "cpu",
        "optim": {"name": "adam", "lr": 3e-3}, "greedy_epochs_per_stage": 1,
    })
    data = _data(channels=3, size=16, n=256)
    result = train(config, tmp_path / "run", progress=False, data=data)
    from aedenoise.benchmark.scoring import add_noise
    from aedenoise.metrics import psnr

    y, _ = add_noise(data.val_x, config.noise.build(), seed=config.seed + 7919)
    noisy = float(psnr(y.clamp(0, 1), data.val_x).mean())
    assert result.history[-1]["val_psnr"] > noisy + 3, (result.history[-1]["val_psnr"], noisy)
