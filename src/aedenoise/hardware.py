"""The machine: which torch device to use, CPU feature flags, and whether bfloat16 is native."""

from __future__ import annotations

import platform

import torch

from aedenoise.errors import ConfigError

#: CPU flags (as Linux names them) of instructions that multiply bfloat16 natively.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_feature_line() -> str:
    """The CPU's feature flags as ``/proc/cpuinfo`` lists them (Linux), else the processor name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: Vector extensions worth naming beside a speed (Linux flag names).
VECTOR_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "avx2", "fma", "avx", "sse4_2", "asimd", "sve")


def cpu_description() -> str:
    """The CPU's model name and its vector extensions, e.g. ``AMD EPYC (avx512f, avx512_bf16, avx2, fma)``.

    For every speed a run reports: the same code runs several times faster or slower
    from one CPU to the next.
    """
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "CPU part")) and ":" in line:
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    flags = set(cpu_feature_line().split())
    return f"{name} ({', '.join(f for f in VECTOR_FLAGS if f in flags) or 'no vector extensions listed'})"


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast is likely to be faster than float32 on ``device``.

    CUDA: a GPU with bfloat16 support. CPU: an x86 CPU with AVX512-BF16 or AMX (read
    from ``/proc/cpuinfo``, so Linux only); elsewhere the conversions cost more than they save.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(BF16_CPU_FLAGS & set(cpu_feature_line().split()))
    return False


def resolve_device(name: str, *, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device
