"""``aedenoise train`` / ``aedenoise report`` end to end on a tiny fake Fashion-MNIST, and their errors."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from aedenoise.cli import main
from aedenoise.data import fashion_mnist as fm

N_TRAIN, N_TEST = 352, 40


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _images(n: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:28, 0:28]
    c, w = rng.uniform(4, 24, (n, 2, 1, 1)), rng.uniform(3, 7, (n, 1, 1))
    return (255 * np.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / (2 * w**2))).astype(np.uint8)


@pytest.fixture
def fake_fmnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    contents = {
        fm.TRAIN_IMAGES: _idx(_images(N_TRAIN, rng)), fm.TRAIN_LABELS: _idx(np.arange(N_TRAIN) % 10),
        fm.TEST_IMAGES: _idx(_images(N_TEST, rng)), fm.TEST_LABELS: _idx(np.arange(N_TEST) % 10),
    }
    folder = tmp_path / "fmnist"
    folder.mkdir()
    for name, data in contents.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    monkeypatch.setattr(fm, "EXPECTED", {n: fm.Expected(hashlib.md5(d).hexdigest(), len(d)) for n, d in contents.items()})
    monkeypatch.setattr(fm, "MIRRORS", ())
    return folder


def _one_error_line(capsys: pytest.CaptureFixture, code: int) -> str:
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aedenoise: error:"), err
    return lines[0]


def test_train_then_report_end_to_end(tmp_path: Path, fake_fmnist: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text("[data]\nval_count = 32\n")
    out = tmp_path / "run"
    code = main(["train", "--preset", "fmnist-seed", "--config", str(cfg), "--out", str(out), "--epochs", "3",
                 "--batch-size", "16", "--lr", "0.01", "--threads", "1", "--data-dir", str(fake_fmnist), "--no-progress"])
    stdout = capsys.readouterr().out
    assert code == 0 and f"Report: {out / 'report.md'}" in stdout
    config = json.loads((out / "config.json").read_text())
    assert (config["epochs"], config["batch_size"], config["optim"]["lr"], config["data"]["val_count"]) == (3, 16, 0.01, 32)
    assert (config["noise"]["sigma"], config["noise"]["clip"]) == (0.2, True)
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert test["images"] == N_TEST and test["psnr"] > test["noisy_psnr"] + 2 and 0 < test["noisy_ssim"] < test["ssim"] <= 1
    assert metrics["train_seconds"] > 0 and len(metrics["history"]) == 3 and metrics["model"]["parameters"] == 3217
    assert metrics["ssim_variant"].startswith("Gaussian window") and metrics["grid_indices"] == list(range(10))
    rows = (out / "test_scores.csv").read_text().splitlines()
    assert rows[0] == "index,class,psnr,ssim,noisy_psnr,noisy_ssim" and len(rows) == N_TEST + 1
    assert abs(np.mean([float(r.split(",")[2]) for r in rows[1:]]) - test["psnr"]) < 1e-4
    for name in ("report.md", "comparison.png", "curves.png"):
        (out / name).unlink()
    assert main(["report", str(out)]) == 0
    assert all((out / n).is_file() for n in ("report.md", "comparison.png", "curves.png"))
    assert f"{test['psnr']:.2f}" in (out / "report.md").read_text()


def test_unknown_preset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = _one_error_line(capsys, main(["train", "--preset", "nope", "--out", str(tmp_path / "r")]))
    assert "unknown preset 'nope'" in line and "fmnist-seed" in line


@pytest.mark.parametrize(("value", "message"), [("abc", "--epochs must be an integer"), ("0", "epochs")])
def test_bad_epochs(tmp_path: Path, capsys: pytest.CaptureFixture, value: str, message: str) -> None:
    assert message in _one_error_line(capsys, main(["train", "--epochs", value, "--out", str(tmp_path / "r")]))


def test_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file").write_text("")
    line = _one_error_line(capsys, main(["train", "--out", str(tmp_path / "file" / "run")]))
    assert "cannot write the run folder" in line and "--out" in line


def test_unknown_model_and_report_of_a_non_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "unknown model 'nope'" in _one_error_line(capsys, main(["train", "--model", "nope", "--out", str(tmp_path / "r")]))
    assert "no metrics.json" in _one_error_line(capsys, main(["report", str(tmp_path)]))
