"""Paired real-noise datasets in the benchmark: ``noisy/`` + ``clean/`` folders scored as they are."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from aedenoise import benchmark
from aedenoise.benchmark import Method, open_dataset, run_benchmark
from aedenoise.cli import main
from aedenoise.errors import ConfigError, DataError
from aedenoise.metrics import ssim
from aedenoise.models.base import Denoiser

pytest.importorskip("aedenoise.classical", reason="the classical baselines are the methods scored here")


def write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def clean_image(i: int, size: int = 48, *, color: bool = True) -> np.ndarray:
    """uint8 [H, W, 3] (or [H, W]): smooth shapes, so a filter beats the noisy input."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    img = 128 + 50 * np.sin(xx / (6.0 + i)) * np.cos(yy / 7.0) + 40 * (xx + yy > size)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return np.stack([img, np.flipud(img), 255 - img], axis=-1) if color else img


def noisy_of(clean: np.ndarray, seed: int, sigma: float = 15.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def write_pairs(root: Path, n: int = 3, *, size: int = 48, color: bool = True) -> Path:
    for i in range(n):
        x = clean_image(i, size, color=color)
        write_png(root / "clean" / f"p{i}.png", x)
        write_png(root / "noisy" / f"p{i}.png", noisy_of(x, 100 + i))
    (root / "README.txt").write_text("beside noisy/ and clean/: ignored")
    return root


@pytest.fixture
def paired(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "Real")


def read01(path: Path) -> Tensor:
    from PIL import Image

    a = np.asarray(Image.open(path), dtype=np.float32) / 255
    return torch.from_numpy(a)[None] if a.ndim == 2 else torch.from_numpy(a).permute(2, 0, 1)


class Recorder(Denoiser):
    """Returns its input; records each ``(y, sigma)``."""

    in_channels = None  # type: ignore[assignment]

    def __init__(self, *, uses_sigma: bool = True) -> None:
        super().__init__()
        self.uses_sigma = uses_sigma
        self.seen: list[tuple[Tensor, float | None]] = []

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        self.seen.append((y.clone(), None if sigma is None else float(sigma)))
        return y


def method(name: str, denoiser: Denoiser) -> Method:
    return Method(name=name, denoiser=denoiser, key=benchmark.method_key(name, denoiser))


def classical(name: str) -> Method:
    return method(name, benchmark.resolve_method(name).denoiser)


def test_paired_folder_is_detected_and_limit_takes_the_first_pairs(paired: Path, tmp_path: Path) -> None:
    d = open_dataset(paired)
    assert d.paired and d.name == "Real" and [p.name for p in d.paths] == ["p0.png", "p1.png", "p2.png"]
    assert d.clean_path("p1.png") == paired / "clean" / "p1.png" and d.noisy_path("p1.png") == paired / "noisy" / "p1.png"
    assert [p.name for p in open_dataset(paired, limit=2).paths] == ["p0.png", "p1.png"]
    assert not open_dataset(paired / "clean").paired  # a plain image folder stays what it was
    half = tmp_path / "Half"
    write_png(half / "noisy" / "a.png", clean_image(0))
    with pytest.raises(DataError, match="no clean/"):
        open_dataset(half)


def test_noisy_row_is_the_input_scored_as_it_is(paired: Path) -> None:
    rec = Recorder()
    result = run_benchmark([method("rec", rec)], [open_dataset(paired)], paired_sigmas=[10])
    noisy = [r for r in result.rows if r.method == "noisy"]
    assert [r.image for r in noisy] == ["p0.png", "p1.png", "p2.png"]
    for r in noisy:
        x, y = read01(paired / "clean" / r.image), read01(paired / "noisy" / r.image)
        mse = float(((y.double() - x.double()) ** 2).mean())
        assert r.psnr == pytest.approx(10 * math.log10(1 / mse), abs=1e-6)
        assert r.ssim == pytest.approx(float(ssim(y[None], x[None])[0]), abs=1e-9)
        assert (r.sigma, r.sigma_given, r.seconds) == ("real", None, 0.0)
    # no noise is added: the method got the noisy file itself, and the level given (10 / 255)
    for (y, s), r in zip(rec.seen, noisy):
        assert torch.equal(y[0], read01(paired / "noisy" / r.image)) and s == pytest.approx(10 / 255)
    records = {(r["method"], r["sigma_given"]): r for r in result.records()}
    assert set(records) == {("noisy", None), ("rec", 10.0)}
    assert records[("noisy", None)]["sigma"] == "real" and records[("noisy", None)]["n_images"] == 3
    # identity: the same score as the noisy row (its output is the 8-bit noisy image)
    assert records[("rec", 10.0)]["psnr"] == pytest.approx(records[("noisy", None)]["psnr"], abs=1e-9)
    assert [t["method"] for t in result.timing()] == ["rec"]  # the noisy row takes no time
    assert "real_noise" in result.protocol
    json.dumps(result.to_json())


def test_auto_level_is_the_estimate_and_a_filter_beats_the_noisy_row(paired: Path) -> None:
    uses, ignores = Recorder(), Recorder(uses_sigma=False)
    d = open_dataset(paired)
    result = run_benchmark([classical("gaussian"), method("uses", uses), method("ignores", ignores)], [d])
    assert result.paired_sigmas == ["auto"] and result.sigmas == []
    for (y, s), image in zip(uses.seen, ("p0.png", "p1.png", "p2.png")):
        want = benchmark.resolve_method("gaussian").denoiser  # any model that uses sigma: the same estimate
        from aedenoise.denoising import resolve_sigma

        assert s == pytest.approx(resolve_sigma(want, y[0], "auto"), rel=1e-6)
        assert 8 / 255 < s < 25 / 255  # the fixture's noise is 15 / 255 before 8-bit clipping
    assert [s for _, s in ignores.seen] == [None] * 3  # as aedenoise denoise: no level for a blind model
    psnr = {r["method"]: r["psnr"] for r in result.records()}
    assert psnr["gaussian"] > psnr["noisy"] + 1


def test_explicit_sigmas_are_the_levels_given_and_part_of_the_key(paired: Path, tmp_path: Path) -> None:
    rec = Recorder()
    result = run_benchmark([method("rec", rec)], [open_dataset(paired)], paired_sigmas=[10, 15, "auto"],
                           cache_dir=tmp_path / "cache")
    assert [(r["method"], r["sigma"], r["sigma_given"]) for r in result.records()] == [
        ("noisy", "real", None), ("rec", "real", 10.0), ("rec", "real", 15.0), ("rec", "real", "auto")]
    assert len({p.name for p in (tmp_path / "cache").iterdir()}) == 3  # one cache file per level given


def test_resume_reuses_paired_rows(paired: Path, tmp_path: Path) -> None:
    d, cache = open_dataset(paired), tmp_path / "cache"
    first = run_benchmark([classical("tv")], [d], paired_sigmas=["auto", 20], cache_dir=cache)
    counting = classical("tv")
    calls: list[int] = []
    counting.denoiser.register_forward_hook(lambda *_: calls.append(1))
    flags: list[tuple[str, bool]] = []
    again = run_benchmark([counting], [d], paired_sigmas=["auto", 20], cache_dir=cache,
                          progress=lambda r, c: flags.append((r.method, c)))
    assert calls == [] and again.rows == first.rows
    assert flags == [("noisy", False)] * 3 + [("tv", True)] * 6


def test_bad_files_in_a_paired_folder_are_warned_about_by_name(paired: Path) -> None:
    write_png(paired / "noisy" / "only_noisy.png", clean_image(5))
    write_png(paired / "clean" / "only_clean.png", clean_image(6))
    write_png(paired / "clean" / "z_size.png", clean_image(7))
    write_png(paired / "noisy" / "z_size.png", clean_image(7, size=40))
    write_png(paired / "clean" / "z_gray.png", clean_image(8))
    write_png(paired / "noisy" / "z_gray.png", clean_image(8, color=False))
    (paired / "noisy" / "notes.txt").write_text("not an image")
    (paired / "clean" / "sub").mkdir()
    (paired / "noisy" / "z_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    write_png(paired / "clean" / "z_broken.png", clean_image(9))
    warnings: list[str] = []
    result = run_benchmark([classical("gaussian")], [open_dataset(paired)], warn=warnings.append)
    expect = {"noisy/only_noisy.png": "no partner", "clean/only_clean.png": "no partner",
              "noisy/z_size.png": "differ", "noisy/z_gray.png": "differ", "noisy/notes.txt": "not an image",
              "clean/sub": "subfolder", "noisy/z_broken.png": "z_broken.png"}
    assert {s.image for s in result.skipped} == set(expect)
    for name, problem in expect.items():
        (msg,) = [w for w in warnings if name in w]
        assert problem in msg
    assert {r.image for r in result.rows} == {"p0.png", "p1.png", "p2.png"}
    assert all(r["n_images"] == 3 for r in result.records())


def test_no_valid_pairs_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "Unpaired"
    write_png(root / "noisy" / "a.png", clean_image(0))
    write_png(root / "clean" / "b.png", clean_image(1))
    with pytest.raises(DataError, match="Unpaired.*no noisy/clean pairs"):
        open_dataset(root)
    (root / "clean" / "b.png").rename(root / "clean" / "a.png")
    write_png(root / "clean" / "a.png", clean_image(0, size=32))  # the only pair does not match
    with pytest.raises(DataError, match="Unpaired.*could be scored"):
        run_benchmark([classical("gaussian")], [open_dataset(root)])


def test_auto_picks_the_camera_default_on_paired_and_gaussian_on_clean(
    paired: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_pretrained import install

    from aedenoise.denoising import selection

    install(monkeypatch, tmp_path / "weights")
    asked: list[tuple[int, str]] = []
    real = selection.default_model_for

    def spy(channels: int, *, noise: str = "gaussian") -> str:
        asked.append((channels, noise))
        return real(channels, noise=noise)

    monkeypatch.setattr(selection, "default_model_for", spy)
    clean_dir = tmp_path / "Clean"
    write_png(clean_dir / "a.png", clean_image(3))
    auto = benchmark.resolve_method("auto")
    result = run_benchmark([auto], [open_dataset(paired), open_dataset(clean_dir)], [25])
    assert asked == [(3, "camera"), (3, "gaussian")]
    assert {(r["dataset"], r["method"], r["weights"]) for r in result.records()} == {
        ("Real", "noisy", None), ("Real", "auto", "toy-color"), ("Clean", "auto", "toy-color")}
    camera, gaussian = auto.for_channels(3, noise="camera"), auto.for_channels(3, noise="gaussian")
    assert camera.denoiser is gaussian.denoiser  # loaded once
    # The camera preset tells a Gaussian-noise default at least CAMERA_MIN_SIGMA (its own cache key).
    assert camera.min_sigma == selection.CAMERA_MIN_SIGMA[3] and gaussian.min_sigma == 0
    assert camera.key != gaussian.key
    assert len(asked) == 2  # cached per (channels, noise)


def test_a_method_named_noisy_clashes_with_the_noisy_row(paired: Path) -> None:
    with pytest.raises(ConfigError, match="'noisy'"):
        run_benchmark([method("noisy", Recorder())], [open_dataset(paired)])


def test_cli_paired_and_clean_folders_with_out_and_json(
    paired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_dir = tmp_path / "Clean"
    write_png(clean_dir / "a.png", clean_image(4))
    out, out_json = tmp_path / "results", tmp_path / "o.json"
    args = ["evaluate", "--method", "gaussian", "--data", str(paired), "--data", str(clean_dir), "--sigma", "25",
            "--sigma", "auto", "--json", str(out_json), "--out", str(out)]
    assert main(args) == 0
    stdout, err = capsys.readouterr()
    records = json.loads(out_json.read_text())["results"]
    assert [(r["method"], r["dataset"], r["sigma"], r["sigma_given"]) for r in records] == [
        ("noisy", "Real", "real", None), ("gaussian", "Real", "real", 25.0), ("gaussian", "Real", "real", "auto"),
        ("gaussian", "Clean", 25.0, 25.0)]
    assert "Real/p0.png real noise: " in err and "real noise, sigma given auto" in err
    assert "| noisy |" in stdout and "σ auto (estimated)" in stdout and "σ=25 given" in stdout
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert {(r["method"], r["sigma"], r["sigma_given"]) for r in rows if r["dataset"] == "Real"} == {
        ("noisy", "real", ""), ("gaussian", "real", "25"), ("gaussian", "real", "auto")}
    assert {(r["sigma"], r["sigma_given"]) for r in rows if r["dataset"] == "Clean"} == {("25", "25")}
    report = (out / "report.md").read_text()
    assert "real noise (Real)" in report and "| noisy |" in (out / "results.md").read_text()
    pytest.importorskip("matplotlib")
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["crops_Clean_sigma25.png", "crops_Real_real_sigma25.png", "crops_Real_real_sigmaauto.png"]
    assert all(f"figures/{f}" in report for f in figures)
    assert main(args) == 0  # rerun: every method row comes from the cache
    _, err = capsys.readouterr()
    assert err.count("(cached)") == 7


def test_cli_sigma_auto_alone_needs_paired_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean_dir = tmp_path / "Clean"
    write_png(clean_dir / "a.png", clean_image(4))
    assert main(["evaluate", "--method", "gaussian", "--data", str(clean_dir), "--sigma", "auto"]) == 1
    assert "clean-image folders" in capsys.readouterr().err
