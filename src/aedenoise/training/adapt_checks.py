"""Before ``aedenoise adapt`` trains: is the noise one the self-supervised objectives can learn?

Neighbor2Neighbor, Noise2Void and R2R assume noise independent from pixel to pixel. On noise
that neighbouring pixels share (camera JPEGs after demosaicing and noise reduction, resampled
or blurred images) they learn to keep it, while their own validation score still improves,
so the drift guard cannot see it. :func:`plan_for_noise` measures what the start model
removes from the held-back patches, on the images and then on their pixel-shuffled
sub-images (every ``s``-th pixel, :mod:`aedenoise.models.pixel_shuffle`), where noise
correlated over fewer than ``s`` pixels is independent again; it adapts at the first stride
where the noise is independent, and refuses where none is, unless forced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

import aedenoise.pretrained as pretrained
from aedenoise.config import AdaptConfig
from aedenoise.errors import ConfigError, DataError
from aedenoise.models import Denoiser
from aedenoise.training.adapt import (
    STATE,
    VAL_BATCH,
    AdaptPlan,
    Log,
    StartModel,
    metadata_or_empty,
    plan_adaptation,
    start_stride,
    state_dir,
)
from aedenoise.training.inputs import told_level

CORRELATION_LIMIT = 0.1
"""Above this neighbour correlation of what the start model removes, the noise is taken to be correlated
(``aedenoise adapt`` prints it; the values measured from ``color-blind`` are in docs/self-supervised.md)."""
SHUFFLE_STRIDES = (1, 2, 3, 4)
"""The pixel-shuffle strides ``aedenoise adapt --shuffle auto`` tries, in order: the first one at which the
noise is independent is used (a stride of 4 covers noise correlated over up to 3 pixels)."""


def removed_noise_correlation(model: Denoiser, y: Tensor, sigma: Tensor | None) -> float:
    """The correlation between horizontally and vertically adjacent pixels of ``y - model(y, sigma)``.

    ``y``: noisy patches ``[N, C, P, P]``, ``sigma`` ``[N]`` or ``None``. What a denoiser removes
    from independent noise is close to white (about 0 or below); from noise shared by
    neighbours (demosaiced, compressed, resampled) it is correlated. Neighbor2Neighbor,
    Noise2Void and R2R all assume the first: on the second they learn to keep the noise.
    """
    model.eval()
    with torch.inference_mode():
        r = torch.cat([y[i : i + VAL_BATCH] - model(y[i : i + VAL_BATCH], None if sigma is None else sigma[i : i + VAL_BATCH])
                       for i in range(0, y.shape[0], VAL_BATCH)]).double()
    model.train()
    r = r - r.mean(dim=(-2, -1), keepdim=True)

    def corr(a: Tensor, b: Tensor) -> float:
        return float((a * b).sum() / (a.square().sum().sqrt() * b.square().sum().sqrt()).clamp_min(1e-30))

    return 0.5 * (corr(r[..., 1:], r[..., :-1]) + corr(r[..., 1:, :], r[..., :-1, :]))


def plan_for_noise(start: StartModel, images: Sequence[tuple[str, Tensor]], config: AdaptConfig, *,
                   shuffle: int | None, force: bool, auto_objective: bool = False, log: Log = print) -> AdaptPlan:
    """The plan :func:`aedenoise.training.adapt.adapt` trains: at the pixel-shuffle stride ``shuffle`` if given
    (a ``pixel_shuffle`` start model: its own), else at the smallest of :data:`SHUFFLE_STRIDES` where the
    noise the start model removes from the held-back patches is independent between neighbours
    (:func:`removed_noise_correlation` at most :data:`CORRELATION_LIMIT`; each value is logged).

    Where the noise is correlated at every stride tried: :class:`ConfigError`, or with ``force``
    the plan at the stride of the lowest correlation. Errors of :func:`plan_adaptation` pass through.

    ``auto_objective``: ``config.objective`` is the one for the images themselves; on sub-images
    (stride > 1) r2r (:func:`shuffled_objective`) is used instead.
    """
    own = start_stride(start)
    if own is not None and shuffle not in (None, own):
        raise ConfigError(f"--from {start.label} works on {own}x{own} pixel-shuffled sub-images; adapt it at that "
                          f"stride (--shuffle {own} or auto), not {shuffle}")
    strides = (own,) if own is not None else (shuffle,) if shuffle is not None else SHUFFLE_STRIDES
    best: tuple[float, AdaptPlan] | None = None
    tried: list[str] = []
    for s in strides:
        try:
            plan = plan_adaptation(start, images, shuffled_objective(config) if auto_objective and s > 1 else config,
                                   shuffle=s, log=log)
        except DataError as err:
            if best is None:
                raise
            log(f"not trying {s}x{s} pixel-shuffled sub-images: {err}")
            break
        if plan.constant:
            return plan
        rho = _correlation(plan)
        tried.append(f"{s}x{s} sub-images" if s > 1 else "the images")
        where = f" on the {s}x{s} pixel-shuffled sub-images" if s > 1 else ""
        limit = CORRELATION_LIMIT
        verdict = f"above {limit:g}: correlated" if rho > limit else f"at most {limit:g}: independent"
        log(f"neighbour correlation of the noise {start.label} removes{where}: {rho:.2f} ({verdict})")
        if rho <= limit:
            if s > 1:
                log(f"adapting with {plan.config.objective.kind} on the {s}x{s} pixel-shuffled sub-images, where the "
                    f"noise is independent between neighbours; the output applies the model to them")
                if plan.config.objective.kind != "r2r":
                    log(f"on sub-images {plan.config.objective.kind} learns from pixels {s} apart in the image, which "
                        f"blurs: where measured it made the model worse (docs/self-supervised.md); r2r does not")
            return plan
        if best is None or rho < best[0]:
            best = (rho, plan)
    assert best is not None  # at least one stride was planned or the error was raised
    rho, plan = best
    message = (f"the noise {start.label} removes from these images is correlated between neighbouring pixels "
               f"(lowest correlation {rho:.2f}, tried: {', '.join(tried)}; independent noise gives about 0): "
               f"{plan.config.objective.kind} assumes independent noise and would learn to keep this noise, so "
               f"adapting would make the model worse on these images")
    if not force:
        raise ConfigError(f"{message}; not adapted (--force adapts anyway; docs/self-supervised.md)")
    log(f"{message}; adapting anyway (--force){f' on the {plan.shuffle}x{plan.shuffle} sub-images' if plan.shuffle > 1 else ''}")
    return plan


def shuffled_objective(config: AdaptConfig) -> AdaptConfig:
    """``config`` with the objective for pixel-shuffled sub-images: r2r (its target is the same pixel with
    independent noise, where neighbor2neighbor's and n2v's are pixels ``stride`` apart), the level kept."""
    level = {"sigma": config.objective.sigma} if config.objective.sigma is not None else {}
    return AdaptConfig.model_validate({**config.to_json_dict(), "objective": {"kind": "r2r", **level}})


def _correlation(plan: AdaptPlan) -> float:
    cfg = plan.config.objective
    sigma = told_level(plan.level, plan.data.val_y, given=cfg.sigma, carried=plan.data.val_sigma)
    return removed_noise_correlation(plan.model, plan.data.val_y, sigma)


def check_output(out: Path, inputs: Sequence[Path], *, overwrite: bool, resume: bool) -> None:
    """Refuse an output that is not ``*.safetensors``, lies inside the shipped weights' folder, is an
    input, or exists (unless ``overwrite``, or ``resume`` and it is this adaptation's own earlier output);
    and an interrupted adaptation's state beside it unless ``resume`` or ``overwrite`` says what to do."""
    for src in inputs:
        if out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src)):
            raise ConfigError(f"--out {out} is the input {src}; refusing to overwrite an input")
    if out.resolve().is_relative_to(Path(pretrained.__file__).resolve().parent):
        raise ConfigError(f"--out {out} lies in the shipped weights' folder; refusing to overwrite package files")
    if out.suffix.lower() != ".safetensors":
        raise ConfigError(f"--out {out}: name the output *.safetensors (a checkpoint file)")
    state = state_dir(out) / STATE
    if out.exists() and not overwrite and not (resume and state.is_file() and "adapted_from" in metadata_or_empty(out)):
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    if state.is_file() and not (resume or overwrite):
        step = metadata_or_empty(state).get("state", {}).get("step", "?")
        raise ConfigError(f"{state.parent} holds an adaptation stopped at step {step}: add --resume to continue it, "
                          f"or --overwrite to start over")
