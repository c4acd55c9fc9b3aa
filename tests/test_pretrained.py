"""Shipped weights: every entry of pretrained/index.json loads, rebuilds, denoises and is documented.

Parametrised over ``list_pretrained()``, so weights added later are tested without
editing this file, except for their golden values (see :data:`GOLDEN`; print them
with ``python tests/test_pretrained.py NAME``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from aedenoise.benchmark.scoring import add_noise, denoise_batched
from aedenoise.config import NoiseConfig, resolve_config
from aedenoise.errors import ConfigError
from aedenoise.metrics import psnr
from aedenoise.models import create_model
from aedenoise.models.checkpoint import read_metadata
from aedenoise.noise import GaussianNoise
from aedenoise.pretrained import list_pretrained, load_pretrained, pretrained_weights

NAMES = list_pretrained()
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
TASKS = ("fashion-mnist", "photo")

# Minimum PSNR gain (dB) over the noisy input on the fixtures below, well under what was
# measured (docs/models-fmnist.md: +6.19 dB seed, +8.42 dB best on the full test set).
# Photo weights: sigma 25/255 on :func:`synthetic_photos` (noisy 20.2 dB), where a plain
# Gaussian filter gains 8.7 dB and TV 11.2 dB; tighten per name once measured.
FLOORS = {"fmnist-seed": 4.0, "fmnist-best": 7.0}
DEFAULT_FLOOR = {"fashion-mnist": 4.0, "photo": 6.0}

# Output of each model on :func:`golden_input`: mean, std and six pixels (flat indices
# GOLDEN_PIXELS), computed once on x86-64; abs tolerance 1e-4 (float sums differ
# across CPUs and thread counts by ~1e-6, a changed weight or layer by far more).
GOLDEN_PIXELS = (0, 97, 211, 390, 555, 783)
GOLDEN: dict[str, dict[str, object]] = {
    "fmnist-best": {"mean": 0.459063, "std": 0.21149, "pixels": [-0.022466, 0.322214, 0.794053, 0.420185, 0.488531, 0.254102]},
    "fmnist-seed": {"mean": 0.459653, "std": 0.218784, "pixels": [0.066729, 0.400038, 0.724608, 0.493624, 0.374133, 0.170705]},
    "gray-blind": {"mean": 0.469002, "std": 0.216641, "pixels": [0.20117, 0.313283, 0.277418, 0.252274, 0.342528, 0.274151]},
    "color-blind": {"mean": 0.469451, "std": 0.217217, "pixels": [0.210395, 0.313965, 0.278188, 0.253124, 0.344172, 0.273719]},
}


# -- fixtures ------------------------------------------------------------------------------


def golden_input(channels: int, size: int) -> torch.Tensor:
    """A fixed ``[2, channels, size, size]`` input in [0, 1], exact on every platform.

    A smooth pattern plus integer-LCG noise (no RNG, no transcendental functions of
    large arguments), so it is bit-identical everywhere.
    """
    n = 2 * channels * size * size
    idx = torch.arange(n, dtype=torch.int64)
    lcg = ((idx * 1103515245 + 12345) % (2**31)).to(torch.float64) / 2**31
    h = torch.arange(size, dtype=torch.float64).reshape(1, 1, size, 1)
    w = torch.arange(size, dtype=torch.float64).reshape(1, 1, 1, size)
    disk = (((h - size / 2) ** 2 + (w - size / 2) ** 2) < (size / 3) ** 2).to(torch.float64)
    smooth = 0.15 + 0.6 * disk + 0.2 * w / size
    y = 0.75 * smooth.expand(2, channels, size, size) + 0.25 * lcg.reshape(2, channels, size, size)
    return y.clamp(0, 1).to(torch.float32)


def input_size(model: torch.nn.Module, task: str) -> int:
    base = 28 if task == "fashion-mnist" else 64
    m = int(getattr(model, "size_multiple", 1))
    if task == "fashion-mnist":
        return base  # 28x28 is what these models are for (a multiple of 4)
    return -(-base // m) * m


def golden_values(model: torch.nn.Module, task: str) -> dict[str, object]:
    channels = int(model.in_channels)
    y = golden_input(channels, input_size(model, task))
    sigma = torch.full((y.shape[0],), 25 / 255)
    with torch.inference_mode():
        x_hat = model(y, sigma)
    flat = x_hat.flatten().double()
    return {"mean": round(float(flat.mean()), 6), "std": round(float(flat.std()), 6),
            "pixels": [round(float(flat[i]), 6) for i in GOLDEN_PIXELS]}


@pytest.fixture(scope="module")
def fmnist_test_x() -> torch.Tensor:
    """The first 500 Fashion-MNIST test images [500, 1, 28, 28] in [0, 1]."""
    from aedenoise.data.fashion_mnist import FILES, load_fashion_mnist

    if not all((FMNIST_DIR / f"{name}.gz").is_file() for name in FILES):
        pytest.skip(f"Fashion-MNIST not installed in {FMNIST_DIR} (apt-get install dataset-fashion-mnist)")
    return load_fashion_mnist(data_dir=FMNIST_DIR, download=False).test_x[:500]


def synthetic_photos(channels: int, size: int, count: int = 4) -> torch.Tensor:
    """Seeded piecewise-smooth images ``[count, channels, size, size]`` in [0.1, 0.9]:
    a gradient background with random rectangles and disks of random colors."""
    g = torch.Generator().manual_seed(2024)
    h = torch.arange(size, dtype=torch.float32).reshape(size, 1)
    w = torch.arange(size, dtype=torch.float32).reshape(1, size)
    images = []
    for _ in range(count):
        base = torch.rand(channels, 1, 1, generator=g)
        img = 0.3 + 0.4 * base * (h + w) / (2 * size)
        img = img.expand(channels, size, size).clone()
        for k in range(8):
            color = torch.rand(channels, 1, 1, generator=g)
            cy, cx, r = (torch.rand(3, generator=g) * torch.tensor([size, size, size / 4]) + torch.tensor([0, 0, 3])).tolist()
            mask = ((h - cy) ** 2 + (w - cx) ** 2 < r * r) if k % 2 else ((h - cy).abs() < r) & ((w - cx).abs() < 1.5 * r)
            img = torch.where(mask, color.expand_as(img), img)
        images.append(0.1 + 0.8 * img)
    return torch.stack(images)


# -- the index ------------------------------------------------------------------------------


def test_index_entries_all_present_and_well_formed() -> None:
    """A listed file or card that is missing would silently vanish from list_pretrained()."""
    from aedenoise.pretrained import _folder

    index_file = _folder() / "index.json"
    entries = json.loads(index_file.read_text())
    assert set(entries) == set(NAMES)
    for name, entry in entries.items():
        assert set(entry) == {"file", "card", "channels", "task", "default_for_photos", "description"}, name
        assert (_folder() / entry["file"]).is_file() and (_folder() / entry["card"]).is_file(), name
        assert entry["channels"] in (1, 3) and entry["task"] in TASKS, name
        assert not (entry["default_for_photos"] and entry["task"] != "photo"), name
    for channels in (1, 3):  # at most one default per channel count
        assert sum(e["default_for_photos"] and e["channels"] == channels for e in entries.values()) <= 1


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no shipped weights named 'nope'"):
        load_pretrained("nope")


def test_fashion_mnist_weights_are_shipped() -> None:
    assert {"fmnist-seed", "fmnist-best"} <= set(NAMES)


# -- every shipped model --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_loads_and_metadata_rebuilds_the_model(name: str) -> None:
    entry = pretrained_weights(name)
    model = load_pretrained(name)
    assert not model.training and model.in_channels == entry.channels
    meta = read_metadata(entry.path)
    rebuilt = create_model(meta["model"]["name"], **meta["model"]["args"])
    assert rebuilt.arch == model.arch  # (arguments added since the weights were saved take their defaults)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert any(not torch.equal(v, rebuilt.state_dict()[k]) for k, v in model.state_dict().items())  # trained, not fresh
    if entry.task == "fashion-mnist":
        # small: fmnist-best is 3.6 MB, most of it its global-context MLP (docs/models-fmnist.md)
        assert entry.path.stat().st_size < 4 * 1024 * 1024 and entry.channels == 1 and not entry.default_for_photos
        seed_noise = resolve_config(preset="fmnist-seed").noise
        assert NoiseConfig.model_validate(meta["config"]["noise"]) == seed_noise
        assert meta["config"]["data"]["kind"] == "fashion_mnist"


@pytest.mark.parametrize("name", NAMES)
def test_golden_output(name: str) -> None:
    entry = pretrained_weights(name)
    model = load_pretrained(name)
    got = golden_values(model, entry.task)
    if name not in GOLDEN:
        pytest.fail(f"no golden values for {name!r}: add GOLDEN[{name!r}] = {got!r} "
                    f"(from `python tests/test_pretrained.py {name}`) after checking the weights")
    want = GOLDEN[name]
    assert got["mean"] == pytest.approx(want["mean"], abs=1e-4)
    assert got["std"] == pytest.approx(want["std"], abs=1e-4)
    assert got["pixels"] == pytest.approx(want["pixels"], abs=1e-4)


_GAINS: dict[str, tuple[float, float]] = {}


def fixture_gain(name: str, request: pytest.FixtureRequest) -> tuple[float, float]:
    """(PSNR of the estimate, PSNR of the noisy input) in dB, means over the task's fixture."""
    if name not in _GAINS:
        _GAINS[name] = _fixture_gain(name, request)
    return _GAINS[name]


