"""``report.md`` and figures of a training run folder.

:func:`write_run_report` turns a run's ``metrics.json`` content (plus example images)
into ``comparison.png`` (rows clean / noisy / denoised), ``curves.png`` (loss and
validation PSNR per epoch) and ``report.md``. :func:`regenerate` rebuilds all three
from a finished run folder without retraining (``aedenoise report RUN_DIR``).
Without matplotlib the report is written without figures and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from aedenoise.atomic import write_text
from aedenoise.benchmark.scoring import add_noise, denoise_batched
from aedenoise.config import NoiseConfig
from aedenoise.data.fashion_mnist import FashionMNIST, load_fashion_mnist
from aedenoise.errors import AedenoiseError
from aedenoise.metrics import psnr
from aedenoise.models import load_checkpoint
from aedenoise.report.figures import MissingMatplotlib, comparison_grid, training_curves

COMPARISON = "comparison.png"
CURVES = "curves.png"
REPORT = "report.md"


@dataclass(frozen=True)
class Examples:
    """Images for the comparison grid, ``[N, C, H, W]`` in ``[0, 1]``, and a caption per column."""

    clean: Tensor
    noisy: Tensor
    denoised: Tensor
    captions: list[str]


# metrics["fast_path"]: training.loop.TrainResult.fast_path (True: a run from before the compiled kernel existed)
_FAST_PATHS = {"native": "compiled kernel", "parity": "matrix products", "nn": "nn layers", True: "yes"}


def write_run_report(run_dir: str | Path, metrics: dict[str, Any], examples: Examples | None) -> str | None:
    """Write the figures and ``report.md`` into ``run_dir``; returns a note if figures were skipped."""
    out = Path(run_dir)
    note = None
    drawn: list[str] = []
    try:
        if examples is not None:
            noisy_db, denoised_db = psnr(examples.noisy.clamp(0, 1), examples.clean), psnr(examples.denoised, examples.clean)
            captions = [list(examples.captions), [f"{v:.1f} dB" for v in noisy_db.tolist()], [f"{v:.1f} dB" for v in denoised_db.tolist()]]
            rows = [("clean", examples.clean), ("noisy", examples.noisy.clamp(0, 1)), ("denoised", examples.denoised)]
            comparison_grid(out / COMPARISON, rows, captions=captions, title=f"{metrics.get('noise', '')}, fixed [0, 1] gray scale")
            drawn.append(COMPARISON)
        if metrics.get("history"):
            training_curves(out / CURVES, metrics["history"], noisy_psnr=metrics.get("val_noisy_psnr"))
            drawn.append(CURVES)
    except MissingMatplotlib as err:
        note = str(err)
    write_text(out / REPORT, markdown(metrics, drawn=drawn, note=note))
    return note


def markdown(metrics: dict[str, Any], *, drawn: list[str], note: str | None = None) -> str:
    """The report text for ``metrics`` (the content of ``metrics.json``)."""
    model, test = metrics.get("model", {}), metrics.get("test")
    lines = [f"# Training run: `{model.get('name', '?')}` on {metrics.get('data', '?')}", ""]
    lines += ["| setting | value |", "|---|---|"]
    settings = [
        ("model", f"`{model.get('name')}` {json.dumps(model.get('args', {}))}, {model.get('parameters', '?'):,} parameters"),
        ("noise", metrics.get("noise", "?")),
        ("training", f"{_plural(metrics.get('epochs'), 'epoch')}, batch {metrics.get('batch_size')}, {metrics.get('optimizer', '?')}, "
                     f"{metrics.get('train_images', '?'):,} images/epoch, validation on {metrics.get('val_images', '?'):,}"),
        ("device", f"{metrics.get('device')} ({_plural(metrics.get('threads'), 'thread')}), torch {metrics.get('torch')}, "
                   f"fast CPU path: {_FAST_PATHS.get(metrics.get('fast_path'), 'no')}"),
        ("seed", f"{metrics.get('seed')} (test noise seed {metrics.get('test_seed')})"),
    ]
    if metrics.get("cpu"):
        settings.append(("CPU", metrics["cpu"]))
    if metrics.get("fast_path_reason"):
        settings.append(("training path", f"{_FAST_PATHS.get(metrics.get('fast_path'), '?')}: {metrics['fast_path_reason']}"))
    if test and test.get("fast_path_reason"):
        settings.append(("test-set path", f"{_FAST_PATHS.get(test.get('fast_path'), '?')}: {test['fast_path_reason']}"))
    lines += [f"| {k} | {v} |" for k, v in settings] + [""]
    if test:
        lines += [f"## Test set ({test['images']:,} images)", "", "| | PSNR (dB) | SSIM |", "|---|---|---|",
                  f"| noisy input | {test['noisy_psnr']:.2f} | {test['noisy_ssim']:.4f} |",
                  f"| denoised | **{test['psnr']:.2f}** | **{test['ssim']:.4f}** |",
                  f"| gain | {test['psnr'] - test['noisy_psnr']:+.2f} | {test['ssim'] - test['noisy_ssim']:+.4f} |", "",
                  f"Means over every test image; per-image values in `test_scores.csv`. SSIM: {metrics.get('ssim_variant', '?')}.", ""]
    load = metrics.get("load_average")
    busy = f"; 1-minute load average {load:.1f} when it started" if load is not None else ""
    lines += ["## Time", "", f"Training: **{metrics.get('train_seconds', 0):.1f} s** for {_plural(metrics.get('epochs'), 'epoch')}, "
              f"per-epoch validation included (wall clock on this machine{busy}: other processes slow it)."]
    if test and test.get("images_per_s"):
        lines.append(f"Denoising the test set: {test['images_per_s']:,.0f} images/s (batches of {test.get('batch_size')}).")
    lines += ["", "| epoch | train loss | val loss | val PSNR (dB) | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {h['epoch']} | {h['train_loss']:.5f} | {h['val_loss']:.5f} | {h['val_psnr']:.2f} | {h['seconds']:.1f} |"
              for h in metrics.get("history", [])]
    lines += ["", "## Figures", ""]
    if COMPARISON in drawn:
        lines += ["Rows: clean, noisy, denoised (PSNR of each image below it); pixels on the fixed [0, 1] scale, "
                  "nearest-neighbour, no contrast stretch.", "", f"![comparison]({COMPARISON})", ""]
    if CURVES in drawn:
        lines += [f"![training curves]({CURVES})", ""]
    if note:
        lines += [f"(Figures not drawn: {note}.)", ""]
    return "\n".join(lines)


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def regenerate(run_dir: str | Path, *, device: str = "cpu") -> tuple[Path, str | None]:
    """Redraw the figures and ``report.md`` of a finished run from its files; returns (report path, note)."""
    out = Path(run_dir)
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AedenoiseError(f"{out}: no metrics.json here; is this a finished `aedenoise train` run folder?") from None
    except (OSError, ValueError) as err:
        raise AedenoiseError(f"{out / 'metrics.json'}: unreadable ({err})") from None
    examples = None
    if metrics.get("test"):
        model = load_checkpoint(out / "model.safetensors", map_location=device).model
        examples = fashion_mnist_examples(model, metrics, device=device)
    return out / REPORT, write_run_report(out, metrics, examples)


def fashion_mnist_examples(model: Any, metrics: dict[str, Any], *, device: str = "cpu") -> Examples:
    """The grid images of a Fashion-MNIST run: test images ``metrics['grid_indices']`` with the test noise."""
    fm = load_fashion_mnist(data_dir=metrics.get("data_dir"))
    noise = NoiseConfig.model_validate(metrics["noise_config"]).build()
    y, sigma = add_noise(fm.test_x, noise, seed=metrics["test_seed"])  # the whole set: same noise as the scores
    idx = metrics["grid_indices"]
    x_hat = denoise_batched(model, y[idx], None if sigma is None else sigma[idx], device=device)
    captions = [FashionMNIST.CLASSES[int(fm.test_labels[i])] for i in idx]
    return Examples(clean=fm.test_x[idx], noisy=y[idx], denoised=x_hat, captions=captions)
