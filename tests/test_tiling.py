"""Tiled inference equals whole-image inference; blending weights are a partition of unity."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from aedenoise.denoising.tiling import axis_weights, denoise_tiled, denoise_whole, tile_geometry, tile_starts
from aedenoise.errors import ConfigError
from aedenoise.models import Denoiser, create_model


def _conv_ae(channels: int) -> Denoiser:
    """The seed model with weights scaled up so that its output depends strongly on its input
    (a fresh one is nearly constant), which makes edge effects of wrong tiling visible."""
    torch.manual_seed(channels)
    model = create_model("conv_ae", in_channels=channels).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


class ConvStack(Denoiser):
    """``depth`` 3x3 convs with zero padding: receptive field exactly ``2 * depth + 1``.

    ``claimed_rf`` lets a test declare a wrong (too small) receptive field. The output is
    shifted by ``sigma`` when given, to check that the noise level reaches every tile.
    """

    size_multiple = 1

    def __init__(self, channels: int, depth: int = 4, claimed_rf: int | None = None) -> None:
        super().__init__()
        self.in_channels = channels
        self.receptive_field = 2 * depth + 1 if claimed_rf is None else claimed_rf
        torch.manual_seed(depth)
        self.convs = nn.ModuleList(nn.Conv2d(channels if i == 0 else 6, 6 if i < depth - 1 else channels, 3, padding=1)
                                   for i in range(depth))

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        h = y
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = torch.tanh(2 * h)
        out = torch.sigmoid(h)
        if sigma is not None:
            out = out * 0.5 + torch.as_tensor(sigma, dtype=y.dtype).reshape(-1, 1, 1, 1)
        return out


class Recorder(Denoiser):
    """Wraps a model and records the shapes it is called with."""

    def __init__(self, inner: Denoiser) -> None:
        super().__init__()
        self.inner, self.shapes = inner, []
        self.in_channels, self.size_multiple = inner.in_channels, inner.size_multiple
        self.receptive_field = inner.receptive_field

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        self.shapes.append(tuple(y.shape))
        return self.inner(y, sigma)


SIZES = [(1, 1), (3, 2), (5, 7), (37, 50), (64, 64), (97, 131), (130, 67)]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", SIZES)
def test_conv_ae_tiled_equals_whole(channels: int, size: tuple[int, int]) -> None:
    model = _conv_ae(channels)
    y = torch.rand(channels, *size, generator=torch.Generator().manual_seed(size[0] * 1000 + size[1]))
    whole = denoise_whole(model, y)
    assert whole.shape == y.shape
    for tile, overlap in [(32, None), (48, 16), (40, 20), (None, None)]:
        tiled = denoise_tiled(model, y, tile=tile, overlap=overlap, batch_size=3)
        assert tiled.shape == y.shape
        assert (tiled - whole).abs().max() < 1e-4, (tile, overlap)


def test_conv_ae_too_small_overlap_shows_seams() -> None:
    """The comparison above can fail: an overlap below the receptive field gives visible errors."""
    model = _conv_ae(1)
    y = torch.rand(1, 97, 131, generator=torch.Generator().manual_seed(0))
    err = (denoise_tiled(model, y, tile=32, overlap=4) - denoise_whole(model, y)).abs().max()
    assert err > 1e-3


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(1, 1), (9, 30), (50, 50), (61, 83)])
def test_known_receptive_field_tiled_equals_whole(channels: int, size: tuple[int, int]) -> None:
    model = ConvStack(channels, depth=4).eval()
    y = torch.rand(channels, *size, generator=torch.Generator().manual_seed(7))
    whole = denoise_whole(model, y)
    for tile, overlap in [(20, 9), (24, 12), (17, 10), (64, None)]:
        assert (denoise_tiled(model, y, tile=tile, overlap=overlap) - whole).abs().max() < 1e-4, (tile, overlap)


def test_understated_receptive_field_is_detected() -> None:
    honest = ConvStack(1, depth=4).eval()
    liar = ConvStack(1, depth=4, claimed_rf=1).eval()
    y = torch.rand(1, 61, 83, generator=torch.Generator().manual_seed(3))
    whole = denoise_whole(honest, y)
    assert (denoise_tiled(liar, y, tile=20, overlap=2) - whole).abs().max() > 1e-3


def test_batch_and_sigma_reach_every_tile() -> None:
    model = ConvStack(1, depth=3).eval()
    y = torch.rand(2, 1, 45, 38, generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor([0.1, 0.3])
    tiled = denoise_tiled(model, y, sigma, tile=16, overlap=8)
    assert tiled.shape == y.shape
    for b in range(2):
        whole = denoise_whole(model, y[b], float(sigma[b]))
        assert (tiled[b] - whole).abs().max() < 1e-4


def test_tiles_bound_the_model_input_and_starts_are_aligned() -> None:
    model = Recorder(_conv_ae(1))
    y = torch.rand(1, 301, 250)
    denoise_tiled(model, y, tile=64, overlap=16, batch_size=2)
    assert model.shapes and all(s[0] <= 2 and s[-2:] == (64, 64) for s in model.shapes)
    n_tiles = sum(s[0] for s in model.shapes)
    assert n_tiles == len(tile_starts(304, 64, 16)) * len(tile_starts(252, 64, 16))
    for length in (4, 100, 252, 304, 1000):
        starts = tile_starts(length, 64, 16)
        assert all(s % 4 == 0 for s in starts) and starts[0] == 0 and starts[-1] + min(64, length) == length


@pytest.mark.parametrize(
    "length,tile,overlap,margin",
    [(100, 32, 8, 4), (100, 32, 16, 8), (257, 64, 20, 8), (33, 32, 8, 4), (20, 32, 8, 4), (90, 12, 10, 6), (64, 16, 4, 8)],
)
def test_blend_weights_positive_and_normalised(length: int, tile: int, overlap: int, margin: int) -> None:
    starts, weights = axis_weights(length, tile, overlap, margin=margin)
    size = min(tile, length)
    total = torch.zeros(length)
    best = torch.zeros(length)
    for s, w in zip(starts, weights):
        assert w.shape == (size,) and (w >= 0).all() and (w <= 1 + 1e-6).all()
        eff = min(margin, overlap // 2)
        if s > 0:
            assert (w[:eff] == 0).all()  # output near an inner tile edge is never used
        if s + size < length:
            assert (w[size - eff :] == 0).all()
        total[s : s + size] += w
        best[s : s + size] = torch.maximum(best[s : s + size], w)
    assert torch.allclose(total, torch.ones(length), atol=1e-6)
    assert (best > 0).all()


def test_blend_is_smooth_with_a_ramp() -> None:
    """With room for a ramp the weights change gradually, not in one jump."""
    starts, weights = axis_weights(200, 64, 32, margin=4)
    w = weights[1]
    steps = (w[1:] - w[:-1]).abs()
    assert steps.max() < 0.2 and 0 < w[10] < 1


def test_geometry_and_errors() -> None:
    model = _conv_ae(1)
    assert tile_geometry(model, tile=101, overlap=5) == (100, 8)  # rounded to size_multiple 4
    tile, overlap = tile_geometry(model)
    assert overlap >= model.receptive_field and tile >= 256 and tile % 4 == 0
    with pytest.raises(ConfigError, match="too small"):
        denoise_tiled(model, torch.rand(1, 50, 50), tile=16, overlap=16)
    with pytest.raises(ValueError):
        denoise_tiled(model, torch.zeros(50, 50))
