"""The seed autoencoder's forward and backward passes as compiled C++ (CPU, float32).

:func:`native_library` compiles ``native/conv_ae.cpp`` (with ``native/blocks.h``) for the machine it runs on (a
C++ compiler and ``-march=native``, or ``$AEDENOISE_NATIVE_ARCH``) the first time it is asked for a channel
configuration, caches the shared library under ``$XDG_CACHE_HOME/aedenoise/native``
(default ``~/.cache``), and loads it with :mod:`ctypes`. No Python headers, build
tools or network are needed; without a compiler, or with ``AEDENOISE_NATIVE=0``, it
returns ``None`` and :class:`~aedenoise.models.conv_ae_fast.FastConvAE` uses its
matrix-product formulation instead (same function, slower).

The kernel splits a batch between ``threads`` POSIX threads, one image at a time per
thread, and adds the per-thread weight gradients in a fixed order: the same inputs
and thread count give the same numbers. Outputs and gradients equal the ``nn`` layers'
up to float32 rounding (``tests/test_conv_ae_native.py``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor

from aedenoise.atomic import atomic_path
from aedenoise.errors import AedenoiseError
from aedenoise.hardware import cpu_feature_line
from aedenoise.paths import user_cache_dir

SOURCE = Path(__file__).with_name("native") / "conv_ae.cpp"  # includes blocks.h beside it
HEADERS = (SOURCE.with_name("blocks.h"),)
ENV_SWITCH = "AEDENOISE_NATIVE"  # "0": never compile or load the kernel
ENV_ARCH = "AEDENOISE_NATIVE_ARCH"  # the compiler's -march (default "native"; e.g. x86-64-v3 for an AVX2 build)
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread")
MAX_THREADS = 64  # the kernel's limit (MAX_THREADS in native/blocks.h)
STALE_DAYS = 30  # builds of a channel configuration not loaded for this long are deleted
MAX_PIXELS = 512 * 512  # larger images: the matrix-product path (the kernel's per-thread scratch grows with H * W)


def _compiler() -> str | None:
    for name in filter(None, (os.environ.get("CXX"), "c++", "g++", "clang++")):
        path = shutil.which(name)
        if path:
            return path
    return None


class NativeLibrary:
    """A loaded kernel for one channel configuration ``(cin, c1, c2, c3, c4)``."""

    def __init__(self, path: Path, channels: tuple[int, ...]) -> None:
        self.path = path
        self.channels = channels
        lib = ctypes.CDLL(str(path))
        ptr, i32 = ctypes.c_void_p, ctypes.c_int
        lib.cae_num_params.restype = i32
        lib.cae_padded.argtypes = [i32, i32, ctypes.POINTER(i32)]
        lib.cae_forward.argtypes = [i32, i32, i32, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i32]
        lib.cae_forward.restype = i32
        lib.cae_backward.argtypes = [i32, i32, i32, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i32]
        lib.cae_backward.restype = i32
        self.lib = lib
        self.num_params = int(lib.cae_num_params())

    def padded(self, h: int, w: int) -> tuple[int, int, int, int]:
        """Per-channel float counts of the saved activations a1, a2, a3, a4 (padded layouts)."""
        n = (ctypes.c_int * 4)()
        self.lib.cae_padded(h, w, n)
        return int(n[0]), int(n[1]), int(n[2]), int(n[3])


def _arch() -> str:
    return os.environ.get(ENV_ARCH, "").strip() or "native"


def _build(channels: tuple[int, ...], target: Path, compiler: str) -> None:
    defines = [f"-D{k}={v}" for k, v in zip(("CIN", "C1", "C2", "C3", "C4"), channels)]
    with atomic_path(target) as tmp:  # renamed into place only after a successful build
        for arch in ([f"-march={_arch()}"], []):  # some compilers (or CPUs) reject -march=native
            cmd = [compiler, *FLAGS, *arch, *defines, str(SOURCE), "-o", str(tmp)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                return
        raise RuntimeError(f"{compiler} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


@functools.lru_cache(maxsize=None)
def native_library(channels: tuple[int, int, int, int, int]) -> NativeLibrary | None:
    """The kernel for ``(cin, c1, c2, c3, c4)``, compiled on first use; ``None`` where unavailable.

    Unavailable means: ``AEDENOISE_NATIVE=0``, not Linux/macOS, no C++ compiler, or a
    failed build (a warning says why, once). The cache key covers the source, the
    flags, the compiler's version and the CPU's features, so a changed machine or
    source builds afresh.
    """
    if os.environ.get(ENV_SWITCH, "1").strip() in ("0", "false", "no", "off"):
        return None
    if os.name != "posix":
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
        parts = (SOURCE.read_bytes(), *(h.read_bytes() for h in HEADERS), " ".join(FLAGS), _arch(), version,
                 platform.machine(), cpu_feature_line(), repr(channels))
        key = hashlib.sha256(b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)).hexdigest()[:16]
        target = user_cache_dir("native") / f"conv_ae-{'-'.join(map(str, channels))}-{key}.so"
        if not target.exists():
            _build(channels, target, compiler)
        lib = NativeLibrary(target, channels)
        os.utime(target)  # its modification time says when it was last loaded
        _prune(target, channels)
    except (OSError, RuntimeError, subprocess.SubprocessError, AedenoiseError) as err:
        warnings.warn(f"aedenoise: the compiled ConvAE kernel is unavailable ({err}); using the slower path",
                      RuntimeWarning, stacklevel=2)
        return None
    return lib


def _prune(keep: Path, channels: tuple[int, ...]) -> None:
    """Delete other builds for ``channels`` (older sources, compilers, CPUs) unused for STALE_DAYS."""
    cutoff = time.time() - STALE_DAYS * 86400
    for old in keep.parent.glob(f"conv_ae-{'-'.join(map(str, channels))}-*.so"):
        try:
            if old != keep and old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another process got there first, or a read-only cache: harmless


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class NativeConvAEFunction(torch.autograd.Function):
    """``ConvAE`` through the compiled kernel; arguments ``(lib, threads, y, w1, b1, ..., w5, b5)``."""

    @staticmethod
    def forward(ctx, lib: NativeLibrary, threads: int, y: Tensor, *params: Tensor) -> Tensor:  # type: ignore[override]
        bsz, cin, h, w = y.shape
        y = y.contiguous()
        params = tuple(p.detach().contiguous() for p in params)
        if cin != lib.channels[0] or sum(p.numel() for p in params) != lib.num_params:
            raise ValueError(f"kernel for channels {lib.channels} got a {cin}-channel batch or other weights")
        table = (ctypes.c_void_p * 10)(*(p.data_ptr() for p in params))
        out = y.new_empty(bsz, cin, h, w)
        save = any(ctx.needs_input_grad[3:])
        c1, c2, c3, c4 = lib.channels[1:]
        if save:
            sizes = lib.padded(h, w)
            acts = tuple(y.new_empty(bsz, c, n) for c, n in zip((c1, c2, c3, c4), sizes))
        else:
            acts = (None, None, None, None)
        status = lib.lib.cae_forward(bsz, h, w, y.data_ptr(), table, out.data_ptr(), *map(_ptr, acts), threads)
        if status:
            raise MemoryError(f"the compiled ConvAE kernel failed (status {status}) on a {tuple(y.shape)} batch")
        if save:
            ctx.lib, ctx.threads = lib, threads
            ctx.save_for_backward(y, out, *acts, *params)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable  # the kernel's backward has no backward itself
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        y, out, a1, a2, a3, a4, *params = ctx.saved_tensors
        lib: NativeLibrary = ctx.lib
        bsz, _, h, w = y.shape
        threads = max(1, min(ctx.threads, bsz))
        table = (ctypes.c_void_p * 10)(*(p.data_ptr() for p in params))
        flat = torch.zeros(threads, lib.num_params)
        grad = grad.contiguous()
        status = lib.lib.cae_backward(bsz, h, w, y.data_ptr(), table, out.data_ptr(), a1.data_ptr(), a2.data_ptr(),
                                      a3.data_ptr(), a4.data_ptr(), grad.data_ptr(), flat.data_ptr(), threads)
        if status:
            raise MemoryError(f"the compiled ConvAE kernel failed (status {status}) in the backward pass")
        total = flat.sum(0) if threads > 1 else flat[0]
        grads, start = [], 0
        for p in params:
            grads.append(total[start : start + p.numel()].view_as(p))
            start += p.numel()
        return (None, None, None, *grads)


def native_applies(y: Tensor) -> bool:
    """Whether the kernel handles ``y``: float32 on the CPU, ``[B, C, H, W]``, H and W multiples of 4."""
    return (y.ndim == 4 and y.dtype == torch.float32 and y.device.type == "cpu" and y.shape[0] > 0
            and y.shape[-2] % 4 == 0 and y.shape[-1] % 4 == 0 and y.shape[-2] * y.shape[-1] <= MAX_PIXELS)
