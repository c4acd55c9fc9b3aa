"""ONNX export of every shipped weight and of checkpoints; onnxruntime matches PyTorch; the onnxruntime backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'aedenoise[onnx]') is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra (pip install 'aedenoise[onnx]') is not installed")

from aedenoise.cli import main  # noqa: E402
from aedenoise.denoising import denoise_whole, load_denoiser  # noqa: E402
from aedenoise.errors import ConfigError  # noqa: E402
from aedenoise.export import OnnxDenoiser, export_onnx, read_onnx_metadata  # noqa: E402
from aedenoise.io import read_image, write_image  # noqa: E402
from aedenoise.models import create_model, save_checkpoint  # noqa: E402
from aedenoise.pretrained import list_pretrained, load_pretrained, pretrained_weights  # noqa: E402

FIXED = {"fmnist-best": (28, 28)}  # res_ae_global's graph depends on the image size
ODD_SIZES = ((37, 45), (21, 64), (9, 13), (64, 31))


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _reference(model, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """PyTorch: pad to the model's multiple by repeating the last row/column, run, crop, clamp."""
    k = model.size_multiple
    h, w = y.shape[-2:]
    padded = torch.nn.functional.pad(y, (0, (-w) % k, 0, (-h) % k), mode="replicate")
    with torch.inference_mode():
        return model(padded, sigma)[..., :h, :w].clamp(0, 1)


@pytest.mark.parametrize("name", list_pretrained())
def test_every_shipped_weight_exports_and_matches_pytorch(name: str, tmp_path: Path) -> None:
    model = load_pretrained(name)
    card = pretrained_weights(name).card_path.read_text()
    path = export_onnx(model, tmp_path / f"{name}.onnx", name=name, card=card, size=FIXED.get(name))
    onnx_model = OnnxDenoiser(path, threads=1)
    meta = read_onnx_metadata(path)
    assert meta["name"] == name and meta["card"] == card and meta["model"] == model.arch
    assert (onnx_model.in_channels, onnx_model.uses_sigma) == (model.in_channels, model.uses_sigma)
    g = torch.Generator().manual_seed(0)
    for h, w in [FIXED[name]] if name in FIXED else ODD_SIZES:
        y = torch.rand(2, model.in_channels, h, w, generator=g)
        sigma = torch.tensor([15 / 255, 50 / 255])
        x_hat = onnx_model(y, sigma)
        assert x_hat.shape == y.shape
        assert float((x_hat - _reference(model, y, sigma)).abs().max()) <= 1e-4


def test_a_checkpoint_exports_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "dn.safetensors"
    save_checkpoint(ckpt, create_model("dncnn", depth=4, width=8))
    out = tmp_path / "dn.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out)]) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
    assert read_onnx_metadata(out)["name"] == "dn.safetensors"
    assert main(["export", str(ckpt), "--onnx", str(out)]) == 1  # exists: never replaced silently
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--onnx", str(tmp_path / "dn.bin")]) == 1
    assert main(["export", "bm3d", "--onnx", str(tmp_path / "b.onnx")]) == 1
    assert "only learned models" in capsys.readouterr().err
    assert not (tmp_path / "b.onnx").exists()


def test_onnxruntime_backend_writes_what_pytorch_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = torch.Generator().manual_seed(3)
    clean = torch.rand(3, 1, 1, generator=g) * torch.ones(3, 50, 70)
    write_image(tmp_path / "in.png", (clean + 0.1 * torch.randn(3, 50, 70, generator=g)).clamp(0, 1))
    for backend in ("torch", "onnxruntime"):
        assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / f"{backend}.png"), "--sigma", "25",
                     "--backend", backend, "--no-progress"]) == 0
    a, b = (read_image(tmp_path / f"{k}.png").data for k in ("torch", "onnxruntime"))
    assert float((a - b).abs().max()) <= 1 / 255 + 1e-6  # the same 8-bit file, up to one level of rounding


def test_an_exported_file_is_a_model_spec(tmp_path: Path) -> None:
    model = load_pretrained("gray-blind")
    path = export_onnx(model, tmp_path / "g.onnx", name="gray-blind")
    den = load_denoiser(path)
    assert isinstance(den, OnnxDenoiser) and den.size_multiple == model.size_multiple
    y = torch.rand(1, 1, 40, 48)
    with torch.inference_mode():
        assert float((denoise_whole(den, y, 0.1) - denoise_whole(model, y, 0.1)).abs().max()) <= 1e-4
    with pytest.raises(ConfigError, match="noise level"):
        den(y, None)


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    from aedenoise.errors import CheckpointError

    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(CheckpointError, match="junk.onnx"):
        OnnxDenoiser(tmp_path / "junk.onnx")
    with pytest.raises(ConfigError, match="classical"):
        load_denoiser("tv", backend="onnxruntime")
