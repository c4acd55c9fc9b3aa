"""The compiled ConvAE kernel computes what the nn layers compute, and degrades to the slower path."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from aedenoise.models import create_model
from aedenoise.models.conv_ae_fast import FastConvAE, fast_conv_ae, kernel_threads
from aedenoise.models.conv_ae_native import NativeConvAEFunction, native_applies, native_library


def _model(channels: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("conv_ae", in_channels=channels)
    with torch.no_grad():  # non-default weights, so that no ReLU is silently dead everywhere
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def _lib(channels: int):
    lib = native_library((channels, 16, 8, 8, 16))
    if lib is None:
        pytest.skip("no C++ compiler here: the compiled kernel is unavailable")
    return lib


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return list(model.parameters())


@pytest.mark.parametrize(("channels", "h", "w"), [(1, 28, 28), (3, 16, 20), (1, 8, 12), (1, 4, 4), (3, 4, 8)])
@pytest.mark.parametrize("threads", [1, 3])
def test_outputs_and_gradients_match_the_nn_layers(channels: int, h: int, w: int, threads: int) -> None:
    lib = _lib(channels)
    model = _model(channels)
    g = torch.Generator().manual_seed(1)
    y = torch.rand(5, channels, h, w, generator=g)
    x = torch.rand(5, channels, h, w, generator=g)
    ref = model(y)
    out = NativeConvAEFunction.apply(lib, threads, y, *_params(model))
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-6)
    ref_grads = torch.autograd.grad(((ref - x) ** 2).mean(), _params(model))
    grads = torch.autograd.grad(((out - x) ** 2).mean(), _params(model))
    for a, b in zip(ref_grads, grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * float(a.abs().max()))


def test_thread_count_changes_only_the_summation_order() -> None:
    lib = _lib(1)
    model = _model(1, seed=4)
    y = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    outs, grads = [], []
    for threads in (1, 2, 7):
        out = NativeConvAEFunction.apply(lib, threads, y, *_params(model))
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().mean(), _params(model)))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])  # each image on one thread
    for a, b in zip(grads[0], grads[2]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    again = NativeConvAEFunction.apply(lib, 2, y, *_params(model))
    assert all(torch.equal(a, b) for a, b in zip(grads[1], torch.autograd.grad(again.square().mean(), _params(model))))


def test_inference_without_saved_activations_gives_the_same_output() -> None:
    lib = _lib(3)
    model = _model(3, seed=6)
    y = torch.rand(4, 3, 12, 16)
    with torch.no_grad():
        plain = NativeConvAEFunction.apply(lib, 2, y, *_params(model))
    saved = NativeConvAEFunction.apply(lib, 2, y, *_params(model))
    assert saved.requires_grad and not plain.requires_grad
    assert torch.equal(plain, saved.detach())


def test_fast_path_uses_the_kernel_and_can_be_told_not_to() -> None:
    _lib(1)
    model = _model(1)
    fast, parity = fast_conv_ae(model), fast_conv_ae(model, native=False)
    assert isinstance(fast, FastConvAE) and fast.path == "native" and parity.path == "parity"
    y = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(fast(y), parity(y), rtol=0, atol=2e-6)
    assert not native_applies(y.double()) and not native_applies(y[:, :, :, :26])  # float64, odd sizes: never the kernel


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEDENOISE_NATIVE", "0")
    native_library.cache_clear()
    try:
        assert native_library((1, 16, 8, 8, 16)) is None
        assert fast_conv_ae(create_model("conv_ae")).path == "parity"
    finally:
        native_library.cache_clear()


def test_a_failing_compiler_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # exits 1: every build fails
    native_library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="kernel is unavailable"):
            assert native_library((1, 16, 8, 8, 16)) is None
        model = create_model("conv_ae")
        y = torch.rand(2, 1, 8, 8)
        torch.testing.assert_close(fast_conv_ae(model)(y), model(y), rtol=0, atol=1e-6)
        assert not list(tmp_path.rglob("*.so"))  # nothing half-written left behind
    finally:
        native_library.cache_clear()


def test_kernel_threads_moves_the_threads_to_the_kernel_and_back() -> None:
    _lib(1)
    fast = fast_conv_ae(create_model("conv_ae"))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with kernel_threads(fast):
            assert torch.get_num_threads() == 1 and fast.threads == 2
            y = torch.rand(4, 1, 8, 8)
            torch.testing.assert_close(fast(y), fast.model(y), rtol=0, atol=2e-6)
        assert torch.get_num_threads() == 2 and fast.threads is None
        plain = create_model("conv_ae")
        with kernel_threads(plain):  # not a FastConvAE: nothing changes
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_threads() -> None:
    """The pool's workers do not exist in a fork: the child must start its own, not wait forever."""
    _lib(1)
    fast = fast_conv_ae(create_model("conv_ae"))
    fast.threads = 2
    y = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        want = fast(y)  # the parent's workers are running now
        pid = os.fork()
        if pid == 0:  # child: same result, then leave without running pytest's teardown
            os._exit(0 if torch.equal(fast(y), want) else 3)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung in the kernel")


def test_builds_unused_for_a_month_are_pruned(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "aedenoise" / "native"
    folder.mkdir(parents=True)
    stale, recent, other = (folder / n for n in ("conv_ae-1-16-8-8-16-old.so", "conv_ae-1-16-8-8-16-new.so",
                                                 "conv_ae-3-16-8-8-16-old.so"))
    for f in (stale, recent, other):
        f.write_bytes(b"")
    month_ago = time.time() - 31 * 86400
    os.utime(stale, (month_ago, month_ago))
    os.utime(other, (month_ago, month_ago))
    native_library.cache_clear()
    try:
        if native_library((1, 16, 8, 8, 16)) is None:
            pytest.skip("no C++ compiler here")
        assert not stale.exists() and recent.exists() and other.exists()  # other channels: not this build's to judge
    finally:
        native_library.cache_clear()


@pytest.mark.parametrize("arch", ["x86-64-v3", "x86-64"])  # AVX2 + FMA (16 registers, 8 lanes); SSE2 (16, 4 lanes)
def test_builds_for_other_vector_widths_compute_the_same(arch: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The kernel's narrower-register code (smaller tiles, 8 or 4 lanes) is exact too, not just the AVX-512 build."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 -march levels")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("AEDENOISE_NATIVE_ARCH", arch)
    native_library.cache_clear()
    try:
        for channels, h, w in ((1, 28, 28), (3, 12, 16)):
            lib = _lib(channels)
            model = _model(channels, seed=channels)
            g = torch.Generator().manual_seed(2)
            y, x = torch.rand(3, channels, h, w, generator=g), torch.rand(3, channels, h, w, generator=g)
            ref = model(y)
            out = NativeConvAEFunction.apply(lib, 2, y, *_params(model))
            torch.testing.assert_close(out, ref, rtol=0, atol=2e-6)
            ref_grads = torch.autograd.grad(((ref - x) ** 2).mean(), _params(model))
            grads = torch.autograd.grad(((out - x) ** 2).mean(), _params(model))
            for a, b in zip(ref_grads, grads):
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * float(a.abs().max()))
        assert len(list(tmp_path.rglob("*.so"))) == 2  # built here, for this -march, one per channel count
    finally:
        native_library.cache_clear()
