"""Image-folder patch data (aedenoise.data.images), a tiny unet training run on it, the unet receptive field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aedenoise.config import DataConfig, validate_config
from aedenoise.data.images import (
    DATA_ENV,
    held_out_count,
    image_folder_files,
    patch_training_data,
    resolve_train_dir,
)
from aedenoise.errors import ConfigError, DataError
from aedenoise.models import create_model
from aedenoise.models.checkpoint import load_checkpoint
from aedenoise.training.loop import train


def _write_images(folder: Path, sizes: list[tuple[int, int]], *, color: bool = False, seed: int = 0) -> list[Path]:
    """Random 8-bit images; image k's pixel values all lie in [20k, 20k + 19] (tells them apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k, (h, w) in enumerate(sizes):
        shape = (h, w, 3) if color else (h, w)
        pixels = (20 * k + rng.integers(0, 20, size=shape)).astype(np.uint8)
        path = folder / f"img{k:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def _config(folder: Path, **kw) -> DataConfig:
    base = {"kind": "image_folder", "train_dirs": (str(folder),), "channels": 1, "patch_size": 16,
            "patches_per_epoch": 64, "val_count": 12}
    return DataConfig(**(base | kw))


def _image_of(values: torch.Tensor) -> torch.Tensor:
    """Which test image (k) each patch [N, C, P, P] was cut from, from its 8-bit values."""
    return (values.flatten(1) * 255).round().long().div(20, rounding_mode="floor")


def test_patches_shape_range_and_8bit_values(tmp_path: Path) -> None:
    _write_images(tmp_path, [(40, 50), (33, 60), (48, 48), (20, 70)], color=True)
    data = patch_training_data(_config(tmp_path, channels=3), seed=0)
    batches = list(data.epoch_batches(0, 10, seed=0, drop_last=False, device="cpu"))
    assert [b.shape[0] for b in batches] == [10] * 6 + [4]
    x = torch.cat(batches)
    assert x.shape == (64, 3, 16, 16) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)  # exact 8-bit levels
    assert data.val_x.shape == (12, 3, 16, 16)
    assert data.batches_per_epoch(10, drop_last=True) == 6 == len(list(data.epoch_batches(0, 10, seed=0, drop_last=True, device="cpu")))


def test_gray_from_color_files(tmp_path: Path) -> None:
    _write_images(tmp_path, [(30, 30), (30, 30), (30, 30)], color=True)
    data = patch_training_data(_config(tmp_path, channels=1), seed=0)
    assert data.channels == 1 and data.val_x.shape[1] == 1
    assert next(data.epoch_batches(0, 4, seed=0, drop_last=False, device="cpu")).shape == (4, 1, 16, 16)


def test_deterministic_by_seed_and_epoch_not_batch_size(tmp_path: Path) -> None:
    _write_images(tmp_path, [(40, 40), (50, 30), (36, 44)])
    cfg = _config(tmp_path)

    def epoch(data, e: int, seed: int, batch: int) -> torch.Tensor:
        return torch.cat(list(data.epoch_batches(e, batch, seed=seed, drop_last=False, device="cpu")))

    a, b = patch_training_data(cfg, seed=0), patch_training_data(cfg, seed=0)
    assert torch.equal(a.val_x, b.val_x)
    assert torch.equal(epoch(a, 0, 0, 8), epoch(b, 0, 0, 8))
    assert torch.equal(epoch(a, 0, 0, 8), epoch(a, 0, 0, 5))  # the batch size only cuts the stream
    assert not torch.equal(epoch(a, 0, 0, 8), epoch(a, 1, 0, 8))
    assert not torch.equal(epoch(a, 0, 0, 8), epoch(a, 0, 1, 8))


def test_all_eight_symmetries_and_nothing_else(tmp_path: Path) -> None:
    # Two 8x8 images with distinct values and patch_size 8: every patch is the whole image,
    # so each patch must be one of its 8 rotations/flips, and all 8 should occur.
    tmp_path.mkdir(exist_ok=True)
    for k in range(2):
        Image.fromarray((np.arange(64).reshape(8, 8) * 3 + k).astype(np.uint8)).save(tmp_path / f"{k}.png")
    data = patch_training_data(_config(tmp_path, patch_size=8, patches_per_epoch=400, val_count=2), seed=0)
    assert len(data.train_files) == 1
    base = torch.from_numpy(np.array(Image.open(data.train_files[0]))).float().div(255)
    variants = [torch.rot90(v, r, dims=(0, 1)) for v in (base, base.flip(0)) for r in range(4)]
    assert len({tuple(v.flatten().tolist()) for v in variants}) == 8
    x = torch.cat(list(data.epoch_batches(0, 64, seed=0, drop_last=False, device="cpu")))[:, 0]
    seen = set()
    for patch in x:
        matches = [i for i, v in enumerate(variants) if torch.allclose(patch, v, atol=1e-6)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))


