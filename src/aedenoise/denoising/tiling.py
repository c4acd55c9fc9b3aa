"""Any-size inference: overlapping tiles, blended, with memory bounded by the tile size.

:func:`denoise_tiled` runs a :class:`~aedenoise.models.Denoiser` on an image of any size
by cutting it into overlapping ``tile x tile`` pieces, denoising them in batches and
blending the results into one output tensor. The result equals whole-image inference
(:func:`denoise_whole`) to float precision whenever the model's ``receptive_field`` is
honest and ``overlap >= receptive_field``:

* The image is (virtually) padded at the bottom/right to a multiple of the model's
  ``size_multiple``, exactly as :func:`denoise_whole` pads it: ``reflect``, or
  ``replicate`` when the image is too small to reflect. No padded copy of the image is
  made; each tile gathers its rows and columns through an index map.
* Tile starts are multiples of ``size_multiple``, so models with strided convolutions
  (shift-equivariant only for such shifts) see every pixel in the same phase.
* Blending window, per axis and separable: on a side that borders another tile, the
  weight is 0 for the first ``receptive_field // 2`` pixels (their output saw the
  tile's edge), then rises along a raised-cosine ramp over the rest of the overlap to 1.
  Sides on the image border keep weight 1. The 1-D windows are normalised per axis, so
  the 2-D weights (outer products) sum to exactly 1 at every pixel: no weight plane.

Memory: one output tensor the size of the input, plus one batch of tiles and the
model's activations on them (``benchmarks/tiling_memory.py``; ``docs/denoise.md``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aedenoise.errors import ConfigError
from aedenoise.models import Denoiser

DEFAULT_TILE = 256
"""Default tile side in pixels (raised to ``6 * overlap`` for models with a wide receptive field)."""
MAX_DEFAULT_TILE = 1024
"""Cap of the default tile side: a 1024x1024 tile keeps peak memory of the shipped U-Nets on a
24-megapixel RGB image under 2 GB (benchmarks/tiling_memory.py)."""
BATCH_PIXELS = 512 * 512
"""Default batch: as many tiles as hold about this many pixels (at least one)."""


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _multiple(model: Denoiser) -> int:
    return max(1, int(getattr(model, "size_multiple", 1) or 1))


def default_overlap(model: Denoiser) -> int:
    """Overlap between neighbouring tiles, in pixels: ``1.25 * receptive_field``, rounded up
    to a multiple of ``size_multiple`` (the receptive field itself, plus a blending ramp)."""
    rf = max(0, int(getattr(model, "receptive_field", 0) or 0))
    return _round_up(rf + rf // 4, _multiple(model))


def default_tile(model: Denoiser, overlap: int | None = None) -> int:
    """Tile side used when none is given: :data:`DEFAULT_TILE`, or ``6 * overlap`` if larger
    (so overlapping costs at most ``(6/5)**2 = 1.44`` times the work of one pass), but at most
    :data:`MAX_DEFAULT_TILE` (memory) unless the overlap needs more."""
    overlap = default_overlap(model) if overlap is None else overlap
    side = min(max(DEFAULT_TILE, 6 * overlap), max(MAX_DEFAULT_TILE, 2 * overlap))
    return _round_up(side, _multiple(model))


def tile_geometry(model: Denoiser, *, tile: int | None = None, overlap: int | None = None) -> tuple[int, int]:
    """``(tile, overlap)`` in pixels as :func:`denoise_tiled` uses them for ``model``.

    ``tile`` is rounded down and ``overlap`` up to multiples of ``size_multiple``;
    ``None`` picks :func:`default_tile` / :func:`default_overlap`. Raises
    :class:`ConfigError` when the tile is not larger than the overlap.
    """
    m = _multiple(model)
    overlap = default_overlap(model) if overlap is None else _round_up(max(0, int(overlap)), m)
    tile_px = default_tile(model, overlap) if tile is None else int(tile) // m * m
    if tile_px <= overlap:
        need = _round_up(overlap + max(m, overlap), m)
        raise ConfigError(f"tile {tile} is too small for {model_label(model)}, whose tiles must overlap by {overlap} "
                          f"pixels; use a tile of at least {need} (e.g. --tile {max(need, DEFAULT_TILE)})")
    return tile_px, overlap


def model_label(model: Denoiser) -> str:
    arch = getattr(model, "arch", None) or {}
    return f"model {arch.get('name') or type(model).__name__!r}"


def pad_mode(height: int, width: int, multiple: int) -> str:
    """``"reflect"``, or ``"replicate"`` when padding to ``multiple`` exceeds the image."""
    ph, pw = (-height) % multiple, (-width) % multiple
    return "reflect" if ph < height and pw < width else "replicate"


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``, neighbours
    overlapping by at least ``overlap``; the last tile ends at ``length``.

    ``length`` ``tile`` and ``overlap`` should be multiples of the model's
    ``size_multiple`` so that every start is one too.
    """
    if tile >= length:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"tile {tile} must be larger than overlap {overlap}")
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(tile: int, margin: int, ramp: int) -> Tensor:
    """Weight by distance ``d`` from an inner tile edge: 0 below ``margin``, raised cosine up to 1."""
    d = torch.arange(tile, dtype=torch.float64)
    t = ((d - margin + 1) / (ramp + 1)).clamp(0, 1)
    w = 0.5 - 0.5 * torch.cos(math.pi * t)
    return torch.where(d < margin, torch.zeros_like(w), w)