def _fixture_gain(name: str, request: pytest.FixtureRequest) -> tuple[float, float]:
    entry = pretrained_weights(name)
    model = load_pretrained(name)
    if entry.task == "fashion-mnist":
        x = request.getfixturevalue("fmnist_test_x")
        noise = resolve_config(preset="fmnist-seed").noise.build()
        y, sigma = add_noise(x, noise, seed=1234)
    else:
        x = synthetic_photos(entry.channels, input_size(model, entry.task) * 2)
        y, sigma = add_noise(x, GaussianNoise(25 / 255), seed=1234)
    x_hat = denoise_batched(model, y, sigma, batch_size=250)
    return float(psnr(x_hat, x).mean()), float(psnr(y.clamp(0, 1), x).mean())


@pytest.mark.parametrize("name", NAMES)
def test_quality_floor(name: str, request: pytest.FixtureRequest) -> None:
    entry = pretrained_weights(name)
    estimate, noisy = fixture_gain(name, request)
    floor = FLOORS.get(name, DEFAULT_FLOOR[entry.task])
    assert estimate - noisy >= floor, f"{name}: {estimate:.2f} dB vs noisy {noisy:.2f} dB"


def test_best_beats_seed(request: pytest.FixtureRequest) -> None:
    best, _ = fixture_gain("fmnist-best", request)
    seed, _ = fixture_gain("fmnist-seed", request)
    assert best > seed + 1.0