def test_validation_is_fixed_and_from_held_out_images_only(tmp_path: Path) -> None:
    _write_images(tmp_path, [(24, 24 + 2 * k) for k in range(10)])
    cfg = _config(tmp_path, patches_per_epoch=500, val_count=30)
    data = patch_training_data(cfg, seed=3)
    all_files = set(image_folder_files(tmp_path))
    assert len(data.val_files) == held_out_count(10) == 1
    assert set(data.val_files).isdisjoint(data.train_files) and set(data.val_files) | set(data.train_files) == all_files
    held = {int(p.stem[3:]) for p in data.val_files}
    trained = {int(p.stem[3:]) for p in data.train_files}
    assert set(_image_of(data.val_x).unique().tolist()) == held
    train_x = torch.cat([torch.cat(list(data.epoch_batches(e, 100, seed=3, drop_last=False, device="cpu"))) for e in range(2)])
    seen = set(_image_of(train_x).unique().tolist())
    assert seen.isdisjoint(held) and seen == trained  # 1000 patches reach all 9 training images
    # The validation set does not depend on the epoch, and another seed holds out another image.
    assert torch.equal(patch_training_data(cfg, seed=3).val_x, data.val_x)
    others = {patch_training_data(cfg, seed=s).val_files for s in range(6)}
    assert len(others) > 1


def test_small_images_are_skipped_and_too_few_is_an_error(tmp_path: Path) -> None:
    _write_images(tmp_path, [(40, 40), (10, 60), (40, 40)])
    data = patch_training_data(_config(tmp_path), seed=0)
    assert "img01.png" not in {p.name for p in data.train_files + data.val_files}
    with pytest.raises(DataError, match="need 2 or more"):
        patch_training_data(_config(tmp_path, patch_size=48), seed=0)


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no image files"):
        image_folder_files(tmp_path / "empty")
    with pytest.raises(DataError, match="no such image folder"):
        patch_training_data(_config(tmp_path / "missing"), seed=0)
    files = _write_images(tmp_path / "imgs", [(20, 20), (20, 20)])
    (tmp_path / "imgs" / "readme.md").write_text("x")
    (tmp_path / "imgs" / ".hidden.png").write_bytes(b"")
    assert image_folder_files(tmp_path / "imgs") == sorted(files)


def test_train_dir_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_train_dir("Train400") == tmp_path / "Train400"
    assert resolve_train_dir("./Train400") == Path("./Train400")
    assert resolve_train_dir("data/Train400") == Path("data/Train400")
    assert resolve_train_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv(DATA_ENV)
    assert resolve_train_dir("Train400") == Path("../shared/data/Train400")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    _write_images(tmp_path / "Mine", [(20, 20), (20, 20)])
    data = patch_training_data(_config(Path("Mine")), seed=0)
    assert len(data.train_files) + len(data.val_files) == 2


def test_unet_trains_on_an_image_folder(tmp_path: Path) -> None:
    _write_images(tmp_path / "imgs", [(24, 24), (24, 30), (30, 24)])
    config = validate_config({
        "model": {"name": "unet", "args": {"widths": [4, 8], "blocks": 1}},
        "noise": {"sigma": 0.0, "sigma_max": 0.2},
        "data": {"kind": "image_folder", "train_dirs": [str(tmp_path / "imgs")], "channels": 1,
                 "patch_size": 16, "patches_per_epoch": 8, "val_count": 4},
        "optim": {"loss": "l1", "schedule": "cosine"},
        "epochs": 1, "batch_size": 4, "device": "cpu", "threads": 1,
    })
    result = train(config, tmp_path / "run", progress=False)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["val_psnr"])
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[0]["epoch"] == 1
    ckpt = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert ckpt.model.arch == {"name": "unet", "args": {"in_channels": 1, "widths": [4, 8], "blocks": 1, "bias": False, "noise_map": True}}
    y = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        a, b = ckpt.model.eval()(y, 0.1), result.model.eval()(y, 0.1)
    assert torch.equal(a, b)
    # Two Adam steps moved the weights away from the identity initialisation.
    assert not torch.allclose(a, y)


@pytest.mark.parametrize(("widths", "blocks"), [([4, 8], 1), ([4, 8, 16], 2)])
def test_unet_receptive_field_is_exact(widths: list[int], blocks: int) -> None:
    """The declared receptive field (tiling overlap) is the widest input extent any output pixel sees."""
    torch.manual_seed(0)
    model = create_model("unet", widths=widths, blocks=blocks).double()
    with torch.no_grad():
        for p in model.parameters():  # leave the zero-initialised (identity) tail
            p.add_(0.05 * torch.randn_like(p))
    extent = 0
    for phase in range(model.size_multiple):
        y = torch.rand(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
        model(y, 0.1)[0, 0, 64 + phase, 64 + phase].backward()
        rows, cols = (y.grad[0, 0] != 0).nonzero().T
        extent = max(extent, int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1)
    assert extent == model.receptive_field


def test_unet_refuses_missing_sigma_and_odd_sizes() -> None:
    model = create_model("unet", widths=[4, 8, 16], blocks=1)
    with pytest.raises(ConfigError, match="sigma"):
        model(torch.rand(1, 1, 16, 16), None)
    with pytest.raises(ConfigError, match="multiples of 4"):
        model(torch.rand(1, 1, 16, 18), 0.1)
