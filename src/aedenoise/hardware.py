"""What the machine can do fast: CPU feature flags and native bfloat16."""

from __future__ import annotations

import platform

import torch

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