CARD_PSNR = re.compile(r"test PSNR[^\n]*?(\d+\.\d+)\s*dB", re.IGNORECASE)


@pytest.mark.parametrize("name", NAMES)
def test_model_card(name: str, request: pytest.FixtureRequest) -> None:
    entry = pretrained_weights(name)
    card = entry.card_path.read_text()
    model = load_pretrained(name)
    params = sum(p.numel() for p in model.parameters())
    assert name in card and model.arch["name"] in card
    assert f"{params:,}" in card or str(params) in card, "the card states the parameter count"
    assert re.search(r"\d+\.\d+\s*dB", card) and "PSNR" in card
    if entry.task == "fashion-mnist":
        match = CARD_PSNR.search(card)
        assert match, "a fashion-mnist card states 'test PSNR ... NN.NN dB'"
        stated = float(match.group(1))
        estimate, _ = fixture_gain(name, request)
        # the card is the 10,000-image mean; the fixture is the first 500 test images
        assert abs(stated - estimate) < 0.5, f"card says {stated} dB, the 500-image fixture gives {estimate:.2f} dB"
        for phrase in ("28x28", "0.2"):
            assert phrase in card


if __name__ == "__main__":  # print golden values to paste into GOLDEN
    torch.set_num_threads(1)
    for arg in sys.argv[1:] or NAMES:
        print(f"    {arg!r}: {golden_values(load_pretrained(arg), pretrained_weights(arg).task)!r},")


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.parametrize(("name", "image", "floor"), [("gray-blind", "Set12/05.png", 8.0), ("color-blind", "CBSD68/101085.png", 6.5)])
def test_photo_weights_on_a_benchmark_image(name: str, image: str, floor: float) -> None:
    """Quality floor under the benchmark protocol (sigma 25, seeded noise, 8-bit output) on one real image."""
    from aedenoise.benchmark import noisy_image, quantize_8bit
    from aedenoise.io import read_image

    if name not in list_pretrained():
        pytest.skip(f"{name} is not shipped")
    path = SHARED_DATA / image
    if not path.is_file():
        pytest.skip(f"{path} not available")
    x = read_image(path).data[:, :160, :160]
    y = noisy_image(x, 25.0, dataset=image.split("/")[0], image=path.name)
    x, y = x.reshape(1, *x.shape[-3:]), y.reshape(1, *x.shape[-3:])
    with torch.inference_mode():
        x_hat = quantize_8bit(load_pretrained(name)(y, 25 / 255).clamp(0, 1))
    gain = float(psnr(x_hat, x) - psnr(y.clamp(0, 1), x))
    assert gain >= floor, f"{name}: only +{gain:.2f} dB over the noisy input"
