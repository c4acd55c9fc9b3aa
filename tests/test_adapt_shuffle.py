"""``aedenoise adapt --shuffle``: adapting on pixel-shuffled sub-images (correlated noise), end to end with tiny
models and images (aedenoise.cli.adapt, aedenoise.training.adapt_checks.plan_for_noise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aedenoise.cli import main
from aedenoise.models import create_model, load_checkpoint, read_metadata, save_checkpoint
from aedenoise.models.pixel_shuffle import PixelShuffled, wrap
from aedenoise.training.adapt import STATE, state_dir

FAST = ["--patch", "16", "--batch", "2", "--val-every", "2", "--no-progress", "--threads", "1"]
CHECKS = "aedenoise.training.adapt_checks"


def _noisy_png(path: Path, *, size: tuple[int, int] = (64, 64), seed: int = 0, noise: float = 25) -> Path:
    """A smooth gray image plus Gaussian noise of ``noise``/255, 8-bit."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    clean = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(clean + noise / 255 * rng.standard_normal((h, w)), 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


def _tiny_unet(seed: int = 0):
    model = create_model("unet", in_channels=1, widths=(4, 8), blocks=1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture(autouse=True)
def _toy_models_pass_the_noise_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in test_adapt.py: the toy start models remove image structure, which is correlated, so the check is
    off, except in the tests that set the correlations measured (``correlations``), which keep the real limit."""
    if "correlations" not in request.fixturenames:
        monkeypatch.setattr(f"{CHECKS}.CORRELATION_LIMIT", 1.01)


@pytest.fixture
def correlations(monkeypatch: pytest.MonkeyPatch):
    """``set({stride: rho})`` makes the measured correlation that at each stride; returns the strides asked, in order."""
    asked: list[int] = []

    def set_(by_stride: dict[int, float]) -> list[int]:
        def fake(plan) -> float:  # noqa: ANN001
            asked.append(plan.shuffle)
            return by_stride[plan.shuffle]

        monkeypatch.setattr(f"{CHECKS}._correlation", fake)
        return asked

    return set_


@pytest.fixture
def start(tmp_path: Path) -> Path:
    save_checkpoint(tmp_path / "start.safetensors", _tiny_unet())
    return tmp_path / "start.safetensors"


@pytest.fixture
def shuffled_start(tmp_path: Path) -> Path:
    """A pixel_shuffle start model (stride 2) around the tiny U-Net."""
    save_checkpoint(tmp_path / "ps2.safetensors", wrap(_tiny_unet(), 2))
    return tmp_path / "ps2.safetensors"


def _arch(path: Path) -> dict:
    return read_metadata(path)["model"]


def test_shuffle_2_writes_a_pixel_shuffle_model_that_denoise_and_evaluate_take(tmp_path: Path, start: Path, capsys) -> None:
    image = _noisy_png(tmp_path / "in" / "n.png")
    out = tmp_path / "mine.safetensors"
    assert main(["adapt", str(image), "--from", str(start), "--out", str(out), "--steps", "2", "--shuffle", "2", *FAST]) == 0
    captured = capsys.readouterr()
    assert "the model works on 2x2 pixel-shuffled sub-images" in captured.out
    arch = _arch(out)
    assert arch["name"] == "pixel_shuffle" and arch["args"]["stride"] == 2
    assert arch["args"]["inner"]["name"] == "unet"
    meta = read_metadata(out)
    assert meta["adapt"]["shuffle"] == 2 and meta["adapt"]["patch_size"] == 16  # of the 32x32 sub-images
    assert json.loads((state_dir(out) / "config.json").read_text())["shuffle"] == 2
    model = load_checkpoint(out).model
    assert isinstance(model, PixelShuffled) and model.shuffle_stride == 2
    assert set(model.inner.state_dict()) == set(_tiny_unet().state_dict())

    odd = _noisy_png(tmp_path / "odd.png", size=(45, 51), seed=3)  # not a multiple of the model's 4: padded
    for im in (image, odd):
        denoised = tmp_path / f"d-{im.stem}.png"
        assert main(["denoise", str(im), "--model", str(out), "--sigma", "auto", "-o", str(denoised), "--no-progress"]) == 0
        assert np.asarray(Image.open(denoised)).shape == np.asarray(Image.open(im)).shape

    paired = tmp_path / "Real"  # noisy/ + clean/, 46x50: not multiples of 4 either
    for k in range(2):
        _noisy_png(paired / "noisy" / f"p{k}.png", size=(46, 50), seed=10 + k)
        _noisy_png(paired / "clean" / f"p{k}.png", size=(46, 50), noise=0)
    out_json = tmp_path / "e.json"
    assert main(["evaluate", "--method", str(out), "--data", str(paired), "--json", str(out_json), "--threads", "1"]) == 0
    records = json.loads(out_json.read_text())["results"]
    mine = [r for r in records if r["method"] != "noisy"]
    assert len(mine) == 1 and mine[0]["dataset"] == "Real" and mine[0]["n_images"] == 2
    assert 10 < mine[0]["psnr"] < 60


def test_auto_uses_the_first_stride_where_the_noise_is_not_correlated(tmp_path: Path, start: Path, correlations, capsys) -> None:
    asked = correlations({1: 0.5, 2: 0.3, 3: 0.02, 4: 0.0})
    out = tmp_path / "a.safetensors"
    image = _noisy_png(tmp_path / "n.png", size=(96, 96))
    assert main(["adapt", str(image), "--from", str(start), "--out", str(out), "--steps", "2", *FAST]) == 0
    assert asked == [1, 2, 3]  # stops at the first stride below the limit
    assert _arch(out)["name"] == "pixel_shuffle" and _arch(out)["args"]["stride"] == 3
    assert read_metadata(out)["adapt"]["shuffle"] == 3
    captured = capsys.readouterr()
    assert "removes: 0.50" in captured.err
    assert "on the 2x2 pixel-shuffled sub-images: 0.30" in captured.err
    assert "on the 3x3 pixel-shuffled sub-images: 0.02" in captured.err
    assert "4x4" not in captured.err
    assert "adapting with r2r on the 3x3 pixel-shuffled sub-images" in captured.err
    assert "the model works on 3x3 pixel-shuffled sub-images" in captured.out


def test_auto_at_stride_1_when_not_correlated_writes_the_plain_model(tmp_path: Path, start: Path, correlations, capsys) -> None:
    asked = correlations({1: 0.05, 2: 0.0, 3: 0.0, 4: 0.0})
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(_noisy_png(tmp_path / "n.png")), "--from", str(start), "--out", str(out), "--steps", "2",
                 *FAST]) == 0
    assert asked == [1] and _arch(out)["name"] == "unet" and read_metadata(out)["adapt"]["shuffle"] == 1
    assert "sub-images" not in capsys.readouterr().out


def test_correlated_at_every_stride_is_refused_and_force_takes_the_lowest(tmp_path: Path, start: Path, correlations,
                                                                       capsys) -> None:
    asked = correlations({1: 0.5, 2: 0.3, 3: 0.2, 4: 0.25})
    image = _noisy_png(tmp_path / "n.png", size=(128, 128))
    out = tmp_path / "a.safetensors"
    args = ["adapt", str(image), "--from", str(start), "--steps", "2", *FAST]
    assert main([*args, "--out", str(out)]) == 2
    assert asked == [1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "correlated between neighbouring pixels" in err and "lowest correlation 0.20" in err
    assert "tried: the images, 2x2 sub-images, 3x3 sub-images, 4x4 sub-images" in err
    assert not out.exists() and not state_dir(out).exists()
    forced = tmp_path / "f.safetensors"
    assert main([*args, "--out", str(forced), "--force"]) == 0
    captured = capsys.readouterr()
    assert "adapting anyway (--force) on the 3x3 sub-images" in captured.err
    assert _arch(forced)["args"]["stride"] == 3 and read_metadata(forced)["adapt"]["shuffle"] == 3


def test_shuffle_1_tries_no_other_stride_and_correlated_noise_is_refused(tmp_path: Path, start: Path, correlations,
                                                                        capsys) -> None:
    asked = correlations({1: 0.5, 2: 0.0, 3: 0.0, 4: 0.0})
    image = _noisy_png(tmp_path / "n.png", size=(96, 96))
    out = tmp_path / "a.safetensors"
    args = ["adapt", str(image), "--from", str(start), "--steps", "2", "--shuffle", "1", *FAST]
    assert main([*args, "--out", str(out)]) == 2
    assert asked == [1]
    err = capsys.readouterr().err
    assert "correlated between neighbouring pixels" in err and "tried: the images;" in err and not out.exists()
    assert main([*args, "--out", str(out), "--force"]) == 0
    assert asked == [1, 1] and _arch(out)["name"] == "unet" and read_metadata(out)["adapt"]["shuffle"] == 1


def test_a_given_stride_is_the_only_one_tried(tmp_path: Path, start: Path, correlations, capsys) -> None:
    """--shuffle 3 where the noise looks correlated there: refused, even though stride 4 would pass."""
    asked = correlations({1: 0.0, 2: 0.0, 3: 0.5, 4: 0.0})
    image = _noisy_png(tmp_path / "n.png", size=(96, 96))
    args = ["adapt", str(image), "--from", str(start), "--steps", "2", "--shuffle", "3", *FAST]
    assert main([*args, "--out", str(tmp_path / "a.safetensors")]) == 2
    assert asked == [3] and "tried: 3x3 sub-images" in capsys.readouterr().err


def test_a_pixel_shuffle_start_adapts_at_its_own_stride(tmp_path: Path, shuffled_start: Path, correlations, capsys) -> None:
    asked = correlations({1: 0.5, 2: 0.05, 3: 0.0, 4: 0.0})  # its own stride is the only one tried
    image = _noisy_png(tmp_path / "n.png", size=(96, 96))
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(image), "--from", str(shuffled_start), "--out", str(out), "--steps", "2", *FAST]) == 0
    assert asked == [2]
    arch = _arch(out)
    assert arch["name"] == "pixel_shuffle" and arch["args"]["stride"] == 2 and arch["args"]["inner"]["name"] == "unet"
    assert read_metadata(out)["adapt"]["shuffle"] == 2
    assert "the model works on 2x2 pixel-shuffled sub-images" in capsys.readouterr().out
    assert main(["adapt", str(image), "--from", str(shuffled_start), "--out", str(tmp_path / "b.safetensors"),
                 "--shuffle", "3", "--steps", "2", *FAST]) == 2
    err = capsys.readouterr().err
    assert "works on 2x2 pixel-shuffled sub-images" in err and "--shuffle 2" in err and "not 3" in err
    assert not (tmp_path / "b.safetensors").exists()
    assert main(["adapt", str(image), "--from", str(shuffled_start), "--out", str(tmp_path / "c.safetensors"),
                 "--shuffle", "2", "--steps", "2", *FAST]) == 0
    assert asked == [2, 2]
    correlations({2: 0.5})  # correlated even on its sub-images: refused like any other
    assert main(["adapt", str(image), "--from", str(shuffled_start), "--out", str(tmp_path / "d.safetensors"),
                 "--steps", "2", *FAST]) == 2
    assert "tried: 2x2 sub-images;" in capsys.readouterr().err and not (tmp_path / "d.safetensors").exists()


def test_a_pixel_shuffle_start_is_kept_whole_when_nothing_improves(tmp_path: Path, shuffled_start: Path) -> None:
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(_noisy_png(tmp_path / "n.png")), "--from", str(shuffled_start), "--out", str(out),
                 "--steps", "2", "--lr", "10", *FAST]) == 0  # every step far too large: the start model is kept
    assert read_metadata(out)["improved"] is False and _arch(out) == _arch(shuffled_start)
    kept, given = load_checkpoint(out).model.state_dict(), load_checkpoint(shuffled_start).model.state_dict()
    assert set(kept) == set(given) and all(torch.equal(kept[k], given[k]) for k in kept)


def test_resume_refuses_another_stride(tmp_path: Path, start: Path, capsys) -> None:
    image = _noisy_png(tmp_path / "n.png", size=(96, 96))
    out = tmp_path / "a.safetensors"
    args = ["adapt", str(image), "--from", str(start), "--out", str(out), *FAST]
    assert main([*args, "--steps", "2", "--shuffle", "2"]) == 0
    assert read_metadata(state_dir(out) / STATE)["inputs"]["shuffle"] == 2
    capsys.readouterr()
    assert main([*args, "--steps", "4", "--shuffle", "3", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume another adaptation (it differs in: pixel-shuffle stride)" in err
    assert read_metadata(out)["steps"] == 2  # untouched
    assert main([*args, "--steps", "4", "--shuffle", "2", "--resume"]) == 0
    assert "resuming at step 2" in capsys.readouterr().err
    assert read_metadata(out)["steps"] == 4 and _arch(out)["args"]["stride"] == 2
    # --shuffle auto (the default) with --resume continues at the stride chosen before
    assert main([*args, "--steps", "6", "--resume"]) == 0
    assert "resuming at step 4" in capsys.readouterr().err
    assert read_metadata(out)["steps"] == 6 and _arch(out)["args"]["stride"] == 2


def test_images_too_small_for_a_larger_stride_are_noted_and_correlated_noise_refused(
        tmp_path: Path, start: Path, correlations, capsys) -> None:
    asked = correlations({1: 0.5, 2: 0.3, 3: 0.0, 4: 0.0})
    # 64x40: the 2x2 sub-images (32x20) hold two 16-pixel cells, the 3x3 ones (21x13) none
    image = _noisy_png(tmp_path / "n.png", size=(64, 40))
    args = ["adapt", str(image), "--from", str(start), "--steps", "2", *FAST]
    assert main([*args, "--out", str(tmp_path / "a.safetensors")]) == 2
    assert asked == [1, 2]
    err = capsys.readouterr().err
    assert "not trying 3x3 pixel-shuffled sub-images" in err and "Traceback" not in err
    assert "lowest correlation 0.30" in err and "tried: the images, 2x2 sub-images;" in err
    assert not (tmp_path / "a.safetensors").exists()
    assert main([*args, "--out", str(tmp_path / "f.safetensors"), "--force"]) == 0
    assert _arch(tmp_path / "f.safetensors")["args"]["stride"] == 2

    asked.clear()  # 40x40: already the 2x2 sub-images (20x20) hold only one cell
    small = _noisy_png(tmp_path / "s.png", size=(40, 40))
    args = ["adapt", str(small), "--from", str(start), "--steps", "2", *FAST]
    assert main([*args, "--out", str(tmp_path / "b.safetensors")]) == 2
    err = capsys.readouterr().err
    assert asked == [1] and "not trying 2x2 pixel-shuffled sub-images" in err and "too small" in err
    assert "correlated between neighbouring pixels" in err
    assert main([*args, "--out", str(tmp_path / "g.safetensors"), "--force"]) == 0
    assert _arch(tmp_path / "g.safetensors")["name"] == "unet"



def test_on_sub_images_the_default_objective_is_r2r_and_others_are_warned_about(
        tmp_path: Path, start: Path, correlations, capsys) -> None:
    """neighbor2neighbor and n2v learn from pixels `stride` apart on sub-images, which blurs; r2r's target
    is the same pixel, so --objective auto takes r2r there (and neighbor2neighbor on the images)."""
    correlations({1: 0.5, 2: 0.02})
    image = _noisy_png(tmp_path / "n.png", size=(96, 96))
    base = ["adapt", str(image), "--from", str(start), "--steps", "2", *FAST]
    assert main([*base, "--out", str(tmp_path / "a.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "adapting with r2r on the 2x2 pixel-shuffled sub-images" in err and "blurs" not in err
    meta = read_metadata(tmp_path / "a.safetensors")
    assert meta["objective"]["kind"] == "r2r" and meta["adapt"]["shuffle"] == 2 and meta["steps"] == 2
    assert main([*base, "--out", str(tmp_path / "b.safetensors"), "--objective", "neighbor2neighbor"]) == 0
    assert "blurs" in capsys.readouterr().err
    assert read_metadata(tmp_path / "b.safetensors")["objective"]["kind"] == "neighbor2neighbor"
    correlations({1: 0.0})
    assert main([*base, "--out", str(tmp_path / "c.safetensors")]) == 0
    assert read_metadata(tmp_path / "c.safetensors")["objective"]["kind"] == "neighbor2neighbor"
