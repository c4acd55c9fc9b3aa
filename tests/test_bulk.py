"""`aedenoise denoise --engine ray`: the same bytes as the local driver, bad files reported, resumable after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'aedenoise[ray]')")

from aedenoise.cli import main  # noqa: E402
from aedenoise.io import write_image  # noqa: E402


def _images(folder: Path, count: int, *, size: tuple[int, int] = (32, 40), seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    paths = []
    for i in range(count):
        c, bits, suffix = (3, 8, ".png") if i % 3 == 0 else (1, 16, ".png") if i % 3 == 1 else (3, 8, ".jpg")
        h, w = size[0] + 4 * (i % 4), size[1] + 4 * (i % 5)
        x = (torch.linspace(0.2, 0.8, w).expand(c, h, w) + 0.1 * torch.randn(c, h, w, generator=g)).clamp(0, 1)
        paths.append(write_image(folder / f"img{i:02d}{suffix}", x, bit_depth=bits))
    return paths


def test_ray_writes_the_local_drivers_bytes_and_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    inputs = _images(tmp_path / "in", 24)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "local"), "--no-progress"]) == 1
    local = capsys.readouterr()
    assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "ray"), "--no-progress",
                 "--engine", "ray", "--ray-actors", "2"]) == 1  # some file failed: exit 1, as locally
    out = capsys.readouterr()
    assert "done: 24 written, 0 skipped, 1 failed, of 25" in out.out
    assert "broken.png" in out.err and "cannot decode" in out.err
    assert "done: 24 written, 0 skipped, 1 failed, of 25" in local.out
    for path in inputs:
        assert (tmp_path / "ray" / path.name).read_bytes() == (tmp_path / "local" / path.name).read_bytes(), path.name
    assert not (tmp_path / "ray" / "broken.png").exists()


def test_a_killed_run_resumes_and_writes_every_file_once(tmp_path: Path) -> None:
    inputs = _images(tmp_path / "in", 30, size=(160, 200), seed=1)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "aedenoise", "denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
           "--no-progress", "--engine", "ray", "--ray-actors", "1", "--sigma", "25", "--model", "color-blind"]
    first = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and first.poll() is None:
            if len(list((tmp_path / "out").glob("*.*"))) >= 3:
                break
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and everything it started
        first.wait(timeout=60)
    # The killed driver's actors stop within seconds (Ray ends a job whose driver died); a file in
    # flight then still lands whole, atomically. Wait until nothing more appears, then resume.
    seen, quiet_since = None, time.monotonic()
    while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
        now = sorted(p.name for p in (tmp_path / "out").iterdir())
        if now != seen:
            seen, quiet_since = now, time.monotonic()
        time.sleep(0.2)
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")}
    assert 0 < len(written) < len(inputs), "the run was to be stopped part way"
    for leftover in (tmp_path / "out").glob(".*"):
        leftover.unlink()  # a killed atomic write leaves at most its hidden temporary file, never a partial output
    again = subprocess.run([*cmd, "--skip-existing"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(written)} skipped" in again.stdout
    outputs = {p.name for p in (tmp_path / "out").iterdir()}
    assert outputs == {p.name for p in inputs}
    assert all((tmp_path / "out" / n).stat().st_mtime_ns == t for n, t in written.items())  # not written twice
    local = tmp_path / "local"
    assert main(["denoise", str(tmp_path / "in"), "-o", str(local), "--no-progress", "--sigma", "25",
                 "--model", "color-blind"]) == 0
    for path in inputs:
        assert (tmp_path / "out" / path.name).read_bytes() == (local / path.name).read_bytes(), path.name
