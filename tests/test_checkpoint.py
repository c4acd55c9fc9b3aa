"""Checkpoints: exact round trips, resumable optimizer state, clear errors, no pickle, atomic writes."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch

from aedenoise import __version__
from aedenoise.errors import CheckpointError
from aedenoise.models import create_model
from aedenoise.models.checkpoint import FORMAT, load_checkpoint, read_metadata, save_checkpoint
from aedenoise.models.conv_ae import ConvAE


def batch(seed: int = 0, channels: int = 1) -> torch.Tensor:
    return torch.rand(4, channels, 16, 16, generator=torch.Generator().manual_seed(seed))


def trained_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("conv_ae")


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, trained_model(), metadata={"epoch": 3, "noise": {"kind": "gaussian", "sigma": 25 / 255}, "metrics": {"psnr": 31.25}})
    return path


def test_round_trip_identical_outputs(saved: Path) -> None:
    original = trained_model()
    loaded = load_checkpoint(saved).model
    y = batch()
    with torch.no_grad():
        assert torch.equal(loaded(y), original(y))
    for (k, a), (k2, b) in zip(original.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_metadata_preserved(saved: Path) -> None:
    meta = load_checkpoint(saved).metadata
    assert meta["epoch"] == 3 and meta["noise"] == {"kind": "gaussian", "sigma": 25 / 255} and meta["metrics"] == {"psnr": 31.25}
    assert meta["format"] == FORMAT and meta["package_version"] == __version__
    assert meta["model"] == {"name": "conv_ae", "args": {"in_channels": 1}}
    assert read_metadata(saved) == meta
    assert "optimizer" not in meta and load_checkpoint(saved).optimizer_state is None


def test_architecture_args_rebuild(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "rgb.safetensors"
    save_checkpoint(path, create_model("conv_ae", in_channels=3))
    model = load_checkpoint(path).model
    assert model.in_channels == 3 and model(batch(channels=3)).shape == (4, 3, 16, 16)


def make_muon(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    from aedenoise.training.optimizers import make_optimizer

    return make_optimizer("muon", params, lr=1e-3, weight_decay=0.01, muon_lr=3e-3)


@pytest.mark.parametrize("make_optimizer", [
    lambda params: torch.optim.Adam(params, lr=1e-3),
    lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True),
    lambda params: torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01, amsgrad=True),
    lambda params: make_muon(list(params)),
])
def test_optimizer_state_resume_gives_identical_next_step(tmp_path: Path, make_optimizer) -> None:
    def step(model, opt, seed: int) -> None:
        y = batch(seed)
        opt.zero_grad()
        (model(y) - y).pow(2).mean().backward()
        opt.step()

    model = trained_model()
    opt = make_optimizer(model.parameters())
    for seed in range(3):
        step(model, opt, seed)
    path = tmp_path / "train.safetensors"
    save_checkpoint(path, model, optimizer=opt, metadata={"epoch": 1})

    ckpt = load_checkpoint(path)
    resumed = ckpt.model
    resumed_opt = make_optimizer(resumed.parameters())
    resumed_opt.load_state_dict(ckpt.optimizer_state)
    assert "optimizer" not in ckpt.metadata and ckpt.metadata["epoch"] == 1

    step(model, opt, 10)
    step(resumed, resumed_opt, 10)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert resumed_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def _retag(src: Path, dst: Path, change) -> None:
    """Copy a checkpoint, editing its JSON metadata (weights unchanged)."""
    from safetensors.torch import load_file, save_file

    meta = read_metadata(src)
    change(meta)
    save_file(load_file(str(src)), str(dst), metadata={"aedenoise": json.dumps(meta)})


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["model"]["args"].update(in_channels=3), "do not fit architecture 'conv_ae'"),
    (lambda m: m["model"].update(name="no_such_model"), "cannot rebuild model"),
    (lambda m: m["model"]["args"].update(width=64), "cannot rebuild model"),
    (lambda m: m.update(format="aedenoise-checkpoint/99"), "unsupported checkpoint format"),
])
def test_other_architecture_weights(saved: Path, tmp_path: Path, change, message: str) -> None:
    other = tmp_path / "other.safetensors"
    _retag(saved, other, change)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(other)
    assert str(err.value).startswith(f"{other}: ") and "\n" not in str(err.value)


def test_foreign_safetensors_and_missing_tensors(saved: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="without aedenoise metadata"):
        load_checkpoint(foreign)
    partial = tmp_path / "partial.safetensors"
    tensors = load_file(str(saved))
    tensors.pop(next(k for k in tensors if k.endswith("bias")))
    save_file(tensors, str(partial), metadata={"aedenoise": json.dumps(read_metadata(saved))})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(partial)


@pytest.mark.parametrize("damage", ["half", "last_byte", "random", "empty", "header_length", "missing"])
def test_corrupt_files(saved: Path, damage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = saved.read_bytes()
    if damage == "half":
        saved.write_bytes(data[: len(data) // 2])
    elif damage == "last_byte":
        saved.write_bytes(data[:-1])
    elif damage == "random":
        saved.write_bytes(os.urandom(4096))
    elif damage == "empty":
        saved.write_bytes(b"")
    elif damage == "header_length":
        saved.write_bytes(struct.pack("<Q", len(data) * 10) + data[8:])
    else:
        saved.unlink()

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle must never be used for checkpoints")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, no_pickle)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(saved)
    assert str(err.value).startswith(f"{saved}: ")


def test_never_pickle_on_success(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle must never be used for checkpoints")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, no_pickle)
    assert load_checkpoint(saved).metadata["epoch"] == 3
    header_len = struct.unpack("<Q", saved.read_bytes()[:8])[0]
    assert json.loads(saved.read_bytes()[8 : 8 + header_len])  # plain safetensors JSON header


def test_atomic_write_no_temp_left_and_overwrite(saved: Path) -> None:
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]
    save_checkpoint(saved, trained_model(seed=9), metadata={"epoch": 4})
    assert load_checkpoint(saved).metadata["epoch"] == 4
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_failed_save_leaves_target_untouched(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = saved.read_bytes()
    with pytest.raises(TypeError):  # metadata that is not JSON
        save_checkpoint(saved, trained_model(seed=9), metadata={"bad": object()})
    import safetensors.torch

    def half_write(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(saved, trained_model(seed=9))
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_model_not_built_by_create_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="create_model"):
        save_checkpoint(tmp_path / "x.safetensors", ConvAE())
    assert not list(tmp_path.iterdir())
