"""``aedenoise adapt`` end to end (aedenoise.cli.adapt, aedenoise.training.adapt) with tiny models and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aedenoise.pretrained as pretrained
import fake_pretrained
from aedenoise.cli import main
from aedenoise.io import write_image
from aedenoise.models import create_model, load_checkpoint, read_metadata, save_checkpoint
from aedenoise.training.adapt import STATE, state_dir

FAST = ["--patch", "16", "--batch", "2", "--val-every", "2", "--no-progress", "--threads", "1"]


def _noisy_png(path: Path, *, size: tuple[int, int] = (48, 48), seed: int = 0, color: bool = False) -> Path:
    """A smooth image plus Gaussian noise of 25/255, 8-bit."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    clean = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    shape = (h, w, 3) if color else (h, w)
    noisy = (clean[..., None] if color else clean) + 25 / 255 * rng.standard_normal(shape)
    Image.fromarray((np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(autouse=True)
def _toy_models_pass_the_noise_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy start models here are not denoisers: what they "remove" is image structure, which is
    correlated, so the correlated-noise check (tested on its own below) is off for the other tests."""
    if "correlated" not in request.node.name:
        monkeypatch.setattr("aedenoise.training.adapt_checks.CORRELATION_LIMIT", 1.01)


@pytest.fixture
def start(tmp_path: Path) -> Path:
    """A tiny gray U-Net (reads a noise level) with weights large enough that the output follows the input."""
    model = create_model("unet", in_channels=1, widths=(4, 8), blocks=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    save_checkpoint(tmp_path / "start.safetensors", model)
    return tmp_path / "start.safetensors"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_adapt_writes_a_checkpoint_with_its_story_that_denoise_takes(tmp_path: Path, start: Path, capsys) -> None:
    images = [_noisy_png(tmp_path / f"n{k}.png", seed=k) for k in range(2)]
    out = tmp_path / "mine.safetensors"
    assert main(["adapt", *map(str, images), "--out", str(out), "--from", str(start), "--steps", "4", *FAST]) == 0
    meta = read_metadata(out)
    assert meta["adapted_from"]["name"] == str(start) and len(meta["adapted_from"]["sha256"]) == 64
    assert meta["objective"] == {"kind": "neighbor2neighbor", "gamma": 2.0, "sigma": None}
    assert (meta["image_count"], meta["images"], meta["steps"]) == (2, ["n0.png", "n1.png"], 4)
    assert meta["best_score"] <= meta["start_score"] and meta["seconds"] > 0 and meta["cpu"]
    assert [step for step, _ in meta["history"]] == [0, 2, 4]
    assert (state_dir(out) / "config.json").is_file() and (state_dir(out) / STATE).is_file()
    assert "--sigma auto" in capsys.readouterr().out
    denoised = tmp_path / "d.png"
    assert main(["denoise", str(images[0]), "--model", str(out), "--sigma", "auto", "-o", str(denoised), "--no-progress"]) == 0
    assert denoised.is_file()


def test_resume_continues_from_the_saved_step(tmp_path: Path, start: Path, capsys) -> None:
    image = _noisy_png(tmp_path / "n.png")
    out, straight = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    args = [str(image), "--from", str(start), *FAST]
    assert main(["adapt", *args, "--out", str(out), "--steps", "3"]) == 0
    assert main(["adapt", *args, "--out", str(out), "--steps", "6", "--resume"]) == 0
    assert "resuming at step 3" in capsys.readouterr().err
    assert main(["adapt", *args, "--out", str(straight), "--steps", "6"]) == 0
    assert read_metadata(out)["steps"] == 6
    assert [s for s, _ in read_metadata(out)["history"]] == [0, 2, 3, 4, 6]  # step 3: where the first run ended
    assert _same(_weights(state_dir(out) / STATE), _weights(state_dir(straight) / STATE))  # the steps of one run


def test_resume_refuses_other_settings_and_a_stopped_run_needs_resume_or_overwrite(tmp_path: Path, start: Path, capsys) -> None:
    image = _noisy_png(tmp_path / "n.png")
    out = tmp_path / "a.safetensors"
    args = [str(image), "--from", str(start), "--out", str(out), *FAST]
    assert main(["adapt", *args, "--steps", "2"]) == 0
    out.unlink()  # as if stopped before the output was written
    assert main(["adapt", *args, "--steps", "2"]) == 2
    assert "add --resume to continue it, or --overwrite" in capsys.readouterr().err
    assert main(["adapt", *args, "--steps", "4", "--resume", "--lr", "0.01"]) == 2
    assert "cannot resume another adaptation (it differs in: lr)" in capsys.readouterr().err
    assert main(["adapt", *args, "--steps", "2", "--overwrite"]) == 0


def test_the_guard_keeps_the_start_model_when_the_score_gets_worse(tmp_path: Path, start: Path, capsys) -> None:
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(_noisy_png(tmp_path / "n.png")), "--from", str(start), "--out", str(out), "--steps", "4",
                 "--lr", "10", *FAST]) == 0  # a step far too large: every score is worse
    assert _same(_weights(out), _weights(start)) and read_metadata(out)["improved"] is False
    captured = capsys.readouterr()
    assert "holds the start model" in captured.err and "no improvement" in captured.out


def test_a_constant_image_keeps_the_start_model(tmp_path: Path, start: Path, capsys) -> None:
    image = tmp_path / "flat.png"
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(image)
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(image), "--from", str(start), "--out", str(out), "--steps", "4", *FAST]) == 0
    assert _same(_weights(out), _weights(start)) and read_metadata(out)["steps"] == 0
    assert "no noise to learn from" in capsys.readouterr().err


def test_zero_budget_exits_2(tmp_path: Path, start: Path, capsys) -> None:
    image = _noisy_png(tmp_path / "n.png")
    for budget in (["--steps", "0"], ["--minutes", "0"]):
        assert main(["adapt", str(image), "--from", str(start), "--out", str(tmp_path / "a.safetensors"), *budget]) == 2
        assert "a budget of zero leaves nothing to do" in capsys.readouterr().err


def test_refuses_to_overwrite_an_input_shipped_weights_or_an_existing_output(tmp_path: Path, start: Path, capsys) -> None:
    image = _noisy_png(tmp_path / "n.png")
    disguised = tmp_path / "img.safetensors"  # an input image under a checkpoint's name
    disguised.write_bytes(image.read_bytes())
    assert main(["adapt", str(disguised), "--from", str(start), "--out", str(disguised), *FAST]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    shipped = Path(pretrained.__file__).parent / "gray-blind.safetensors"
    assert main(["adapt", str(image), "--from", str(start), "--out", str(shipped), *FAST]) == 2
    assert "shipped weights' folder" in capsys.readouterr().err
    existing = tmp_path / "x.safetensors"
    existing.write_bytes(b"keep me")
    assert main(["adapt", str(image), "--from", str(start), "--out", str(existing), *FAST]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and existing.read_bytes() == b"keep me"


def test_mixed_gray_and_color_images_are_an_error_naming_the_odd_ones(tmp_path: Path, start: Path, capsys) -> None:
    gray = [_noisy_png(tmp_path / f"g{k}.png", seed=k) for k in range(2)]
    color = _noisy_png(tmp_path / "c.png", color=True)
    assert main(["adapt", *map(str, gray), str(color), "--from", str(start), "--out", str(tmp_path / "a.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "gray and color images mixed; the color one(s): c.png" in err
    assert main(["adapt", str(color), "--from", str(start), "--out", str(tmp_path / "a.safetensors")]) == 2
    assert "takes gray images but these are color" in capsys.readouterr().err


def test_unreadable_files_are_skipped_and_none_left_is_an_error(tmp_path: Path, start: Path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = _noisy_png(tmp_path / "good.png")
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(good), str(bad), "--from", str(start), "--out", str(out), "--steps", "2", *FAST]) == 0
    assert f"skipped {bad}: not a PNG" in capsys.readouterr().err and read_metadata(out)["images"] == ["good.png"]
    assert main(["adapt", str(bad), "--from", str(start), "--out", str(tmp_path / "b.safetensors"), *FAST]) == 2
    assert "none of the 1 input file(s) could be read" in capsys.readouterr().err


def test_a_small_image_shrinks_the_patch_and_a_tiny_one_is_an_error(tmp_path: Path, start: Path, capsys) -> None:
    small = _noisy_png(tmp_path / "small.png", size=(40, 40))
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(small), "--from", str(start), "--out", str(out), "--steps", "2", "--patch", "64",
                 "--no-progress", "--threads", "1"]) == 0
    assert "patch 64 -> 20 pixels" in capsys.readouterr().err and read_metadata(out)["adapt"]["patch_size"] == 20
    tiny = _noisy_png(tmp_path / "tiny.png", size=(12, 12))
    assert main(["adapt", str(tiny), "--from", str(start), "--out", str(tmp_path / "b.safetensors")]) == 2
    assert "tiny.png: 12x12 pixels is too small" in capsys.readouterr().err


def test_default_start_is_the_shipped_photo_model_for_the_images_channels(tmp_path: Path, monkeypatch) -> None:
    fake_pretrained.install(monkeypatch, tmp_path / "shipped")  # toy-gray: conv_ae, the gray default
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(_noisy_png(tmp_path / "n.png")), "--out", str(out), "--steps", "2", *FAST]) == 0
    assert read_metadata(out)["adapted_from"]["name"] == "toy-gray" and read_metadata(out)["model"]["name"] == "conv_ae"


def test_ctrl_c_saves_the_state_and_resume_finishes_as_one_run_would(tmp_path: Path, start: Path, monkeypatch, capsys) -> None:
    from aedenoise.training.selfsupervised import Neighbor2Neighbor

    image = _noisy_png(tmp_path / "n.png")
    out, straight = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    args = [str(image), "--from", str(start), *FAST]
    loss, calls = Neighbor2Neighbor.loss, []

    def interrupted(self, *a):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 4:  # Ctrl-C during step 4 (1-based)
            raise KeyboardInterrupt
        return loss(self, *a)

    monkeypatch.setattr(Neighbor2Neighbor, "loss", interrupted)
    assert main(["adapt", *args, "--out", str(out), "--steps", "5"]) == 130
    assert "--resume continues" in capsys.readouterr().err and not out.exists()
    assert read_metadata(state_dir(out) / STATE)["state"]["step"] == 3
    monkeypatch.setattr(Neighbor2Neighbor, "loss", loss)
    assert main(["adapt", *args, "--out", str(out), "--steps", "5", "--resume"]) == 0
    assert main(["adapt", *args, "--out", str(straight), "--steps", "5"]) == 0
    assert _same(_weights(state_dir(out) / STATE), _weights(state_dir(straight) / STATE))


def test_every_page_of_a_tiff_stack_is_a_training_image(tmp_path: Path, start: Path) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    stack = tmp_path / "stack.tif"
    pages = (128 + 25 * rng.standard_normal((3, 40, 40))).clip(0, 255).astype(np.uint8)
    tifffile.imwrite(stack, pages, photometric="minisblack")  # three gray pages
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(stack), "--from", str(start), "--out", str(out), "--steps", "2", *FAST]) == 0
    assert read_metadata(out)["images"] == [f"stack.tif (page {k})" for k in (1, 2, 3)]


def test_correlated_noise_is_detected_in_what_the_start_model_removes() -> None:
    """What a denoiser removes from independent noise is about white; from noise shared by
    neighbours it is correlated, which the self-supervised objectives cannot remove."""
    import torch.nn.functional as F

    from aedenoise.training.adapt_checks import CORRELATION_LIMIT, removed_noise_correlation

    class RemovesKnown(torch.nn.Module):  # x_hat = y - removed: "removes" exactly the given noise
        def __init__(self, removed: torch.Tensor) -> None:
            super().__init__()
            self.removed = removed

        def forward(self, y: torch.Tensor, sigma: object = None) -> torch.Tensor:
            return y - self.removed[: y.shape[0]]

    g = torch.Generator().manual_seed(0)
    y = torch.rand(20, 3, 32, 32, generator=g)
    white = torch.randn(20, 3, 32, 32, generator=g) * 0.05
    shared = F.avg_pool2d(F.pad(white, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    assert abs(removed_noise_correlation(RemovesKnown(white), y, None)) < 0.05 < CORRELATION_LIMIT
    assert removed_noise_correlation(RemovesKnown(shared), y, None) > 0.5 > CORRELATION_LIMIT


def test_adapt_refuses_correlated_noise_unless_forced(tmp_path: Path, capsys) -> None:
    import torch.nn.functional as F

    start = create_model("dncnn", in_channels=1, depth=3, width=8)  # residual: removes what its layers output
    with torch.no_grad():
        for p in start.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.3)
    save_checkpoint(tmp_path / "start.safetensors", start)
    g = torch.Generator().manual_seed(1)
    noise = F.avg_pool2d(F.pad(torch.randn(1, 1, 72, 72, generator=g) * 0.3, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    write_image(tmp_path / "blotchy.png", (0.5 + noise[0]).clamp(0, 1), bit_depth=16)
    args = ["adapt", str(tmp_path / "blotchy.png"), "--from", str(tmp_path / "start.safetensors"), "--steps", "2",
            "--no-progress", "--patch", "32"]
    assert main([*args, "--out", str(tmp_path / "a.safetensors")]) == 2
    assert "correlated between neighbouring pixels" in capsys.readouterr().err
    assert not (tmp_path / "a.safetensors").exists()
    assert main([*args, "--out", str(tmp_path / "b.safetensors"), "--force"]) == 0
    captured = capsys.readouterr()
    assert "adapting anyway (--force)" in captured.out + captured.err


def test_a_small_gain_of_the_score_keeps_the_start_model(tmp_path: Path, start: Path, monkeypatch, capsys) -> None:
    """The objectives' scores are not PSNR: a gain below MIN_GAIN is not trusted."""
    import sys

    module = sys.modules["aedenoise.training.adapt"]  # (the package exports a function of the same name)
    images = [str(_noisy_png(tmp_path / f"n{k}.png", seed=k)) for k in range(2)]
    monkeypatch.setattr(module, "MIN_GAIN", 0.0)
    assert main(["adapt", *images, "--from", str(start), "--out", str(tmp_path / "a.safetensors"), "--steps", "6", *FAST]) == 0
    meta = read_metadata(tmp_path / "a.safetensors")
    assert meta["improved"] and meta["best_score"] < meta["start_score"]
    assert not _same(_weights(tmp_path / "a.safetensors"), _weights(start))
    monkeypatch.setattr(module, "MIN_GAIN", 0.999)
    assert main(["adapt", *images, "--from", str(start), "--out", str(tmp_path / "b.safetensors"), "--steps", "6", *FAST]) == 0
    assert "improved by only" in capsys.readouterr().err
    assert not read_metadata(tmp_path / "b.safetensors")["improved"]
    assert _same(_weights(tmp_path / "b.safetensors"), _weights(start))
