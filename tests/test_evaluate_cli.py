"""``aedenoise evaluate``: the acceptance contract (JSON schema), output files, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from aedenoise.cli import main

from fake_pretrained import install

pytest.importorskip("aedenoise.classical", reason="the classical baselines provide the fast methods used here")


def write_dataset(folder: Path, n: int = 3, *, color: bool = False) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        yy, xx = np.mgrid[0:40, 0:44]
        img = 120 + 70 * np.sin(xx / (3.0 + i)) * np.cos(yy / 4.0) + rng.normal(0, 5, (40, 44))
        if color:
            img = np.stack([img, img[::-1], 255 - img], axis=-1)
        Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")
    (folder / "README.txt").write_text("not an image")
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "Tiny")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_acceptance_json_contract(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = write_dataset(tmp_path / "Other", n=2)
    out_json = tmp_path / "out.json"
    code, out, _ = run_cli(capsys, "--method", "gaussian", "--method", "median", "--data", str(tiny),
                           "--data", str(other), "--sigma", "25", "--sigma", "50", "--json", str(out_json))
    assert code == 0
    doc = json.loads(out_json.read_text())
    records = doc["results"]
    assert len(records) == 2 * 2 * 2
    assert {(r["method"], r["dataset"], r["sigma"]) for r in records} == {
        (m, d, s) for m in ("gaussian", "median") for d in ("Tiny", "Other") for s in (25, 50)}
    for r in records:
        assert {"method", "dataset", "sigma", "psnr", "ssim", "seconds_per_megapixel", "n_images"} <= set(r)
        assert r["n_images"] == (3 if r["dataset"] == "Tiny" else 2)
        assert 10 < r["psnr"] < 60 and 0 < r["ssim"] <= 1 and r["seconds_per_megapixel"] > 0
    by = {(r["method"], r["dataset"], r["sigma"]): r["psnr"] for r in records}
    assert by[("gaussian", "Tiny", 25)] > by[("gaussian", "Tiny", 50)]  # more noise, lower PSNR
    assert "| gaussian |" in out and "σ=25" in out  # the Markdown table on stdout


def test_out_dir_files_and_resume(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "results"
    args = ("--method", "gaussian", "--data", str(tiny), "--sigma", "15", "--sigma", "25", "--out", str(out_dir), "--limit", "2")
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and "cached" not in err
    for name in ("results.json", "results.md", "report.md", "per_image.csv"):
        assert (out_dir / name).is_file(), name
    rows = list(csv.DictReader((out_dir / "per_image.csv").open()))
    assert [r["image"] for r in rows] == ["im0.png", "im1.png"] * 2
    assert set(rows[0]) >= {"method", "dataset", "image", "sigma", "psnr", "ssim", "seconds"}
    assert json.loads((out_dir / "results.json").read_text())["results"][0]["n_images"] == 2
    report = (out_dir / "report.md").read_text()
    pytest.importorskip("matplotlib")
    figures = sorted(p.name for p in (out_dir / "figures").iterdir())
    assert figures == ["crops_Tiny_sigma15.png", "crops_Tiny_sigma25.png", "psnr_vs_sigma_Tiny.png"]
    assert all(f"figures/{f}" in report for f in figures)
    first = (out_dir / "results.json").read_text()
    code, _, err = run_cli(capsys, *args)  # rerun: everything comes from the cache, same numbers
    assert code == 0 and err.count("(cached)") == 4
    assert json.loads((out_dir / "results.json").read_text())["results"] == json.loads(first)["results"]


def test_bad_file_is_skipped_with_a_warning(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out_json = tmp_path / "o.json"
    code, _, err = run_cli(capsys, "--method", "gaussian", "--data", str(tiny), "--sigma", "25", "--json", str(out_json))
    assert code == 0 and "zz_broken.png" in err
    doc = json.loads(out_json.read_text())
    assert doc["results"][0]["n_images"] == 3 and doc["skipped"][0]["image"] == "zz_broken.png"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--method", "no_such_method"), "no_such_method"),
        (("--method", "gaussian", "--sigma", "abc"), "--sigma"),
        (("--method", "gaussian", "--sigma", "0"), "sigma"),
        (("--method", "gaussian", "--sigma", "300"), "sigma"),
        (("--method", "gaussian", "--limit", "0"), "--limit"),
        (("--method", "gaussian", "--device", "cuda:7"), "--device"),
    ],
)
def test_user_errors_exit_nonzero_with_one_line(
    args: tuple[str, ...], needle: str, tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, *args, "--data", str(tiny))
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err and err.startswith("aedenoise: error:")


def test_empty_or_missing_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        code, _, err = run_cli(capsys, "--method", "gaussian", "--data", str(folder))
        assert code == 1 and len(err.strip().splitlines()) == 1 and str(folder) in err


# -- shipped weights and --method auto (a fake index: tests/fake_pretrained.py) --------------------------


def scores(path: Path) -> dict[tuple[str, str, float], tuple[object, float, float]]:
    """(method, dataset, sigma) -> (weights, psnr, ssim) of a --json file."""
    return {(r["method"], r["dataset"], r["sigma"]): (r["weights"], r["psnr"], r["ssim"])
            for r in json.loads(path.read_text())["results"]}


def test_auto_uses_the_gray_default_on_gray_and_the_color_default_on_color(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(monkeypatch, tmp_path / "weights")
    color = write_dataset(tmp_path / "TinyColor", n=2, color=True)
    out_dir = tmp_path / "results"
    auto = ("--method", "auto", "--data", str(tiny), "--data", str(color), "--sigma", "25",
            "--json", str(tmp_path / "auto.json"), "--out", str(out_dir), "--no-figures")
    code, out, err = run_cli(capsys, *auto)
    assert code == 0 and "auto (toy-gray) Tiny/im0.png" in err and "auto (toy-color) TinyColor/im0.png" in err
    got = scores(tmp_path / "auto.json")
    assert set(got) == {("auto", "Tiny", 25), ("auto", "TinyColor", 25)}
    assert got[("auto", "Tiny", 25)][0] == "toy-gray" and got[("auto", "TinyColor", 25)][0] == "toy-color"
    # the very numbers of naming those weights directly (same noisy inputs, same model)
    for name, data in (("toy-gray", tiny), ("toy-color", color)):
        assert run_cli(capsys, "--method", name, "--data", str(data), "--sigma", "25",
                       "--json", str(tmp_path / f"{name}.json"))[0] == 0
        (direct,) = scores(tmp_path / f"{name}.json").items()
        assert direct[1][0] == name  # a shipped weights method names itself as its weights
        assert got[("auto", data.name, 25)] == direct[1]
    assert got[("auto", "Tiny", 25)][1] != got[("auto", "TinyColor", 25)][1]
    rows = list(csv.DictReader((out_dir / "per_image.csv").open()))
    assert {(r["dataset"], r["weights"]) for r in rows} == {("Tiny", "toy-gray"), ("TinyColor", "toy-color")}
    timing = json.loads((out_dir / "results.json").read_text())["timing"]
    assert [(t["method"], t["weights"], t["n_images"]) for t in timing] == [("auto", "toy-gray", 3),
                                                                           ("auto", "toy-color", 2)]
    code, _, err = run_cli(capsys, *auto)  # resume: every auto row comes from the cache
    assert code == 0 and err.count("(cached)") == 5
    assert scores(tmp_path / "auto.json") == got


def test_auto_without_a_default_for_the_data_is_a_clear_error(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(monkeypatch, tmp_path / "weights", color_default=False)
    color = write_dataset(tmp_path / "TinyColor", n=1, color=True)
    code, out, err = run_cli(capsys, "--method", "auto", "--data", str(tiny), "--data", str(color), "--sigma", "25")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "'auto'" in err and "no default color" in err and "TinyColor" in err
    # the gray dataset alone is fine
    code, out, _ = run_cli(capsys, "--method", "auto", "--data", str(tiny), "--sigma", "25")
    assert code == 0 and "| auto |" in out


def test_shipped_weights_and_classical_record_their_weights(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(monkeypatch, tmp_path / "weights")
    out_json = tmp_path / "o.json"
    code, _, _ = run_cli(capsys, "--method", "toy-fmnist", "--method", "gaussian", "--data", str(tiny),
                         "--sigma", "25", "--json", str(out_json))
    assert code == 0
    got = scores(out_json)
    assert got[("toy-fmnist", "Tiny", 25)][0] == "toy-fmnist" and got[("gaussian", "Tiny", 25)][0] is None
    code, _, err = run_cli(capsys, "--method", "toy-color", "--data", str(tiny), "--sigma", "25")
    assert code == 1 and "'toy-color'" in err and "color" in err  # a color model on a gray folder
