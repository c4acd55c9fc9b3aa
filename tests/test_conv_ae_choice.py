"""The seed model's CPU path is chosen by measurement, cached per machine and setting, and can be forced."""

from __future__ import annotations

import json

import pytest
import torch

from aedenoise.errors import ConfigError
from aedenoise.models import conv_ae_choice as choice
from aedenoise.models import create_model
from aedenoise.models.conv_ae_fast import FastConvAE
from aedenoise.models.conv_ae_native import native_library


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Each test: its own cache folder, no remembered choices, no forcing from the caller's environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(choice.ENV_PATH, raising=False)
    monkeypatch.setattr(choice, "_CHOSEN", {})
    monkeypatch.setattr(choice, "ROUNDS", 1)  # keep the suite fast; the rule is the same
    yield tmp_path


def _available() -> list[str]:
    return choice._available(create_model("conv_ae"))


def test_the_measured_choice_is_the_fastest_and_is_cached(fresh_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    model = create_model("conv_ae")
    first = choice.choose_conv_ae_path(model, mode="train", batch_size=8, threads=1)
    assert set(first.ms_per_step) == set(_available()) and all(t > 0 for t in first.ms_per_step.values())
    assert first.path == min(first.ms_per_step, key=first.ms_per_step.get)
    assert "measured now" in first.reason and "1 thread" in first.reason
    saved = json.loads(choice.cache_file().read_text())
    assert [entry["path"] for entry in saved.values()] == [first.path]

    def no_measuring(*args, **kwargs):
        raise AssertionError("a cached choice must not be measured again")

    monkeypatch.setattr(choice, "_CHOSEN", {})  # a new process: only the file remembers
    monkeypatch.setattr(choice, "measure", no_measuring)
    again = choice.choose_conv_ae_path(model, mode="train", batch_size=8, threads=1)
    assert (again.path, again.ms_per_step) == (first.path, first.ms_per_step) and "cached" in again.reason


def test_each_setting_is_measured_on_its_own(fresh_cache) -> None:
    model = create_model("conv_ae")
    choice.choose_conv_ae_path(model, mode="train", batch_size=8, threads=1)
    choice.choose_conv_ae_path(model, mode="infer", batch_size=8, threads=1)
    choice.choose_conv_ae_path(model, mode="infer", batch_size=8, threads=2)
    choice.choose_conv_ae_path(model, mode="infer", batch_size=16, threads=2)
    entries = json.loads(choice.cache_file().read_text()).values()
    assert sorted((e["mode"], e["threads"], e["shape"][0]) for e in entries) == [
        ("infer", 1, 8), ("infer", 2, 8), ("infer", 2, 16), ("train", 1, 8)]


def test_a_damaged_cache_is_measured_again(fresh_cache) -> None:
    choice.cache_file().parent.mkdir(parents=True, exist_ok=True)
    choice.cache_file().write_text("{not json")
    picked = choice.choose_conv_ae_path(create_model("conv_ae"), mode="infer", batch_size=8, threads=1)
    assert "measured now" in picked.reason and json.loads(choice.cache_file().read_text())


@pytest.mark.parametrize("path", ["native", "parity", "nn"])
def test_a_path_can_be_forced(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if path not in _available():
        pytest.skip("no C++ compiler here: the compiled kernel is unavailable")
    monkeypatch.setenv(choice.ENV_PATH, path)
    model = create_model("conv_ae")
    net, picked = choice.best_conv_ae(model, mode="train", batch_size=4)
    assert picked is not None and picked.path == path and choice.ENV_PATH in picked.reason and not picked.ms_per_step
    if path == "nn":
        assert net is model
    else:
        assert isinstance(net, FastConvAE) and net.model is model and net.path == path
    y = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(net(y), model(y), rtol=0, atol=2e-6)  # every path: the same function
    assert not choice.cache_file().exists()  # nothing measured


def test_bad_forcing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(choice.ENV_PATH, "fastest")
    with pytest.raises(ConfigError, match="AEDENOISE_CONV_AE_PATH='fastest'"):
        choice.choose_conv_ae_path(create_model("conv_ae"), mode="infer", batch_size=4)
    monkeypatch.setenv(choice.ENV_PATH, "native")
    monkeypatch.setenv("AEDENOISE_NATIVE", "0")
    native_library.cache_clear()
    try:
        with pytest.raises(ConfigError, match="kernel is unavailable"):
            choice.choose_conv_ae_path(create_model("conv_ae"), mode="infer", batch_size=4)
        monkeypatch.setenv(choice.ENV_PATH, "auto")  # without the kernel: measured between the other two
        assert set(choice.choose_conv_ae_path(create_model("conv_ae"), mode="infer", batch_size=8).ms_per_step) == {"parity", "nn"}
    finally:
        native_library.cache_clear()


def test_other_models_and_devices_are_left_alone() -> None:
    unet = create_model("unet", widths=(4, 8), blocks=1)
    assert choice.best_conv_ae(unet, mode="infer", batch_size=2) == (unet, None)
    seed = create_model("conv_ae")
    assert choice.best_conv_ae(seed, "cuda", mode="infer", batch_size=2) == (seed, None)


def test_training_records_the_path_and_why(fresh_cache, tmp_path) -> None:
    from aedenoise.config import validate_config
    from aedenoise.data.sources import TensorData
    from aedenoise.training.loop import train

    g = torch.Generator().manual_seed(0)
    data = TensorData(train_x=torch.rand(64, 1, 28, 28, generator=g), val_x=torch.rand(16, 1, 28, 28, generator=g))
    config = validate_config({"epochs": 1, "batch_size": 16, "threads": 1, "noise": {"sigma": 0.2, "clip": True}})
    result = train(config, tmp_path / "run", progress=False, data=data)
    assert result.fast_path in _available() and "per training step of 16" in result.fast_path_reason
    modes = sorted(e["mode"] for e in json.loads(choice.cache_file().read_text()).values())
    assert modes == ["train"]  # validation runs on the training path: nothing else measured


def test_a_near_tie_keeps_the_preferred_path() -> None:
    assert choice.pick({"native": 2.1, "parity": 2.0, "nn": 5.0}) == "native"  # within the margin: the kernel
    assert choice.pick({"native": 2.5, "parity": 2.0, "nn": 5.0}) == "parity"  # clearly slower: not the kernel
    assert choice.pick({"native": 9.0, "parity": 8.0, "nn": 5.0}) == "nn"
    assert choice.pick({"parity": 5.2, "nn": 5.0}) == "parity"


def test_batches_share_a_measurement_and_tiny_ones_are_not_measured(fresh_cache, monkeypatch) -> None:
    model = create_model("conv_ae")
    choice.choose_conv_ae_path(model, mode="infer", batch_size=20, threads=1)
    choice.choose_conv_ae_path(model, mode="infer", batch_size=32, threads=1)  # the same bucket: no new entry
    assert [e["shape"][0] for e in json.loads(choice.cache_file().read_text()).values()] == [32]

    def no_measuring(*args, **kwargs):
        raise AssertionError("too small to be worth measuring")

    monkeypatch.setattr(choice, "measure", no_measuring)
    tiny = choice.choose_conv_ae_path(model, mode="infer", batch_size=2, threads=1)
    assert tiny.path == _available()[0] and "too small" in tiny.reason


def test_an_unwritable_cache_still_chooses(tmp_path, monkeypatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # every write below it fails
    picked = choice.choose_conv_ae_path(create_model("conv_ae"), mode="infer", batch_size=8, threads=1)
    assert picked.path in _available() and "measured now" in picked.reason