def axis_weights(length: int, tile: int, overlap: int, *, margin: int) -> tuple[list[int], list[Tensor]]:
    """Tile starts and normalised 1-D blending weights (float32 ``[tile]`` each) along one axis.

    ``margin``: pixels next to an inner tile edge whose output is not used (half the
    receptive field; capped at ``overlap // 2`` so the tiles still cover every pixel).
    For every position ``p`` in ``[0, length)`` the weights of the tiles covering ``p``
    are >= 0 and sum to 1.
    """
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    margin = max(0, min(margin, overlap // 2))
    rise = _ramp(size, margin, max(0, overlap - 2 * margin))
    raw = []
    for s in starts:
        w = torch.ones(size, dtype=torch.float64)
        if s > 0:
            w = w * rise
        if s + size < length:
            w = w * rise.flip(0)
        raw.append(w)
    total = torch.zeros(length, dtype=torch.float64)
    for s, w in zip(starts, raw):
        total[s : s + size] += w
    if not bool((total > 0).all()):  # pragma: no cover - guarded by margin <= overlap // 2
        raise RuntimeError(f"tiling leaves pixels uncovered (length {length}, tile {tile}, overlap {overlap})")
    return starts, [(w / total[s : s + size]).float() for s, w in zip(starts, raw)]


def _source_index(start: int, size: int, length: int, mode: str) -> Tensor | slice:
    """Rows (or columns) of the unpadded image that make up padded ``[start, start + size)``."""
    if start + size <= length:
        return slice(start, start + size)
    idx = torch.arange(start, start + size)
    beyond = idx >= length
    if mode == "reflect":
        return torch.where(beyond, 2 * (length - 1) - idx, idx)
    return idx.clamp_max(length - 1)


def _gather(y: Tensor, rows: Tensor | slice, cols: Tensor | slice) -> Tensor:
    """``y[:, rows, cols]`` (``[C, H, W]``) for slices or index tensors."""
    t = y[:, rows] if isinstance(rows, slice) else y.index_select(1, rows.to(y.device))
    return t[:, :, cols] if isinstance(cols, slice) else t.index_select(2, cols.to(y.device))


def _model_device(model: Denoiser, fallback: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return fallback


def _check_input(y: Tensor) -> Tensor:
    if y.ndim not in (3, 4) or not torch.is_floating_point(y):
        raise ValueError(f"y must be a float tensor [C, H, W] or [B, C, H, W], got {y.dtype} {tuple(y.shape)}")
    return y if y.ndim == 4 else y.unsqueeze(0)


def _sigma_of(sigma: float | Tensor | None, b: int) -> float | Tensor | None:
    if isinstance(sigma, Tensor) and sigma.ndim > 0:
        return sigma.reshape(-1)[b : b + 1]
    return sigma


@torch.inference_mode()
def denoise_whole(
    model: Denoiser, y: Tensor, sigma: float | Tensor | None = None, *, device: torch.device | str | None = None
) -> Tensor:
    """Whole-image inference: pad bottom/right to ``size_multiple`` (as tiling does), run, crop.

    ``y``: ``[C, H, W]`` or ``[B, C, H, W]`` float in ``[0, 1]``; ``sigma`` on the ``[0, 1]``
    scale. Returns ``x_hat`` shaped like ``y`` on ``y``'s device, clamped to ``[0, 1]``.
    Memory grows with the image: use :func:`denoise_tiled` for large images.
    """
    y4 = _check_input(y)
    model.eval()
    dev = torch.device(device) if device is not None else _model_device(model, y4.device)
    m = _multiple(model)
    h, w = y4.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    yp = y4.to(dev, torch.float32)
    if ph or pw:
        yp = torch.nn.functional.pad(yp, (0, pw, 0, ph), mode=pad_mode(h, w, m))
    s = sigma.to(dev) if isinstance(sigma, Tensor) else sigma
    x_hat = model(yp, s)[..., :h, :w].float().clamp_(0, 1).to(y4.device)
    return x_hat if y.ndim == 4 else x_hat[0]


@torch.inference_mode()
def denoise_tiled(
    model: Denoiser,
    y: Tensor,
    sigma: float | Tensor | None = None,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> Tensor:
    """Denoise ``y`` of any size tile by tile; returns ``x_hat`` shaped like ``y``.

    Args:
        model: any :class:`Denoiser` (put it on ``device`` first); set to eval mode.
        y: ``[C, H, W]`` or ``[B, C, H, W]`` float in ``[0, 1]``, any ``H, W >= 1``;
            ``C`` must be what the model takes. Stays where it is (CPU is fine).
        sigma: noise std on the ``[0, 1]`` scale (float, ``[B]`` tensor or ``None``).
        tile: tile side in pixels (rounded down to a multiple of ``size_multiple``);
            default :func:`default_tile`. Images smaller than a tile run as one tile.
        overlap: pixels shared by neighbouring tiles (rounded up to a multiple of
            ``size_multiple``); default :func:`default_overlap`. With ``overlap >=
            model.receptive_field`` the result equals :func:`denoise_whole`.
        batch_size: tiles per forward pass; default: as many as hold :data:`BATCH_PIXELS`.
        device: where the model runs; default: the device of the model's parameters.
        progress: show a tqdm bar (tiles) on stderr.

    Returns:
        float32 on ``y``'s device, clamped to ``[0, 1]``. Besides ``y`` it holds one
        output tensor and one batch of tiles; no padded copy of the image.

    Raises:
        ConfigError: ``tile`` not larger than ``overlap``, or ``batch_size < 1``.
    """
    y4 = _check_input(y)
    tile_px, overlap = tile_geometry(model, tile=tile, overlap=overlap)
    if batch_size is None:
        batch_size = max(1, BATCH_PIXELS // (min(tile_px, y4.shape[-2]) * min(tile_px, y4.shape[-1])))
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")
    model.eval()
    dev = torch.device(device) if device is not None else _model_device(model, y4.device)
    margin = max(0, int(getattr(model, "receptive_field", 0) or 0)) // 2
    out = torch.empty(y4.shape, dtype=torch.float32, device=y4.device)
    for b in range(y4.shape[0]):
        _tiled_one(model, y4[b], _sigma_of(sigma, b), out[b], tile=tile_px, overlap=overlap, margin=margin,
                   batch_size=batch_size, device=dev, progress=progress)
    return out if y.ndim == 4 else out[0]


def _tiled_one(
    model: Denoiser, y: Tensor, sigma: float | Tensor | None, out: Tensor, *,
    tile: int, overlap: int, margin: int, batch_size: int, device: torch.device, progress: bool,
) -> None:
    """Fill ``out`` [C, H, W] with the blended tile outputs for ``y`` [C, H, W]."""
    from tqdm.auto import tqdm

    c, h, w = y.shape
    m = _multiple(model)
    hp, wp = _round_up(h, m), _round_up(w, m)
    mode = pad_mode(h, w, m)
    rows, wy = axis_weights(hp, tile, overlap, margin=margin)
    cols, wx = axis_weights(wp, tile, overlap, margin=margin)
    th, tw = min(tile, hp), min(tile, wp)
    jobs = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    s = sigma.to(device) if isinstance(sigma, Tensor) else sigma
    out.zero_()
    with tqdm(total=len(jobs), unit="tile", disable=not progress, leave=False) as bar:
        for k in range(0, len(jobs), batch_size):
            chunk = jobs[k : k + batch_size]
            batch = torch.stack([
                _gather(y, _source_index(rows[i], th, h, mode), _source_index(cols[j], tw, w, mode)) for i, j in chunk
            ]).to(device, torch.float32)
            sb = s.expand(len(chunk)) if isinstance(s, Tensor) else s
            x_hat = model(batch, sb).float().to(out.device)
            for n, (i, j) in enumerate(chunk):
                r0, c0 = rows[i], cols[j]
                r1, c1 = min(r0 + th, h), min(c0 + tw, w)
                if r1 <= r0 or c1 <= c0:
                    continue  # a tile of padding only (cannot happen with padding < size_multiple)
                weight = wy[i][: r1 - r0, None].to(out.device) * wx[j][None, : c1 - c0].to(out.device)
                out[:, r0:r1, c0:c1].addcmul_(x_hat[n, :, : r1 - r0, : c1 - c0], weight)
            bar.update(len(chunk))
    out.clamp_(0, 1)
