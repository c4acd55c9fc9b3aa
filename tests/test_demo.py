"""`aedenoise demo` and the Fashion-MNIST set-up step behind `make demo` / `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aedenoise.cli import main
from aedenoise.io import read_image, write_image
from aedenoise.report.photo import photo_demo, sample_photo, side_by_side

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_cleans_the_shipped_photo_and_shows_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "color-blind" in out and str(tmp_path / "demo" / "side-by-side.png") in out and "report.md" in out
    clean, noisy, denoised = (read_image(tmp_path / "demo" / f"{n}.png").data for n in ("clean", "noisy", "denoised"))
    assert torch.equal(clean, read_image(sample_photo()).data)
    mse = lambda a: float(((a - clean) ** 2).mean())  # noqa: E731
    assert 20 < 10 * torch.log10(torch.tensor(1 / mse(noisy))) < 21.5  # sigma 25/255, clipped to 8 bit
    assert 10 * torch.log10(torch.tensor(mse(noisy) / mse(denoised))) > 8  # the shipped default gains > 8 dB here
    pair = read_image(tmp_path / "demo" / "side-by-side.png").data
    assert pair.shape == (3, clean.shape[1], 3 * clean.shape[2] + 16)
    assert torch.equal(pair[:, :, : clean.shape[2]], clean)  # pixels as they are: no rescaling for display
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "| denoised |" in report and "side-by-side.png" in report


def test_same_seed_same_files_other_seed_other_noise(tmp_path: Path) -> None:
    a = photo_demo(tmp_path / "a", seed=3)
    b = photo_demo(tmp_path / "b", seed=3)
    c = photo_demo(tmp_path / "c", seed=4)
    assert (tmp_path / "a" / "noisy.png").read_bytes() == (tmp_path / "b" / "noisy.png").read_bytes()
    assert a.denoised_psnr == b.denoised_psnr
    assert (tmp_path / "a" / "noisy.png").read_bytes() != (tmp_path / "c" / "noisy.png").read_bytes()
    assert abs(a.denoised_psnr - c.denoised_psnr) < 0.5


def test_a_gray_photo_of_ones_own_uses_the_gray_default(tmp_path: Path) -> None:
    gray = read_image(sample_photo()).data.mean(0, keepdim=True)[:, :96, :128]
    write_image(tmp_path / "mine.png", gray)
    r = photo_demo(tmp_path / "out", image=tmp_path / "mine.png", sigma=15 / 255)
    assert r.model == "gray-blind" and r.denoised_psnr > r.noisy_psnr + 4
    assert read_image(tmp_path / "out" / "denoised.png").channels == 1


def test_bad_demo_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "o"), "--sigma", "0"]) == 1
    assert "--sigma" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["demo", "--out", str(tmp_path / "o"), "--image", str(tmp_path / "broken.png")]) == 1
    assert "broken.png" in capsys.readouterr().err


def test_side_by_side_repeats_gray_and_keeps_values() -> None:
    g, c = torch.rand(1, 4, 5), torch.rand(3, 4, 5)
    row = side_by_side([g, c])
    assert row.shape == (3, 4, 5 + 8 + 5) and torch.equal(row[:, :, :5], g.expand(3, -1, -1))
    assert torch.equal(row[:, :, 13:], c) and bool((row[:, :, 5:13] == 1).all())


# -- tools/fashion-mnist.sh ------------------------------------------------------------------------


def _run_setup(tmp_path: Path, data_dir: Path | None) -> subprocess.CompletedProcess[str]:
    """The script with no apt-get and no network in reach: only what it needs on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("id", "cat"):
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(bin_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("AEDENOISE_FASHION_MNIST", None)
    if data_dir is not None:
        env["AEDENOISE_FASHION_MNIST"] = str(data_dir)
    return subprocess.run(["/bin/sh", str(ROOT / "tools" / "fashion-mnist.sh"), sys.executable],
                          capture_output=True, text=True, env=env, timeout=120)


def test_setup_script_is_quiet_when_the_data_is_there(tmp_path: Path) -> None:
    folder = tmp_path / "fmnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / f"{name}.gz").write_bytes(b"")
    done = _run_setup(tmp_path, folder)
    assert done.returncode == 0 and done.stderr == ""


def test_setup_script_names_what_is_wrong_with_a_given_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = _run_setup(tmp_path, tmp_path / "empty")
    assert done.returncode == 1 and str(tmp_path / "empty") in done.stderr and "lacks" in done.stderr
    assert "Traceback" not in done.stderr


def test_setup_script_says_what_to_run_when_it_cannot_get_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aedenoise.data import fashion_mnist

    if fashion_mnist.SYSTEM_DIR.is_dir():
        pytest.skip("the Debian package is installed here: the script finds it")
    done = _run_setup(tmp_path, None)
    assert done.returncode == 1
    assert "apt-get install dataset-fashion-mnist" in done.stderr and "AEDENOISE_FASHION_MNIST" in done.stderr
    assert "Traceback" not in done.stderr
