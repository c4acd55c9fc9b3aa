"""Self-supervised objectives: training a denoiser from noisy images alone.

One small class per objective, each with ``loss(model, y, sigma, generator)`` (a scalar to
minimise, with gradients) and ``validation_loss`` (the score validation reports; lower is
better). ``y`` is a batch of noisy patches ``[B, C, H, W]`` (float32, nominally [0, 1]),
``sigma`` the ``[B]`` noise levels on [0, 1] a model that reads one is told (``None`` for
blind models), ``generator`` the source of every random draw, so the same seed gives the
same numbers. ``model`` is any :class:`~aedenoise.models.Denoiser` (``model(y, sigma)``).

* :class:`Neighbor2Neighbor` (Huang et al., CVPR 2021): two half-size images from
  different neighbouring pixels of each 2x2 cell; one is the input, the other the target.
  Needs noise that is independent between neighbouring pixels and zero-mean.
* :class:`Noise2Void` (Krull et al., CVPR 2019), with the N2V2 replacement (Hoeck et al.,
  ECCV workshops 2022): masked pixels are replaced and the loss is taken on them alone.
  Needs pixel-independent, zero-mean noise.
* :class:`Recorrupted2Recorrupted` (Pang et al., CVPR 2021): Gaussian noise of a known level.

:func:`objective_score` runs ``validation_loss`` over a fixed set with fixed draws.
docs/self-supervised.md says when to use which.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

from aedenoise.config import ObjectiveConfig
from aedenoise.errors import ConfigError
from aedenoise.models import Denoiser

Level = Literal["drawn", "given", "estimated", "none"]

#: Ordered pairs of different, edge-adjacent pixels of a 2x2 cell (0 top left, 1 top right,
#: 2 bottom left, 3 bottom right): the 8 choices of the Neighbor2Neighbor sub-sampler.
NEIGHBOUR_PAIRS = torch.tensor([(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)])
N2V_RADIUS = 2
"""Noise2Void's neighbourhood: the ``5 x 5`` window around a masked pixel, without the pixel itself."""


class Objective(Protocol):
    name: str

    def loss(self, model: nn.Module, y: Tensor, sigma: Tensor | None, generator: torch.Generator) -> Tensor: ...

    def validation_loss(self, model: nn.Module, y: Tensor, sigma: Tensor | None, generator: torch.Generator) -> Tensor: ...


