"""The benchmark protocol: identical seeded noisy inputs, 8-bit rounding, clipping, resume, bad files."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from aedenoise import benchmark
from aedenoise.benchmark import Method, noise_seed, noisy_image, open_dataset, quantize_8bit, run_benchmark
from aedenoise.errors import ConfigError, DataError
from aedenoise.metrics import psnr, ssim
from aedenoise.models.base import Denoiser


def write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path)


def make_image(seed: int, h: int, w: int, channels: int = 1) -> np.ndarray:
    """uint8 [H, W] (or [H, W, 3]) with black and white areas (so noise crosses 0 and 1) and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 128 + 60 * np.sin(xx / 3.0 + seed) * np.cos(yy / 5.0) + rng.normal(0, 10, (h, w))
    img[: h // 4] = 0
    img[-h // 4 :] = 255
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return img if channels == 1 else np.stack([img, np.flipud(img), 255 - img], axis=-1)


@pytest.fixture
def gray_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tiny"
    d.mkdir()
    for i, (h, w) in enumerate([(40, 48), (36, 44), (44, 40)]):
        write_png(d / f"img{i}.png", make_image(i, h, w))
    (d / "MANIFEST.sha256").write_text("not an image\n")
    return d


class Identity(Denoiser):
    """Returns its input; records every ``(y, sigma)`` it was given."""

    def __init__(self, in_channels: int | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels  # type: ignore[assignment]
        self.seen: list[tuple[Tensor, float]] = []

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        self.seen.append((y.clone(), float(sigma)))  # type: ignore[arg-type]
        return y


class Constant(Denoiser):
    in_channels = None  # type: ignore[assignment]

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        return torch.full_like(y, self.value)


def method(name: str, denoiser: Denoiser) -> Method:
    return Method(name=name, denoiser=denoiser, key=benchmark.method_key(name, denoiser))


def independent_noisy(x: Tensor, dataset: str, image: str, sigma: float, seed: int = 0) -> Tensor:
    """The documented noise, rebuilt from docs/benchmark-protocol.md without the harness."""
    digest = hashlib.sha256(f"{seed}/{dataset}/{image}/{sigma:g}".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return x[None] + sigma / 255 * torch.randn((1, *x.shape), generator=g, dtype=torch.float32)


def clean(path: Path) -> Tensor:
    from PIL import Image

    a = np.asarray(Image.open(path), dtype=np.float32) / 255
    return torch.from_numpy(a)[None] if a.ndim == 2 else torch.from_numpy(a).permute(2, 0, 1)


def test_noise_seed_is_stable_and_distinct() -> None:
    # Pinned: changing the seed scheme changes every published number of this project.
    assert noise_seed("BSD68", "test001.png", 25) == 5583205865492013306
    seeds = {noise_seed(d, i, s, seed=r) for d in ("BSD68", "Set12") for i in ("a.png", "b.png")
             for s in (15, 25) for r in (0, 1)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)
    x = torch.rand(1, 8, 8)
    a = noisy_image(x, 25, dataset="D", image="a.png")
    assert torch.equal(a, noisy_image(x, 25, dataset="D", image="a.png"))
    assert not torch.equal(a, noisy_image(x, 25, dataset="D", image="a.png", seed=1))


def test_every_method_sees_the_identical_documented_input(gray_dir: Path) -> None:
    a, b = Identity(), Identity()
    result = run_benchmark([method("a", a), method("b", b)], [open_dataset(gray_dir)], [25, 50])
    assert len(a.seen) == len(b.seen) == 6
    for (ya, sa), (yb, sb) in zip(a.seen, b.seen):
        assert torch.equal(ya, yb) and sa == sb
    names = sorted(p.name for p in gray_dir.glob("*.png"))
    for k, (y, s) in enumerate(a.seen):
        sigma, image = (25, 50)[k // 3], names[k % 3]
        assert s == pytest.approx(sigma / 255)
        x = clean(gray_dir / image)
        assert torch.equal(y, independent_noisy(x, "tiny", image, sigma))
        # identity: the score is the PSNR of the 8-bit rounded noisy image, computed here independently
        noisy_8bit = torch.round(y.clamp(0, 1) * 255) / 255
        row = next(r for r in result.rows if r.method == "a" and r.image == image and r.sigma == sigma)
        assert row.psnr == pytest.approx(float(psnr(noisy_8bit, x[None])[0]), abs=1e-9)
        assert row.ssim == pytest.approx(float(ssim(noisy_8bit, x[None])[0]), abs=1e-9)


def test_noise_is_not_clipped_by_default_but_is_with_clip(gray_dir: Path) -> None:
    plain, clipped = Identity(), Identity()
    run_benchmark([method("m", plain)], [open_dataset(gray_dir)], [50])
    run_benchmark([method("m", clipped)], [open_dataset(gray_dir)], [50], clip=True)
    y = plain.seen[0][0]
    assert y.min() < -0.05 and y.max() > 1.05  # black/white areas + sigma 50
    yc = clipped.seen[0][0]
    assert yc.min() >= 0 and yc.max() <= 1
    assert torch.equal(yc, y.clamp(0, 1))


def test_output_is_clamped_and_rounded_to_8_bit(gray_dir: Path) -> None:
    d = open_dataset(gray_dir)
    # 0.5 + 0.4/255 rounds to 128/255 only if the output is rounded to 8 bit; 1.7 is clamped to 1
    result = run_benchmark([method("c", Constant(0.5 + 0.4 / 255)), method("hi", Constant(1.7))], [d], [15])
    for row in result.rows:
        x = clean(gray_dir / row.image)[None]
        level = 128 / 255 if row.method == "c" else 1.0
        assert row.psnr == pytest.approx(float(psnr(torch.full_like(x, level), x)[0]), abs=1e-9)
    assert quantize_8bit(torch.tensor([-0.2, 0.3 / 255, 0.6 / 255, 1.3])).mul(255).tolist() == [0, 0, 1, 255]


def test_records_and_seconds_per_megapixel(gray_dir: Path) -> None:
    class Slow(Identity):
        def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
            time.sleep(0.01)
            return y

    result = run_benchmark([method("slow", Slow())], [open_dataset(gray_dir, limit=2)], [15, 25])
    records = result.records()
    assert [(r["method"], r["dataset"], r["sigma"], r["n_images"]) for r in records] == [
        ("slow", "tiny", 15.0, 2), ("slow", "tiny", 25.0, 2)]
    mp = (40 * 48 + 36 * 44) / 1e6
    for r in records:
        assert r["megapixels"] == pytest.approx(mp)
        assert r["seconds_per_megapixel"] == pytest.approx(r["seconds"] / mp)
        assert r["seconds"] >= 0.02
    rows = [r for r in result.rows if r.sigma == 15]
    assert records[0]["psnr"] == pytest.approx(sum(r.psnr for r in rows) / 2)
    assert result.timing()[0]["threads"] == torch.get_num_threads()


def test_resume_skips_finished_images(gray_dir: Path, tmp_path: Path) -> None:
    class Interrupted(Identity):
        def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
            if len(self.seen) == 4:
                raise KeyboardInterrupt
            return super().forward(y, sigma)

    cache, d = tmp_path / "cache", open_dataset(gray_dir)
    first = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        run_benchmark([method("m", first)], [d], [15, 25], cache_dir=cache)
    assert len(first.seen) == 4  # sigma 15 done (3 images), 1 image at sigma 25
    second = Identity()
    cached: list[bool] = []
    result = run_benchmark([method("m", second)], [d], [15, 25], cache_dir=cache, progress=lambda r, c: cached.append(c))
    assert len(second.seen) == 2 and cached == [True] * 4 + [False] * 2
    third = Identity()
    again = run_benchmark([method("m", third)], [d], [15, 25], cache_dir=cache)
    assert third.seen == [] and again.rows == result.rows
    # another seed, clip setting or method weights is a different cache entry
    run_benchmark([method("m", fourth := Identity())], [d], [15], cache_dir=cache, seed=1)
    assert len(fourth.seen) == 3


def test_bad_image_file_is_reported_and_skipped(gray_dir: Path) -> None:
    (gray_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    warnings: list[str] = []
    result = run_benchmark([method("m", Identity())], [open_dataset(gray_dir)], [25], warn=warnings.append)
    assert [s.image for s in result.skipped] == ["broken.png"]
    assert len(warnings) == 1 and "broken.png" in warnings[0]
    assert result.records()[0]["n_images"] == 3
    assert result.to_json()["skipped"][0]["image"] == "broken.png"


def test_channel_mismatch_is_an_error_before_any_work(tmp_path: Path) -> None:
    d = tmp_path / "color"
    d.mkdir()
    write_png(d / "a.png", make_image(0, 32, 32, channels=3))
    gray_only = Identity(in_channels=1)
    with pytest.raises(ConfigError, match="gray"):
        run_benchmark([method("g", gray_only)], [open_dataset(d)], [25])
    assert gray_only.seen == []
    notes: list[str] = []
    result = run_benchmark([method("g", gray_only), method("any", Identity())], [open_dataset(d)], [25],
                           mismatch="skip", warn=notes.append)
    assert gray_only.seen == [] and len(notes) == 1 and "'g'" in notes[0]
    assert [(r["method"], r["n_images"]) for r in result.records()] == [("any", 1)]


def test_size_multiple_is_padded_and_cropped() -> None:
    class NeedsEight(Identity):
        size_multiple = 8

        def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
            assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
            return super().forward(y, sigma)

    model = NeedsEight()
    y = torch.rand(1, 1, 37, 45)
    x_hat, seconds = benchmark.timed_call(model, y, 0.1)
    assert x_hat.shape == y.shape and torch.equal(x_hat, y) and seconds >= 0
    assert model.seen[0][0].shape == (1, 1, 40, 48)


def test_open_dataset_errors_and_limit(tmp_path: Path, gray_dir: Path) -> None:
    d = open_dataset(gray_dir, limit=2)
    assert d.name == "tiny" and [p.name for p in d.paths] == ["img0.png", "img1.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        open_dataset(tmp_path / "empty")
    with pytest.raises(DataError, match="no such folder"):
        open_dataset(tmp_path / "missing")
    for bad in (0, -5, 256, float("nan")):
        with pytest.raises(ConfigError, match="sigma"):
            run_benchmark([method("m", Identity())], [d], [bad])


def test_any_channels_attribute_decides_what_runs_on_color(tmp_path: Path) -> None:
    from aedenoise.classical import create_baseline

    class AnyChannels(Identity):
        any_channels = True

    assert benchmark.accepts_channels(AnyChannels(in_channels=1), 3)
    assert benchmark.accepts_channels(create_baseline("gaussian", in_channels=1), 3)
    assert not benchmark.accepts_channels(Identity(in_channels=1), 3)
    assert not benchmark.accepts_channels(AnyChannels(in_channels=1), 2)
    d = tmp_path / "color"
    d.mkdir()
    write_png(d / "a.png", make_image(0, 24, 24, channels=3))
    model = AnyChannels(in_channels=1)
    run_benchmark([method("any", model)], [open_dataset(d)], [25])
    assert model.seen[0][0].shape == (1, 3, 24, 24)  # got the color image as it is


def test_auto_method_picks_per_dataset_and_skips_a_missing_default(
    tmp_path: Path, gray_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aedenoise.pretrained import load_pretrained

    from fake_pretrained import install

    color = tmp_path / "color"
    color.mkdir()
    write_png(color / "a.png", make_image(0, 24, 28, channels=3))
    install(monkeypatch, tmp_path / "weights", color_default=False)
    auto = benchmark.resolve_method("auto")
    assert isinstance(auto, benchmark.AutoMethod)
    notes: list[str] = []
    result = run_benchmark([auto], [open_dataset(gray_dir), open_dataset(color)], [25], mismatch="skip",
                           warn=notes.append)
    assert len(notes) == 1 and "no default color" in notes[0] and "'color'" in notes[0]
    assert [(r["method"], r["weights"], r["dataset"]) for r in result.records()] == [("auto", "toy-gray", "tiny")]
    with pytest.raises(ConfigError, match="no default color"):
        run_benchmark([auto], [open_dataset(color)], [25])
    # the chosen model is the shipped one: same weights, same cache key as naming it
    picked = auto.for_channels(1)
    direct = benchmark.resolve_method("toy-gray")
    assert picked.weights == direct.weights == "toy-gray"
    assert torch.equal(picked.denoiser.state_dict()["encoder.0.weight"],
                       load_pretrained("toy-gray").state_dict()["encoder.0.weight"])
    assert picked.key.split("-")[-1] == direct.key.split("-")[-1]  # same weights hash, different name
