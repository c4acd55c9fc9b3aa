"""Hardware probes: bfloat16 autocast only where the CPU multiplies bfloat16 natively."""

from __future__ import annotations

import pytest
import torch

from aedenoise import hardware


@pytest.mark.parametrize(
    ("flags", "native"),
    [("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
     ("flags\t\t: fpu avx2 amx_bf16 amx_tile", True),
     ("flags\t\t: fpu avx2 avx512f avx512bw", False),
     ("Features\t: fp asimd bf16", False),
     ("arm64", False)],
)
def test_native_bf16_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, flags: str, native: bool) -> None:
    monkeypatch.setattr(hardware, "cpu_feature_line", lambda: flags)
    assert hardware.native_bf16(torch.device("cpu")) is native
    assert hardware.native_bf16(torch.device("meta")) is False


def test_cpu_feature_line_is_text() -> None:
    line = hardware.cpu_feature_line()
    assert isinstance(line, str) and line
