"""``aedenoise denoise`` and the inference helpers behind it, on real files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aedenoise.cli import main
from aedenoise.denoising import adapt_channels, denoise_image, load_denoiser
from aedenoise.denoising.tiling import denoise_whole
from aedenoise.errors import ConfigError
from aedenoise.io import read_image, write_image
from aedenoise.models import create_model
from aedenoise.models.checkpoint import save_checkpoint


def _scaled(model):
    """Weights scaled up so the output visibly depends on the input (a fresh model is ~constant)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.fixture
def gray_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "models" / "gray.safetensors"
    save_checkpoint(path, _scaled(create_model("conv_ae")))
    return path


@pytest.fixture
def color_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    path = tmp_path / "models" / "color.safetensors"
    save_checkpoint(path, _scaled(create_model("conv_ae", in_channels=3)))
    return path


def _image(channels: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(channels, h, w, generator=torch.Generator().manual_seed(seed))


def _run(*argv: str | Path) -> int:
    return main(["denoise", *map(str, argv), "--no-progress", "--device", "cpu"])


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with a good RGB PNG, a 16-bit gray PNG, a zero-byte .png and a text file named .jpg."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "good.png", _image(3, 37, 50, 1))
    write_image(folder / "deep.png", _image(1, 41, 29, 2), bit_depth=16)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image\n")
    return folder


def test_folder_with_bad_files(photos: Path, tmp_path: Path, color_ckpt: Path, capsys) -> None:
    out = tmp_path / "out"
    assert _run(photos, "-o", out, "--model", color_ckpt) == 1
    assert sorted(p.name for p in out.iterdir()) == ["deep.png", "good.png"]
    err = capsys.readouterr().err
    assert "empty.png" in err and "notes.jpg" in err and "good.png" not in err
    deep = read_image(out / "deep.png")
    assert deep.bit_depth == 16 and deep.channels == 1
    good = read_image(out / "good.png")
    assert good.bit_depth == 8 and good.channels == 3
    # the written pixels are the model's output (color model on RGB; gray via repeat/average)
    model = load_denoiser(color_ckpt)
    src = read_image(photos / "good.png")
    expected = denoise_image(model, src.data, sigma=None)
    assert (good.data - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert (good.data - src.data).abs().max() > 0.05  # it did change the image


def test_bit_depth_override(photos: Path, tmp_path: Path, gray_ckpt: Path) -> None:
    out = tmp_path / "out8"
    assert _run(photos / "deep.png", "-o", out, "--model", gray_ckpt, "--bit-depth", "8") == 0
    assert read_image(out / "deep.png").bit_depth == 8


def test_output_equal_to_input_is_refused(photos: Path, gray_ckpt: Path, capsys) -> None:
    before = (photos / "good.png").read_bytes()
    assert _run(photos / "good.png", "-o", photos / "good.png", "--model", gray_ckpt, "--overwrite") == 2
    assert _run(photos, "-o", photos, "--model", gray_ckpt, "--overwrite") == 2
    assert (photos / "good.png").read_bytes() == before
    assert "input" in capsys.readouterr().err


def test_existing_output_needs_overwrite(photos: Path, tmp_path: Path, gray_ckpt: Path) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"keep me")
    assert _run(photos / "good.png", "-o", target, "--model", gray_ckpt) == 2
    assert target.read_bytes() == b"keep me"
    assert _run(photos / "good.png", "-o", target, "--model", gray_ckpt, "--overwrite") == 0
    assert read_image(target).data.shape == (3, 37, 50)


def test_skip_existing_resumes(photos: Path, tmp_path: Path, gray_ckpt: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "good.png").write_bytes(b"from an earlier run")
    assert _run(photos / "good.png", photos / "deep.png", "-o", out, "--model", gray_ckpt, "--skip-existing") == 0
    assert (out / "good.png").read_bytes() == b"from an earlier run"
    assert read_image(out / "deep.png").bit_depth == 16
    assert "skipped" in capsys.readouterr().out


def test_output_file_with_several_inputs_is_an_error(photos: Path, tmp_path: Path, gray_ckpt: Path) -> None:
    assert _run(photos / "good.png", photos / "deep.png", "-o", tmp_path / "one.png", "--model", gray_ckpt) == 2
    assert not (tmp_path / "one.png").exists()


def test_glob_and_default_names(photos: Path, gray_ckpt: Path, capsys) -> None:
    assert _run(photos / "*.png", "--model", gray_ckpt) == 1  # empty.png fails, the others are written
    assert (photos / "good.denoised.png").is_file() and (photos / "deep.denoised.png").is_file()
    assert not (photos / "notes.denoised.jpg").exists()
    capsys.readouterr()
    # a second run leaves the earlier outputs out and refuses to overwrite them
    assert _run(photos / "*.png", "--model", gray_ckpt) == 2
    assert "already exist" in capsys.readouterr().err
    assert not (photos / "good.denoised.denoised.png").exists()


def test_alpha_is_preserved(tmp_path: Path, gray_ckpt: Path) -> None:
    alpha = (_image(1, 30, 42, 9) * 255).round() / 255
    write_image(tmp_path / "a.png", _image(3, 30, 42, 8), alpha=alpha)
    assert _run(tmp_path / "a.png", "-o", tmp_path / "b.png", "--model", gray_ckpt) == 0
    out = read_image(tmp_path / "b.png")
    assert out.alpha is not None and torch.equal(out.alpha, alpha)


def test_recursive_mirrors_folders(tmp_path: Path, gray_ckpt: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.png", _image(1, 20, 20, 3))
    write_image(src / "sub" / "b.png", _image(1, 20, 24, 4))
    assert _run(src, "-r", "-o", src / "clean", "--model", gray_ckpt) == 0
    assert (src / "clean" / "a.png").is_file() and (src / "clean" / "sub" / "b.png").is_file()
    # the output folder inside the input folder is not taken as input next time
    assert _run(src, "-r", "-o", src / "clean", "--model", gray_ckpt, "--overwrite") == 0
    assert not (src / "clean" / "clean").exists()


def test_usage_errors(photos: Path, tmp_path: Path, gray_ckpt: Path, monkeypatch, capsys) -> None:
    for bad in ("abc", "300", "-1", "nan"):
        with pytest.raises(SystemExit) as exc:
            _run(photos / "good.png", "--model", gray_ckpt, "--sigma", bad)
        assert exc.value.code == 2
    assert _run(tmp_path / "missing.png", "--model", gray_ckpt) == 2
    assert _run(photos / "good.png", "--model", "no-such-model") == 2
    assert "unknown model" in capsys.readouterr().err
    unet = tmp_path / "unet.safetensors"
    save_checkpoint(unet, create_model("unet", widths=(4, 8), blocks=1))
    assert _run(photos / "good.png", "-o", tmp_path / "u", "--model", unet) == 2
    assert "--sigma" in capsys.readouterr().err
    assert _run(photos / "good.png", "-o", tmp_path / "u", "--model", unet, "--sigma", "25") == 0

    def no_default(channels: int, *, noise: str = "gaussian") -> str:
        raise ConfigError("nothing shipped")

    monkeypatch.setattr("aedenoise.denoising.selection.default_model_for", no_default)
    assert _run(photos / "good.png", "-o", tmp_path / "d") == 2
    assert "--model" in capsys.readouterr().err


# -- the library behind it ------------------------------------------------------------------


def test_gray_model_on_color_is_per_channel() -> None:
    torch.manual_seed(3)
    gray = _scaled(create_model("conv_ae")).eval()
    rgb = _image(3, 33, 45, 5)
    x_hat = denoise_image(gray, rgb, sigma=None, tile=32, overlap=16)
    for c in range(3):
        assert (x_hat[c] - denoise_whole(gray, rgb[c : c + 1])[0]).abs().max() < 1e-4


def test_color_model_on_gray_repeats_and_averages() -> None:
    torch.manual_seed(4)
    color = _scaled(create_model("conv_ae", in_channels=3)).eval()
    g = _image(1, 27, 31, 6)
    x_hat = denoise_image(color, g, sigma=None)
    assert x_hat.shape == (1, 27, 31)
    assert (x_hat - denoise_whole(color, g.expand(3, -1, -1)).mean(0, keepdim=True)).abs().max() < 1e-5
    assert adapt_channels(color, 3) is color


def test_denoise_image_keeps_image_file_fields(tmp_path: Path, gray_ckpt: Path) -> None:
    write_image(tmp_path / "x.png", _image(1, 16, 16, 1), alpha=torch.ones(1, 16, 16), bit_depth=16)
    img = read_image(tmp_path / "x.png")
    out = denoise_image(load_denoiser(gray_ckpt), img, sigma=None)
    assert out.alpha is img.alpha and out.bit_depth == 16 and out.data.shape == img.data.shape


def test_load_denoiser_unknown_lists_choices() -> None:
    with pytest.raises(ConfigError, match="checkpoint file"):
        load_denoiser("definitely-not-a-model")
    with pytest.raises(ConfigError, match="architecture"):
        load_denoiser("conv_ae")


# -- the shipped defaults, end to end (a fake index: tests/fake_pretrained.py) -------------------------


def test_no_model_picks_the_gray_or_color_default_and_estimates_sigma(tmp_path: Path, monkeypatch, capsys) -> None:
    from aedenoise.denoising import default_model_for
    from aedenoise.noise.level import estimate_sigma
    from aedenoise.pretrained import load_pretrained

    from fake_pretrained import install

    install(monkeypatch, tmp_path / "weights")
    assert (default_model_for(1), default_model_for(3)) == ("toy-gray", "toy-color")
    src = tmp_path / "in"
    write_image(src / "gray.png", _image(1, 30, 34, 11))
    write_image(src / "color.png", _image(3, 26, 38, 12))
    out = tmp_path / "out"
    assert _run(src / "gray.png", src / "color.png", "-o", out) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, weights in (("gray.png", "toy-gray"), ("color.png", "toy-color")):
        y = read_image(src / name).data
        model = load_pretrained(weights)
        sigma = float(estimate_sigma(y[None])[0]) if model.uses_sigma else None
        expected = denoise_image(model, y, sigma=sigma)
        got = read_image(out / name).data
        assert got.shape == y.shape and (got - expected).abs().max() <= 0.5 / 255 + 1e-6
        other = load_pretrained("toy-color" if weights == "toy-gray" else "toy-gray")
        assert (got - denoise_image(other, y, sigma=0.1)).abs().max() > 0.05  # not the other default
        line = next(line for line in lines if line.startswith(str(src / name)))
        assert (", sigma " in line) == model.uses_sigma  # the estimated level is reported where it is used
    assert load_pretrained("toy-color").uses_sigma  # so the color case above exercised --sigma auto


def test_missing_color_default_fails_only_the_color_files(tmp_path: Path, monkeypatch, capsys) -> None:
    from fake_pretrained import install

    install(monkeypatch, tmp_path / "weights", color_default=False)
    write_image(tmp_path / "gray.png", _image(1, 20, 20, 13))
    write_image(tmp_path / "color.png", _image(3, 20, 20, 14))
    assert _run(tmp_path / "gray.png", tmp_path / "color.png", "-o", tmp_path / "out") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gray.png"]
    err = capsys.readouterr().err
    assert "color.png" in err and "no default color denoiser" in err


def test_shipped_weights_name_as_model(tmp_path: Path, monkeypatch) -> None:
    from aedenoise.pretrained import load_pretrained

    from fake_pretrained import install

    install(monkeypatch, tmp_path / "weights")
    write_image(tmp_path / "a.png", _image(1, 28, 28, 15))
    assert _run(tmp_path / "a.png", "-o", tmp_path / "b.png", "--model", "toy-fmnist") == 0
    expected = denoise_image(load_pretrained("toy-fmnist"), read_image(tmp_path / "a.png").data, sigma=None)
    assert (read_image(tmp_path / "b.png").data - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_photos_get_the_camera_default_and_a_given_level_the_gaussian_one(tmp_path: Path, monkeypatch, capsys) -> None:
    from aedenoise.denoising import default_model_for, run_jobs
    from aedenoise.denoising.files import Job
    from aedenoise.pretrained import load_pretrained

    from fake_pretrained import install

    install(monkeypatch, tmp_path / "weights", camera=True)
    assert default_model_for(3, noise="camera") == "toy-camera"
    assert default_model_for(3, noise="gaussian") == default_model_for(3) == "toy-color"
    assert default_model_for(1, noise="camera") == "toy-gray"  # no gray camera model: the gray default
    with pytest.raises(ConfigError, match="noise kind"):
        default_model_for(3, noise="poisson")
    write_image(tmp_path / "photo.png", _image(3, 24, 32, 21))
    y = read_image(tmp_path / "photo.png").data

    def output(*options: str) -> torch.Tensor:
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}.png"
        assert _run(tmp_path / "photo.png", "-o", out, *options) == 0
        return read_image(out).data

    camera = denoise_image(load_pretrained("toy-camera"), y, sigma=None)
    gaussian = denoise_image(load_pretrained("toy-color"), y, sigma=25 / 255)
    assert (camera - gaussian).abs().max() > 0.05
    for options, expected in (((), camera), (("--sigma", "auto"), camera), (("--sigma", "25"), gaussian),
                              (("--noise", "gaussian", "--sigma", "25"), gaussian), (("--noise", "camera", "--sigma", "25"), camera)):
        assert (output(*options) - expected).abs().max() <= 0.5 / 255 + 1e-6, options
    assert _run(tmp_path / "photo.png", "-o", tmp_path / "x.png", "--model", "toy-color", "--noise", "camera") == 2
    assert "--noise" in capsys.readouterr().err
    cache: dict = {}
    run_jobs([Job(tmp_path / "photo.png", tmp_path / "j1.png")], sigma="auto", default_models=cache)
    run_jobs([Job(tmp_path / "photo.png", tmp_path / "j2.png")], sigma=0.1, default_models=cache)
    assert sorted(cache) == [(3, "camera"), (3, "gaussian")]


def test_the_camera_preset_tells_a_gaussian_default_at_least_its_floor(tmp_path: Path, monkeypatch) -> None:
    """Real camera noise hides from the white-noise estimator: with no camera model shipped, the
    Gaussian default is told at least CAMERA_MIN_SIGMA on photos (auto); never with a level given."""
    from aedenoise.denoising.selection import CAMERA_MIN_SIGMA
    from aedenoise.noise.level import estimate_sigma
    from aedenoise.pretrained import load_pretrained

    from fake_pretrained import install

    install(monkeypatch, tmp_path / "weights")  # no camera model: toy-color (reads sigma) serves photos
    ramp = torch.linspace(0.2, 0.8, 48).reshape(1, 1, 48).expand(3, 40, 48).contiguous()  # smooth: estimate ~0
    write_image(tmp_path / "smooth.png", ramp)
    y = read_image(tmp_path / "smooth.png").data
    assert float(estimate_sigma(y[None])[0]) < CAMERA_MIN_SIGMA[3]
    model = load_pretrained("toy-color")
    for i, (options, level) in enumerate((((), CAMERA_MIN_SIGMA[3]),
                                          (("--noise", "gaussian"), float(estimate_sigma(y[None])[0])),
                                          (("--sigma", "3"), 3 / 255))):
        out = tmp_path / f"o{i}.png"
        assert _run(tmp_path / "smooth.png", "-o", out, *options) == 0
        expected = denoise_image(model, y, sigma=level)
        assert (read_image(out).data - expected).abs().max() <= 0.5 / 255 + 1e-6, options
