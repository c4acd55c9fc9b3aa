"""The training loop on small in-memory data: learning, determinism, resume, run files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
import torch

from aedenoise.config import validate_config
from aedenoise.data.sources import TensorData
from aedenoise.errors import AedenoiseError, ConfigError
from aedenoise.training.loop import choose_threads, train

CONFIG = {"noise": {"sigma": 0.2, "clip": True}, "epochs": 3, "batch_size": 16, "threads": 1, "optim": {"lr": 1e-2}}


def blobs(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """``[n, 1, size, size]`` smooth images in [0, 1]: two Gaussian bumps each (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = torch.rand(n, 2, 2, generator=g) * size
    w = 2 + 4 * torch.rand(n, 2, generator=g)
    img = sum(torch.exp(-((yy - c[:, k, 0, None, None]) ** 2 + (xx - c[:, k, 1, None, None]) ** 2) / (2 * w[:, k, None, None] ** 2))
              for k in range(2))
    return img.clamp(0, 1)[:, None]


@pytest.fixture(scope="module")
def data() -> TensorData:
    x = blobs(384)
    return TensorData(train_x=x[:320], val_x=x[320:])


def result_config(epochs: int):
    return validate_config({**CONFIG, "epochs": epochs})


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_tiny_run_learns_and_beats_the_noisy_input(tmp_path: Path, data: TensorData) -> None:
    result = train(validate_config({**CONFIG, "epochs": 4}), tmp_path / "run", progress=False, data=data)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0], f"training loss did not fall: {losses}"
    assert result.history[-1]["val_psnr"] > result.val_noisy_psnr + 5, (result.history, result.val_noisy_psnr)
    assert result.train_seconds > 0 and result.threads == 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["noise"]["sigma"], saved["noise"]["clip"], saved["epochs"], saved["batch_size"]) == (0.2, True, 4, 16)
    assert validate_config({k: v for k, v in saved.items() if k not in ("aedenoise", "world_size")}) == result_config(4)
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "last.safetensors").is_file()


def test_same_seed_same_weights_other_seed_differs(tmp_path: Path, data: TensorData) -> None:
    cfg = validate_config({**CONFIG, "epochs": 1})
    a = _weights(train(cfg, tmp_path / "a", progress=False, data=data).model)
    b = _weights(train(cfg, tmp_path / "b", progress=False, data=data).model)
    c = _weights(train(validate_config({**CONFIG, "epochs": 1, "seed": 1}), tmp_path / "c", progress=False, data=data).model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


class _Interrupting:
    """``data``, but raising KeyboardInterrupt after ``after`` batches of epoch ``epoch`` (a killed run)."""

    def __init__(self, data: TensorData, epoch: int, after: int) -> None:
        self.data, self.epoch, self.after = data, epoch, after
        self.channels, self.val_x = data.channels, data.val_x

    def batches_per_epoch(self, batch_size: int, *, drop_last: bool) -> int:
        return self.data.batches_per_epoch(batch_size, drop_last=drop_last)

    def epoch_batches(self, epoch: int, batch_size: int, **kw) -> Iterator[torch.Tensor]:
        for i, x in enumerate(self.data.epoch_batches(epoch, batch_size, **kw)):
            if epoch == self.epoch and i == self.after:
                raise KeyboardInterrupt
            yield x


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path: Path, data: TensorData) -> None:
    cfg = validate_config(CONFIG)
    whole = train(cfg, tmp_path / "whole", progress=False, data=data)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False, data=_Interrupting(data, epoch=1, after=5))
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, tmp_path / "cut", progress=False, data=data)
    with pytest.raises(ConfigError, match="differs in: batch_size"):
        train(validate_config({**CONFIG, "batch_size": 8}), tmp_path / "cut", resume=True, progress=False, data=data)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False, data=data)
    w, r = _weights(whole.model), _weights(resumed.model)
    assert all(torch.equal(w[k], r[k]) for k in w), "resumed weights differ from the uninterrupted run"
    strip = lambda hs: [{k: v for k, v in h.items() if k != "seconds"} for h in hs]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)


def test_unwritable_out_is_one_clear_error(tmp_path: Path, data: TensorData) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(AedenoiseError, match="cannot write the run folder .*file/run"):
        train(validate_config(CONFIG), tmp_path / "file" / "run", progress=False, data=data)


