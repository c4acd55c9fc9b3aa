"""Tables, figures and ``report.md`` for a benchmark run (:mod:`aedenoise.benchmark`).

* :func:`markdown_tables`: PSNR / SSIM per method x sigma for each dataset, and the
  seconds per megapixel of each method.
* :func:`crop_figure`: the same zoomed crop of one image for the clean image, the
  noisy input and every method, with the whole-image PSNR in each title; pixels are
  shown on the fixed ``[0, 1]`` scale (no per-image contrast stretch).
* :func:`psnr_sigma_figure`: mean PSNR against sigma (0-255) per method for one dataset.
* :func:`write_report`: all of it into an output folder, collected in ``report.md``;
  :func:`write_outputs` adds ``results.json``, ``per_image.csv`` and ``results.md``.

matplotlib is imported lazily (``pip install aedenoise[report]``); without it the
report holds the tables only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from aedenoise.atomic import atomic_path, write_json, write_text
from aedenoise.benchmark import BenchmarkResult, Dataset, example_path, noisy_image, quantize_8bit, rows_to_csv
from aedenoise.io import read_image
from aedenoise.metrics import psnr


def markdown_tables(result: BenchmarkResult) -> str:
    """Markdown: one PSNR (dB) / SSIM table per dataset (rows: methods, columns: sigma), then timing."""
    records = result.records()
    parts = []
    for d in result.datasets:
        recs = {(r["method"], r["sigma"]): r for r in records if r["dataset"] == d}
        if not recs:
            continue
        counts = sorted({int(r["n_images"]) for r in recs.values()})  # type: ignore[call-overload]
        sigmas = [s for s in result.sigmas if any(k[1] == s for k in recs)]
        lines = [f"**{d}** ({'/'.join(map(str, counts))} images), PSNR (dB) / SSIM", "",
                 "| method | " + " | ".join(f"σ={s:g}" for s in sigmas) + " |",
                 "|---|" + "---|" * len(sigmas)]
        for m in result.methods:
            cells = []
            for s in sigmas:
                r = recs.get((m, s))
                cells.append("–" if r is None else f"{r['psnr']:.2f} / {r['ssim']:.4f}")
            if any(c != "–" for c in cells):
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    timing = result.timing()
    if timing:
        lines = [f"**Time** (wall time of the method call; {result.protocol['threads']} thread(s), "
                 f"device {result.protocol['device']})", "",
                 "| method | seconds / megapixel | images | megapixels |", "|---|---|---|---|"]
        for t in timing:
            name = t["method"] if not t.get("weights") or t["weights"] == t["method"] else f"{t['method']} ({t['weights']})"
            lines.append(f"| {name} | {t['seconds_per_megapixel']:.3g} | {t['n_images']} | {t['megapixels']:.2f} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def crop_box(x: Tensor, *, size: int | None = None) -> tuple[int, int, int]:
    """``(top, left, size)`` of the square crop of ``x`` [C, H, W] with the most detail.

    ``size`` defaults to a quarter of the shorter side (at least 32 px, at most the
    image); candidates lie on a grid of half the size; detail is the standard deviation.
    """
    h, w = x.shape[-2:]
    size = min(h, w, size or max(32, min(h, w) // 4))
    step = max(1, size // 2)
    best = (-1.0, 0, 0)
    for top in sorted({*range(0, h - size + 1, step), h - size}):
        for left in sorted({*range(0, w - size + 1, step), w - size}):
            spread = float(x[..., top : top + size, left : left + size].std())
            if spread > best[0]:
                best = (spread, top, left)
    return best[1], best[2], size


def crop_figure(
    path: Path, panels: Sequence[tuple[str, Tensor]], box: tuple[int, int, int], *, title: str = ""
) -> Path:
    """Save a row of crops: ``panels`` are ``(title, image [C, H, W] in [0, 1])``; ``box`` from :func:`crop_box`."""
    from matplotlib.figure import Figure

    top, left, size = box
    fig = Figure(figsize=(2.2 * len(panels), 2.6 if title else 2.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, img) in zip(axes, panels):
        crop = img[..., top : top + size, left : left + size].clamp(0, 1).float()
        if crop.shape[0] == 1:
            ax.imshow(crop[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(crop.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def psnr_sigma_figure(path: Path, result: BenchmarkResult, dataset: str) -> Path:
    """Save mean PSNR (dB) against sigma (0-255) for every method on ``dataset``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    records = [r for r in result.records() if r["dataset"] == dataset]
    for m in result.methods:
        pts = sorted((float(r["sigma"]), float(r["psnr"]))  # type: ignore[arg-type]
                     for r in records if r["method"] == m)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    ax.set_xlabel("noise sigma (0-255)")
    ax.set_ylabel("mean PSNR (dB)")
    ax.set_title(dataset)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:  # fig: matplotlib.figure.Figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def example_panels(
    result: BenchmarkResult, dataset: Dataset, sigma: float, examples_dir: Path
) -> tuple[list[tuple[str, Tensor]], str] | None:
    """Panels for :func:`crop_figure`: clean, noisy, and each method's saved output of the first image."""
    rows = [r for r in result.rows if r.dataset == dataset.name and r.sigma == sigma]
    if not rows:
        return None
    image = rows[0].image
    x = read_image(dataset.root / image).data
    seed, clip = int(result.protocol["seed"]), bool(result.protocol["clip"])  # type: ignore[call-overload]
    y = quantize_8bit(noisy_image(x, sigma, dataset=dataset.name, image=image, seed=seed, clip=clip))[0]
    panels = [("clean", x), (f"noisy {float(psnr(y[None], x[None])[0]):.2f} dB", y)]
    for m in result.methods:
        row = next((r for r in rows if r.method == m and r.image == image), None)
        file = example_path(examples_dir, dataset.name, sigma, m, seed=seed, clip=clip)
        if row is not None and file.is_file():
            panels.append((f"{m} {row.psnr:.2f} dB", read_image(file).data))
    return panels, image