def neighbour_pairs(y: Tensor, generator: torch.Generator) -> Tensor:
    """The sub-sampler of :class:`Neighbor2Neighbor` for ``y`` [B, C, H, W] (H, W even).

    Returns ``[2, B, H/2, W/2]`` int64 positions in their 2x2 cell (0-3): the pixel of
    ``g1`` and, a different edge-adjacent one, of ``g2``; one choice of 8 per cell and
    image, uniform, the same for every channel.
    """
    b, _, h, w = y.shape
    choice = torch.randint(0, len(NEIGHBOUR_PAIRS), (b, h // 2, w // 2), generator=generator, device=generator.device)
    pairs = NEIGHBOUR_PAIRS.to(choice.device)[choice].to(y.device)  # [B, H/2, W/2, 2]
    return pairs.permute(3, 0, 1, 2)


def subsample(t: Tensor, positions: Tensor) -> Tensor:
    """The pixel at ``positions`` [B, H/2, W/2] (0-3) of each 2x2 cell of ``t`` [B, C, H, W]: ``[B, C, H/2, W/2]``."""
    b, c, h, w = t.shape
    cells = t.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
    return cells.gather(-1, positions[:, None, :, :, None].expand(b, c, h // 2, w // 2, 1)).squeeze(-1)


class Neighbor2Neighbor:
    """``||f(g1(y)) - g2(y)||^2 + gamma ||f(g1(y)) - g2(y) - (g1(f(y)) - g2(f(y)))||^2`` (means over pixels).

    ``f(y)`` in the regulariser is computed without a gradient, as in the paper. The
    paper's equation has a constant ``gamma`` (2); its reference code ramps it up from 0
    over training, which this class does not. Both terms are squared errors whatever
    ``optim.loss`` says. ``H`` and ``W`` must be even, and ``H/2``, ``W/2`` multiples of
    the model's ``size_multiple``.
    """

    name = "neighbor2neighbor"

    def __init__(self, *, gamma: float) -> None:
        self.gamma = gamma

    def _terms(self, model: nn.Module, y: Tensor, sigma: Tensor | None, generator: torch.Generator,
               *, regularise: bool) -> tuple[Tensor, Tensor]:
        first, second = neighbour_pairs(y, generator)
        g1, g2 = subsample(y, first), subsample(y, second)
        residual = model(g1, sigma).float() - g2
        if not regularise:
            return residual.square().mean(), residual.new_zeros(())
        with torch.no_grad():
            f_y = model(y, sigma).float()
        gap = subsample(f_y, first) - subsample(f_y, second)
        return residual.square().mean(), (residual - gap).square().mean()

    def loss(self, model: nn.Module, y: Tensor, sigma: Tensor | None, generator: torch.Generator) -> Tensor:
        reconstruction, regulariser = self._terms(model, y, sigma, generator, regularise=self.gamma > 0)
        return reconstruction + self.gamma * regulariser

    def validation_loss(self, model: nn.Module, y: Tensor, sigma: Tensor | None, generator: torch.Generator) -> Tensor:
        """The first term alone (the regulariser is zero for a perfect denoiser, but not a quality score)."""
        return self._terms(model, y, sigma, generator, regularise=False)[0]


def _neighbour_offsets(radius: int) -> Tensor:
    """``[K, 2]`` (row, column) offsets of the ``(2r+1)^2 - 1`` window pixels around, not at, the centre."""
    r = torch.arange(-radius, radius + 1)
    grid = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1).reshape(-1, 2)
    return grid[(grid != 0).any(dim=1)]


def _reflect(v: Tensor, size: int) -> Tensor:
    """Indices ``v`` reflected into ``[0, size)`` about the border pixels (``-1 -> 1``, ``size -> size - 2``)."""
    v = v.abs()
    return torch.where(v >= size, 2 * (size - 1) - v, v)


class Noise2Void:
    """Blind-spot training: a fraction of pixels is masked (replaced) and the loss is the squared error there only.

    Per patch ``max(1, round(mask_fraction * H * W))`` pixels are chosen uniformly
    without replacement (the same pixels in every channel). Each gets, channel by channel,
    the value of one neighbour drawn uniformly from its 5x5 window without the centre
    (the original N2V implementation may also draw the centre itself), or with ``n2v2``
    the median of those 24 neighbours (the lower of the two middle values). Windows are
    reflected at the patch border; where a reflected neighbour would be the centre itself,
    the opposite neighbour is used. N2V2 also changes the network (blur pooling, no top
    skip connection); here only its replacement is used, so it works with every model.
    """

    name = "n2v"

    def __init__(self, *, mask_fraction: float, n2v2: bool, radius: int = N2V_RADIUS) -> None:
        self.mask_fraction, self.n2v2, self.radius = mask_fraction, n2v2, radius
        self.offsets = _neighbour_offsets(radius)  # [K, 2]

    def mask(self, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(y_in, mask)``: ``y`` with the masked pixels replaced, and ``mask`` [B, 1, H, W] bool (True: masked)."""
        b, c, h, w = y.shape
        if min(h, w) <= 2 * self.radius:
            raise ConfigError(f"n2v needs patches larger than {2 * self.radius} pixels (got {h}x{w})")
        n = max(1, round(self.mask_fraction * h * w))
        dev = generator.device
        chosen = torch.rand(b, h * w, generator=generator, device=dev).argsort(dim=1)[:, :n].to(y.device)  # [B, n]
        offsets = self.offsets.to(y.device)
        r0, c0 = (chosen // w)[..., None], (chosen % w)[..., None]
        rows, cols = _reflect(r0 + offsets[:, 0], h), _reflect(c0 + offsets[:, 1], w)  # [B, n, K]
        # Near the border a reflected neighbour can land on the centre itself (row 1, offset -2 -> row 1):
        # take the opposite neighbour there, so the blind spot never sees its own pixel.
        own = (rows == r0) & (cols == c0)
        rows = torch.where(own, _reflect(r0 - offsets[:, 0], h), rows)
        cols = torch.where(own, _reflect(c0 - offsets[:, 1], w), cols)
        flat = y.reshape(b, c, h * w)
        around = flat.gather(2, (rows * w + cols).reshape(b, 1, -1).expand(b, c, -1)).reshape(b, c, n, -1)
        if self.n2v2:
            values = around.median(dim=-1).values  # [B, C, n]
        else:
            pick = torch.randint(0, offsets.shape[0], (b, n), generator=generator, device=dev).to(y.device)
            values = around.gather(3, pick[:, None, :, None].expand(b, c, n, 1)).squeeze(-1)
        y_in = flat.clone().scatter_(2, chosen[:, None, :].expand(b, c, n), values).reshape(b, c, h, w)
        mask = torch.zeros(b, h * w, dtype=torch.bool, device=y.device).scatter_(1, chosen, True)
        return y_in, mask.reshape(b, 1, h, w)

    def loss(self, model: nn.Module, y: Tensor, sigma: Tensor | None, generator: torch.Generator) -> Tensor:
        y_in, mask = self.mask(y, generator)
        x_hat = model(y_in, sigma).float()
        return ((x_hat - y).square() * mask).sum() / (mask.sum() * y.shape[1])

    validation_loss = loss


class Recorrupted2Recorrupted:
    """``||f(y_hat) - y_bar||^2`` with ``y_hat = y + alpha sigma z``, ``y_bar = y - sigma / alpha z``, ``z ~ N(0, I)``.

    For additive white Gaussian noise of level ``sigma`` (per image, on [0, 1]), ``y_hat``
    and ``y_bar`` have independent noise, so ``y_bar`` is an unbiased target for the
    denoiser of ``y_hat``. ``y_hat``'s noise level is ``sigma sqrt(1 + alpha^2)``; a model
    that reads a level is told that one during training and ``sigma`` at test time, where
    it is applied to ``y`` as it is (the paper also averages outputs over several
    recorrupted copies at test time; this package does not).
    """

    name = "r2r"

    def __init__(self, *, alpha: float) -> None:
        self.alpha = alpha

    def recorrupt(self, y: Tensor, sigma: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(y_hat, y_bar)`` for ``y`` [B, C, H, W] and its levels ``sigma`` [B]."""
        z = torch.randn(y.shape, generator=generator, device=generator.device, dtype=torch.float32).to(y.device, y.dtype)
        s = sigma.to(y.device, y.dtype).reshape(-1, 1, 1, 1)
        return y + self.alpha * s * z, y - s / self.alpha * z

    def loss(self, model: nn.Module, y: Tensor, sigma: Tensor | None, generator: torch.Generator) -> Tensor:
        if sigma is None:
            raise ValueError("r2r needs the noise level of every image (objective.sigma, or estimated)")
        y_hat, y_bar = self.recorrupt(y, sigma, generator)
        return (model(y_hat, sigma * math.sqrt(1 + self.alpha**2)).float() - y_bar).square().mean()

    validation_loss = loss


def build_objective(config: ObjectiveConfig) -> Objective | None:
    """The objective ``config`` names, or ``None`` for ``supervised`` (the loop's ``optim.loss``)."""
    if config.kind == "neighbor2neighbor":
        return Neighbor2Neighbor(gamma=config.gamma)
    if config.kind == "n2v":
        return Noise2Void(mask_fraction=config.mask_fraction, n2v2=config.n2v2)
    if config.kind == "r2r":
        return Recorrupted2Recorrupted(alpha=config.alpha)
    return None


def patch_multiple(config: ObjectiveConfig, model: Denoiser) -> int:
    """What patch sides must be a multiple of: the model's ``size_multiple``, twice that for neighbor2neighbor."""
    return int(model.size_multiple) * (2 if config.kind == "neighbor2neighbor" else 1)


def check_patch_size(config: ObjectiveConfig, model: Denoiser, size: int, *, what: str) -> None:
    """Raise :class:`ConfigError` unless patches of ``size`` pixels fit ``model`` under this objective."""
    m = patch_multiple(config, model)
    if size % m:
        name = model.arch.get("name", "the model")
        why = (f"its half-size sub-images must be multiples of {name}'s {model.size_multiple}"
               if config.kind == "neighbor2neighbor" else f"{name} needs it")
        raise ConfigError(f"{what} = {size} must be a multiple of {m} for objective {config.kind} ({why}); "
                          f"use {max(m, size // m * m)} or {(size // m + 1) * m}")


def level_source(config: ObjectiveConfig, model: Denoiser) -> Level:
    """Where the level a training step hands on comes from (docs/self-supervised.md).

    ``drawn``: supervised training, the level the noise model drew; ``given``:
    ``objective.sigma``; ``estimated``: per image (:func:`aedenoise.noise.estimate_sigma`),
    when the model reads a level or the objective (r2r) needs one; ``none``: neither.
    """
    if not config.self_supervised:
        return "drawn"
    if config.sigma is not None:
        return "given"
    return "estimated" if model.uses_sigma or config.kind == "r2r" else "none"


def objective_score(objective: Objective, model: nn.Module, y: Tensor, sigma: Tensor | None, *, seed: int,
                    batch_size: int, device: torch.device | str = "cpu") -> float:
    """The mean ``validation_loss`` of ``model`` (eval mode) on ``y`` [N, C, H, W], in batches.

    Batch ``i`` draws from a CPU generator seeded ``seed + i``: the same masks, sub-samplers
    and recorruptions every time, so scores of one run compare.
    """
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for k, i in enumerate(range(0, y.shape[0], batch_size)):
            yb = y[i : i + batch_size].to(device)
            sb = None if sigma is None else sigma[i : i + batch_size].to(device)
            g = torch.Generator().manual_seed(seed + k)
            total += float(objective.validation_loss(model, yb, sb, g)) * yb.shape[0]
    return total / y.shape[0]