@pytest.mark.parametrize(("load", "threads"), [(0.0, 4), (1.2, 3), (3.6, 1), (9.0, 1)])
def test_choose_threads_leaves_busy_cores_alone(monkeypatch: pytest.MonkeyPatch, load: float, threads: int) -> None:
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert choose_threads(None) == threads
    assert choose_threads(2) == 2


def test_init_weights_starts_from_a_checkpoint_and_refuses_another_architecture(tmp_path: Path, data: TensorData) -> None:
    first = train(validate_config({**CONFIG, "epochs": 1}), tmp_path / "a", progress=False, data=data)
    ckpt = str(tmp_path / "a" / "model.safetensors")
    # A vanishing learning rate: the fine-tuned weights stay the checkpoint's, not a fresh init's.
    tuned = train(validate_config({**CONFIG, "epochs": 1, "seed": 5, "init_weights": ckpt, "optim": {"lr": 1e-9}}),
                  tmp_path / "b", progress=False, data=data)
    a, b = _weights(first.model), _weights(tuned.model)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["init_weights"] == ckpt
    other = validate_config({**CONFIG, "epochs": 1, "init_weights": ckpt, "model": {"name": "res_ae", "args": {"width": 8, "blocks": 1}}})
    with pytest.raises(ConfigError, match="init_weights .*model.safetensors: architecture .*does not match"):
        train(other, tmp_path / "c", progress=False, data=data)
    with pytest.raises(AedenoiseError, match="missing.safetensors: no such checkpoint file"):
        train(validate_config({**CONFIG, "init_weights": str(tmp_path / "missing.safetensors")}), tmp_path / "d", progress=False, data=data)


def test_cpu_options_psnr_loss_bf16_channels_last_and_flips_learn_and_repeat(tmp_path: Path, data: TensorData) -> None:
    cfg = validate_config({
        **CONFIG, "epochs": 3, "model": {"name": "res_ae_global", "args": {"width": 8, "global_hidden": 32}},
        "optim": {"lr": 3e-3, "loss": "psnr"}, "amp": True, "channels_last": True, "hflip": True,
    })
    result = train(cfg, tmp_path / "a", progress=False, data=data)
    assert result.history[-1]["val_psnr"] > result.val_noisy_psnr + 5, (result.history, result.val_noisy_psnr)
    assert result.history[-1]["val_loss"] == pytest.approx(-result.history[-1]["val_psnr"], abs=0.05)  # loss in dB
    assert all(p.is_contiguous() for p in result.model.parameters())  # back to the default layout
    again = train(cfg, tmp_path / "b", progress=False, data=data).model.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in result.model.state_dict().items())


def test_muon_optimizer_learns_repeats_and_resumes(tmp_path: Path, data: TensorData) -> None:
    cfg = validate_config({
        **CONFIG, "epochs": 2, "model": {"name": "res_ae", "args": {"width": 8, "blocks": 1}},
        "optim": {"name": "muon", "lr": 3e-3, "muon_lr": 5e-3, "loss": "psnr"},
    })
    whole = train(cfg, tmp_path / "whole", progress=False, data=data)
    assert whole.history[-1]["val_psnr"] > whole.val_noisy_psnr + 5, (whole.history, whole.val_noisy_psnr)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False, data=_Interrupting(data, epoch=1, after=3))
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False, data=data)
    w, r = _weights(whole.model), _weights(resumed.model)
    assert all(torch.equal(w[k], r[k]) for k in w), "resumed weights differ from the uninterrupted run"


def test_random_hflip_flips_about_half_and_repeats_with_the_generator() -> None:
    from aedenoise.training.loop import random_hflip

    x = blobs(400)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1) & ~(out == x).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped | kept).all()) and 150 < int(flipped.sum()) < 250
    assert torch.equal(out, random_hflip(x, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize(("flags", "expected"), [("flags : avx512f avx512_bf16", True), ("flags : avx2", False)])
def test_amp_auto_follows_native_bf16(tmp_path: Path, data: TensorData, monkeypatch: pytest.MonkeyPatch, flags: str, expected: bool) -> None:
    from aedenoise import hardware

    monkeypatch.setattr(hardware, "cpu_feature_line", lambda: flags)
    cfg = validate_config({**CONFIG, "epochs": 1, "amp": "auto"})
    assert train(cfg, tmp_path / "run", progress=False, data=data).amp is expected