def write_outputs(out_dir: Path, result: BenchmarkResult, datasets: Sequence[Dataset], *, figures: bool = True) -> Path:
    """Write ``results.json``, ``per_image.csv``, ``results.md`` and ``report.md`` (+ figures); returns the report."""
    out_dir = Path(out_dir)
    write_json(out_dir / "results.json", result.to_json())
    write_text(out_dir / "per_image.csv", rows_to_csv(result.rows))
    write_text(out_dir / "results.md", markdown_tables(result))
    return write_report(out_dir, result, datasets, figures=figures)


def write_report(out_dir: Path, result: BenchmarkResult, datasets: Sequence[Dataset], *, figures: bool = True) -> Path:
    """Write ``report.md`` (tables, protocol, figures under ``figures/``) into ``out_dir``; returns its path."""
    out_dir = Path(out_dir)
    p = result.protocol
    lines = ["# Benchmark report", "", "## Protocol", "",
             f"- noise: {p['noise']}; seed {p['seed']} ({p['seed_scheme']})",
             f"- output: {p['output']}; PSNR: {p['psnr']}",
             f"- SSIM: {p['ssim']}",
             f"- time: wall time of each method call, {p['threads']} thread(s), device {p['device']}",
             "", "## Results", "", markdown_tables(result)]
    if result.skipped:
        lines += ["## Skipped files", ""] + [f"- {s.dataset}/{s.image}: {s.error}" for s in result.skipped] + [""]
    if figures:
        lines += _figures(out_dir, result, datasets)
    report = out_dir / "report.md"
    write_text(report, "\n".join(lines).rstrip() + "\n")
    return report


def _figures(out_dir: Path, result: BenchmarkResult, datasets: Sequence[Dataset]) -> list[str]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return ["## Figures", "", "(not drawn: matplotlib is not installed; pip install aedenoise[report])", ""]
    lines = ["## Figures", ""]
    fig_dir = out_dir / "figures"
    for d in datasets:
        if len(result.sigmas) > 1 and any(r.dataset == d.name for r in result.rows):
            f = psnr_sigma_figure(fig_dir / f"psnr_vs_sigma_{d.name}.png", result, d.name)
            lines += [f"![PSNR against sigma on {d.name}]({f.relative_to(out_dir).as_posix()})", ""]
        for s in result.sigmas:
            found = example_panels(result, d, s, out_dir / "examples")
            if found is None:
                continue
            panels, image = found
            with torch.no_grad():
                box = crop_box(panels[0][1])
            f = crop_figure(fig_dir / f"crops_{d.name}_sigma{s:g}.png", panels, box,
                            title=f"{d.name}/{image}, sigma {s:g}: crop at ({box[0]}, {box[1]}), {box[2]} px")
            lines += [f"![{d.name} {image} sigma {s:g}]({f.relative_to(out_dir).as_posix()})", ""]
    return lines
