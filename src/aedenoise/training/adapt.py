"""Adapting a trained denoiser to one's own noisy images, with no clean image: ``aedenoise adapt``.

:func:`plan_adaptation` checks everything a user can get wrong (channels, sizes) and cuts
the patches; :func:`adapt` fine-tunes the start model (shipped weights or a checkpoint,
:func:`resolve_start`) with a self-supervised objective (:mod:`aedenoise.training.selfsupervised`) on patches of
the given images (:func:`aedenoise.data.noisy.noisy_patch_data`: a share of each image's
cells is held back), and writes the best-scoring weights as a checkpoint that ``aedenoise
denoise --model`` and ``aedenoise evaluate --method`` take.

* **Guard against drift**: the objective's validation score on the held-back patches (fixed
  draws) is measured before the first step, every ``val_every`` steps and at the end; the
  best weights are kept, and the output is the start model unless the best score is at
  least :data:`MIN_GAIN` below the start model's (a smaller gain of the objective's score
  came with a loss of PSNR: see the constant).
* **Resume**: ``<out>.adapt/`` beside the output holds ``state.safetensors`` (weights,
  optimizer, step, scores), ``best.safetensors`` and ``config.json``, each written
  atomically, at every validation and on Ctrl-C. Every step draws from a generator seeded
  by ``(seed, step)``, so the step number is the whole random state: a resumed run takes
  the steps an uninterrupted one would.
* **Budget**: ``steps`` in total (resumes included) and/or ``minutes`` of this invocation.
* **Correlated noise**: with ``shuffle`` > 1 (chosen by
  :func:`aedenoise.training.adapt_checks.plan_for_noise`) the network is trained on the images'
  pixel-shuffled sub-images, whose noise is independent between neighbours, and the output is
  a ``pixel_shuffle`` model that applies it to them.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

import aedenoise.pretrained as pretrained
from aedenoise.atomic import write_json
from aedenoise.config import AdaptConfig
from aedenoise.data.noisy import NoisyPatchData, fit_patch_size, noisy_patch_data
from aedenoise.data.sources import epoch_generator
from aedenoise.errors import CheckpointError, ConfigError
from aedenoise.hardware import cpu_description
from aedenoise.models import Denoiser, load_checkpoint, read_metadata, save_checkpoint
from aedenoise.models.pixel_shuffle import PixelShuffled, wrap
from aedenoise.training.inputs import VAL_SEED_OFFSET, told_level
from aedenoise.training.loop import choose_threads
from aedenoise.training.optimizers import load_optimizer_state, make_optimizer
from aedenoise.training.selfsupervised import Level, build_objective, level_source, objective_score, patch_multiple

STATE, BEST, CONFIG = "state.safetensors", "best.safetensors", "config.json"
REL_TOL = 1e-4
"""A validation score counts as better only below ``best * (1 - REL_TOL)``."""
MIN_GAIN = 0.05
"""The adapted weights are written only if their score is at least this share below the start model's.
The objectives' scores are not PSNR: from `color-blind` on CBSD68 (docs/self-supervised.md), a 3.2%
better neighbor2neighbor score came with 0.21 dB less PSNR (white Gaussian noise it already knew), an
11% better one with 1.85 dB more (Poisson noise it did not). r2r's score is an unbiased estimate of the
squared error (plus a constant), so any gain counts there (:func:`min_gain`)."""
VAL_BATCH = 16
_STEP_STREAM = 49_979_687
Log = Callable[[str], None]


def min_gain(kind: str) -> float:
    """The least relative fall of objective ``kind``'s validation score that gets adapted weights written:
    :data:`MIN_GAIN` for neighbor2neighbor and n2v, whose scores also reward blur (their targets are other
    pixels), 0 for r2r, whose target is the same pixel with independent noise."""
    return 0.0 if kind == "r2r" else MIN_GAIN


@dataclass(frozen=True)
class StartModel:
    """The weights adapting starts from: ``label`` (shipped name, or the path as given), ``path``, ``sha256`` of the file."""

    label: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class AdaptResult:
    out: Path
    steps: int  # steps done in all (resumes included)
    start_score: float
    best_score: float
    best_step: int  # 0: the start model
    seconds: float  # training and validation, resumes included
    patch_size: int
    images: tuple[str, ...]
    reads_sigma: bool  # the model reads a noise level: denoise it with --sigma (auto: estimated, as here)
    shuffle: int  # the model works on the shuffle x shuffle pixel-shuffled sub-images (1: on the images)

    @property
    def improved(self) -> bool:
        return self.best_step > 0


def state_dir(out: str | os.PathLike[str]) -> Path:
    """The side folder of an output: ``my-model.safetensors`` -> ``my-model.safetensors.adapt/``."""
    out = Path(out)
    return out.with_name(out.name + ".adapt")


def resolve_start(spec: str) -> StartModel:
    """The start model ``spec`` names: a checkpoint file, or shipped weights by name."""
    path = Path(spec)
    if not path.is_file():
        if spec not in pretrained.list_pretrained():
            raise ConfigError(f"--from {spec}: no such checkpoint file or shipped weights; shipped: "
                              f"{', '.join(pretrained.list_pretrained()) or 'none'} (classical methods cannot be adapted)")
        path = pretrained.pretrained_weights(spec).path
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return StartModel(label=spec, path=path, sha256=digest.hexdigest())


def check_channels(images: Sequence[tuple[str, Tensor]], channels: int, *, model: str) -> None:
    """Raise :class:`ConfigError` for gray and color images mixed (naming the fewer kind), or images
    whose channel count is not the model's ``channels``. Nothing is converted: the noise would change."""
    kinds = {1: "gray", 3: "color"}
    by: dict[int, list[str]] = {}
    for name, im in images:
        by.setdefault(int(im.shape[0]), []).append(name)
    if len(by) > 1:
        odd_c = min(by, key=lambda c: len(by[c]))
        odd = by[odd_c]
        listed = ", ".join(odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
        raise ConfigError(f"gray and color images mixed; the {kinds[odd_c]} one(s): {listed}; adapt gray and color "
                          f"images separately (each kind gets its own model)")
    have = next(iter(by))
    if have != channels:
        raise ConfigError(f"{model} takes {kinds.get(channels, channels)} images but these are {kinds.get(have, have)}; "
                          f"choose a {kinds.get(have, have)} model with --from")


def metadata_or_empty(path: Path) -> dict[str, Any]:
    try:
        return read_metadata(path)
    except CheckpointError:
        return {}


@dataclass(frozen=True)
class AdaptPlan:
    """What :func:`adapt` will train, every user error found (:func:`plan_adaptation`) before any work.

    ``shapes``: those of the images used (``[C, H, W]``, in ``data.names`` order);
    ``constant``: every one of them is constant (no noise to learn from: no step is taken);
    ``shuffle``: the patches are of the images' ``shuffle x shuffle`` pixel-shuffled sub-images,
    on which ``model`` is trained (and the output applies it: :mod:`aedenoise.models.pixel_shuffle`).
    """

    start: StartModel
    model: Denoiser  # a pixel_shuffle start model's inner one
    config: AdaptConfig
    data: NoisyPatchData
    level: Level
    patch_size: int
    shapes: tuple[tuple[int, ...], ...]
    constant: bool
    shuffle: int = 1


def start_stride(start: StartModel) -> int | None:
    """The pixel-shuffle stride ``start`` works at if it is a ``pixel_shuffle`` model, else ``None``."""
    arch = read_metadata(start.path).get("model") or {}
    return int(arch["args"]["stride"]) if arch.get("name") == "pixel_shuffle" else None  # create_model records it


def plan_adaptation(start: StartModel, images: Sequence[tuple[str, Tensor]], config: AdaptConfig, *,
                    shuffle: int = 1, log: Log = print) -> AdaptPlan:
    """Load ``start``, check ``images`` (``(name, float32 [C, H, W] in [0, 1])``) against it, fit the patch
    size to them (notes through ``log``) and cut the training and held-back patches (of the
    ``shuffle x shuffle`` pixel-shuffled sub-images when ``shuffle`` > 1; a ``pixel_shuffle``
    start model takes its own stride only).

    Raises :class:`ConfigError` for images of another channel count than the model's (or
    mixed), :class:`DataError` for images too small for two patches of the minimum size.
    """
    model = load_checkpoint(start.path).model
    if isinstance(model, PixelShuffled):
        if shuffle != model.stride:
            raise ConfigError(f"--from {start.label} works on {model.stride}x{model.stride} pixel-shuffled sub-images; "
                              f"adapt it at that stride (--shuffle {model.stride}), not {shuffle}")
        model = model.inner
    model.train()
    check_channels(images, int(model.in_channels), model=f"--from {start.label}")
    cfg = config.objective
    level = level_source(cfg, model)
    p = fit_patch_size(images, config.patch_size, multiple=patch_multiple(cfg, model), shuffle=shuffle)
    if p != config.patch_size:
        name, im = min(images, key=lambda ni: min(ni[1].shape[-2:]))
        log(f"patch {config.patch_size} -> {p} pixels to fit the images (smallest: {name}, {im.shape[-2]}x{im.shape[-1]})")
    if left_out := [n for n, im in images if min(im.shape[-2:]) // shuffle < p]:
        log(f"left out (smaller than the {p}-pixel patch{' of the sub-images' if shuffle > 1 else ''}): {', '.join(left_out)}")
    used = [(n, im) for n, im in images if min(im.shape[-2:]) // shuffle >= p]
    constant = [n for n, im in used if bool((im == im.flatten()[0]).all())]
    for name in constant:
        log(f"{name} is constant: it holds no noise to learn from")
    data = noisy_patch_data(used, patch_size=p, patches_per_epoch=config.batch_size, val_fraction=config.val_fraction,
                            val_count=config.val_count, seed=config.seed, estimate_levels=level == "estimated",
                            shuffle=shuffle)
    return AdaptPlan(start=start, model=model, config=config, data=data, level=level, patch_size=p,
                     shapes=tuple(tuple(im.shape) for _, im in used), constant=len(constant) == len(used), shuffle=shuffle)


def adapt(plan: AdaptPlan, out: str | os.PathLike[str], *, resume: bool = False, progress: bool = True,
          log: Log = print) -> AdaptResult:
    """Fine-tune ``plan.model`` on ``plan.data`` and write the best weights to ``out`` (checked first:
    :func:`aedenoise.training.adapt_checks.check_output`).

    ``resume``: continue from ``<out>.adapt/`` when it holds a state (same settings but the
    budget, same images, same start); otherwise any old state there is replaced. ``log``
    gets the notes (resuming, the guard's verdict). Ctrl-C saves the state and re-raises.
    """
    out, folder = Path(out), state_dir(out)
    model, config, data, start, p = plan.model, plan.config, plan.data, plan.start, plan.patch_size
    cfg, level = config.objective, plan.level
    objective = build_objective(cfg)
    torch.set_num_threads(choose_threads(config.threads))
    val_sigma = told_level(level, data.val_y, given=cfg.sigma, carried=data.val_sigma)
    opt = make_optimizer("adam", list(model.parameters()), lr=config.lr, weight_decay=0.0)
    inputs = _inputs(plan)

    def score() -> float:
        s = objective_score(objective, model, data.val_y, val_sigma, seed=config.seed + VAL_SEED_OFFSET,
                            batch_size=VAL_BATCH)
        model.train()
        return s

    st = _load_state(plan, out, opt) if resume and (folder / STATE).is_file() else None
    if st is None:
        if resume:
            log(f"nothing to resume in {folder}; starting from step 0")
        for name in (STATE, BEST, CONFIG):  # an old adaptation's files, nothing else
            (folder / name).unlink(missing_ok=True)
        write_json(folder / CONFIG, {"adapt": config.to_json_dict(), **inputs})
        s0 = score()
        st = {"step": 0, "start_score": s0, "best_score": s0, "best_step": 0, "seconds": 0.0, "history": [[0, s0]]}
        save_checkpoint(folder / BEST, model, metadata={"best_score": s0, "best_step": 0})
        _save_state(folder, model, opt, st, config, inputs)
    else:
        log(f"resuming at step {st['step']} (best score {st['best_score']:.6g} at step {st['best_step']})")
    limit = 0 if plan.constant else config.steps
    deadline = None if config.minutes is None else time.monotonic() + 60 * config.minutes
    t_last, updating = time.monotonic(), False
    bar = _bar(progress, st["step"], config.steps)
    try:
        while (limit is None or st["step"] < limit) and (deadline is None or time.monotonic() < deadline):
            g = epoch_generator(config.seed + _STEP_STREAM, st["step"])
            batch = data.draw(config.batch_size, generator=g)
            sigma = told_level(level, batch.y, given=cfg.sigma, carried=batch.sigma)
            loss = objective.loss(model, batch.y, sigma, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            updating = True  # the weights change before the step is counted
            opt.step()
            st["step"] += 1
            updating = False
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.3g}", best=f"{st['best_score']:.4g}")
            if st["step"] % config.val_every == 0:
                t_last = _checkpoint(folder, model, opt, st, score(), config, inputs, t_last)
        if st["history"][-1][0] != st["step"]:
            t_last = _checkpoint(folder, model, opt, st, score(), config, inputs, t_last)
    except KeyboardInterrupt:
        if not updating:
            st["seconds"] += time.monotonic() - t_last
            _save_state(folder, model, opt, st, config, inputs)
        log(f"interrupted at step {st['step']}; the same command plus --resume continues from the last saved step")
        raise
    finally:
        if bar is not None:
            bar.close()
    gain = 1 - st["best_score"] / st["start_score"] if st["start_score"] > 0 else 0.0
    accepted = st["best_step"] > 0 and gain >= min_gain(cfg.kind)
    best = load_checkpoint(folder / BEST).model if accepted else _start_inner(start)
    _write_output(out, wrap(best, plan.shuffle), st, start, config, data, p, accepted=accepted, shuffle=plan.shuffle)
    kept = f"the start model {start.label} unchanged" + (
        f" (applied to {plan.shuffle}x{plan.shuffle} pixel-shuffled sub-images)" if plan.shuffle > 1 else "")
    if plan.constant:
        log(f"every image is constant (no noise to learn from): {out} holds {kept}")
    elif st["best_step"] == 0:
        log(f"the validation score never improved on the start model's ({st['start_score']:.6g}): {out} holds {kept}")
    elif not accepted:
        log(f"the validation score improved by only {100 * gain:.1f}% (at least {100 * min_gain(cfg.kind):g}% is needed "
            f"to trust it): {out} holds {kept}")
    return AdaptResult(out=out, steps=st["step"], start_score=st["start_score"], best_score=st["best_score"],
                       best_step=st["best_step"] if accepted else 0, seconds=st["seconds"], patch_size=p,
                       images=data.names, reads_sigma=bool(model.uses_sigma), shuffle=plan.shuffle)


def _start_inner(start: StartModel) -> Denoiser:
    model = load_checkpoint(start.path).model
    return model.inner if isinstance(model, PixelShuffled) else model


def _checkpoint(folder: Path, model: Denoiser, opt: torch.optim.Optimizer, st: dict[str, Any], score: float,
                config: AdaptConfig, inputs: dict[str, Any], t_last: float) -> float:
    """Record a validation ``score``, keep the weights if best, save the state; returns the new time mark."""
    st["history"].append([st["step"], score])
    if score < st["best_score"] * (1 - REL_TOL):
        st["best_score"], st["best_step"] = score, st["step"]
        save_checkpoint(folder / BEST, model, metadata={"best_score": score, "best_step": st["step"]})
    now = time.monotonic()
    st["seconds"] += now - t_last
    _save_state(folder, model, opt, st, config, inputs)
    return now


def _save_state(folder: Path, model: Denoiser, opt: torch.optim.Optimizer, st: dict[str, Any], config: AdaptConfig,
                inputs: dict[str, Any]) -> None:
    save_checkpoint(folder / STATE, model, optimizer=opt, metadata={"state": st, "adapt": config.to_json_dict(), "inputs": inputs})


def _inputs(plan: AdaptPlan) -> dict[str, Any]:
    """What a resumed adaptation must share with the saved one, besides the settings: images, start, patch."""
    return {"images": list(plan.data.names), "shapes": [list(s) for s in plan.shapes],
            "start": {"name": plan.start.label, "sha256": plan.start.sha256}, "patch_size": plan.patch_size,
            "shuffle": plan.shuffle}


def check_resumable(plan: AdaptPlan, out: str | os.PathLike[str]) -> None:
    """Raise :class:`ConfigError` if ``<out>.adapt/`` holds the state of another adaptation (settings other
    than the budget, other images, another start model); nothing to resume is fine."""
    state = state_dir(out) / STATE
    if not state.is_file():
        return
    meta = read_metadata(state)
    saved = AdaptConfig.model_validate(meta["adapt"]).to_json_dict()
    mine = plan.config.to_json_dict()
    for key in ("steps", "minutes", "threads"):  # the budget may change on resume
        saved.pop(key)
        mine.pop(key)
    differ = sorted(k for k in mine if saved[k] != mine[k])
    names = {"shapes": "images", "start": "start model", "patch_size": "patch size", "shuffle": "pixel-shuffle stride"}
    saved_in, mine_in = meta["inputs"], _inputs(plan)
    differ += sorted({names.get(k, k) for k in mine_in if saved_in.get(k, 1 if k == "shuffle" else None) != mine_in[k]})
    if differ:
        raise ConfigError(f"{state.parent}: cannot resume another adaptation (it differs in: {', '.join(differ)}); "
                          f"leave out --resume and pass --overwrite to start over")


def saved_shuffle(out: str | os.PathLike[str]) -> int | None:
    """The pixel-shuffle stride of the adaptation saved beside ``out`` (``None``: nothing saved)."""
    state = state_dir(out) / STATE
    return int(metadata_or_empty(state).get("inputs", {}).get("shuffle", 1)) if state.is_file() else None


def _load_state(plan: AdaptPlan, out: Path, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The saved state, its weights and optimizer loaded into ``plan.model`` and ``opt`` (:func:`check_resumable` first)."""
    check_resumable(plan, out)
    folder = state_dir(out)
    ckpt = load_checkpoint(folder / STATE)
    plan.model.load_state_dict(ckpt.model.state_dict())
    load_optimizer_state(opt, ckpt.optimizer_state)
    st = dict(ckpt.metadata["state"])
    best = read_metadata(folder / BEST)  # written before the state: it may be newer
    st["best_score"], st["best_step"] = float(best["best_score"]), int(best["best_step"])
    return st


def _write_output(out: Path, model: Denoiser, st: dict[str, Any], start: StartModel, config: AdaptConfig,
                  data: NoisyPatchData, patch: int, *, accepted: bool, shuffle: int) -> None:
    meta = {
        "adapted_from": {"name": start.label, "sha256": start.sha256},
        "objective": config.objective.settings(),
        "image_count": len(data.names), "images": list(data.names),
        "steps": st["step"], "best_step": st["best_step"],
        "start_score": st["start_score"], "best_score": st["best_score"], "improved": accepted,
        "score": f"{config.objective.kind} validation loss on {data.val_y.shape[0]} held-back noisy patches (lower is better)",
        "history": st["history"], "seconds": st["seconds"], "cpu": cpu_description(), "torch": torch.__version__,
        "adapt": {**config.to_json_dict(), "patch_size": patch, "shuffle": shuffle},
    }
    save_checkpoint(out, model, metadata=meta)


def _bar(enabled: bool, initial: int, total: int | None) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="adapt", unit="step", mininterval=0.5)
