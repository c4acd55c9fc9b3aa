"""Tables, figures and ``report.md`` for a benchmark run (:mod:`aedenoise.benchmark`).

* :func:`markdown_tables`: PSNR / SSIM per method x sigma for each dataset (paired
  real-noise datasets: per level given to the methods, with the ``noisy`` input row),
  and the seconds per megapixel of each method.
* :func:`crop_figure`: the same zoomed crop of one image for the clean image, the
  noisy input and every method, with the whole-image PSNR in each title; pixels are
  shown on the fixed ``[0, 1]`` scale (no per-image contrast stretch).
* :func:`paired_figure` (paired datasets, whose noise is faint): each whole image with
  the crop outlined, above the crop magnified with nearest-neighbour pixels.
* :func:`psnr_sigma_figure`: mean PSNR against sigma (0-255) per method for one dataset
  (on a paired dataset: against the level given to the methods).
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
from aedenoise.benchmark import (
    AUTO_SIGMA,
    NOISY,
    REAL,
    BenchmarkResult,
    Dataset,
    Level,
    example_path,
    level_text,
    noisy_image,
    quantize_8bit,
    rows_to_csv,
)
from aedenoise.io import read_image
from aedenoise.metrics import psnr, ssim
from aedenoise.report.figures import show_image

PAIRED_CROP = 128
"""Side in pixels of the crop shown magnified in the figures of paired (real-noise) datasets."""
PAIRED_ZOOM = 3
"""How many screen pixels per image pixel that crop gets (nearest neighbour)."""


def _column(sigma: Level, given: Level | None) -> str:
    if sigma != REAL:
        return f"σ={level_text(sigma)}"
    return "σ auto (estimated)" if given == AUTO_SIGMA else f"σ={level_text(given)} given"


def markdown_tables(result: BenchmarkResult) -> str:
    """Markdown: one PSNR (dB) / SSIM table per dataset (rows: methods, columns: sigma), then timing.

    On a paired dataset the columns are the levels given to the methods, and the
    ``noisy`` row (the input itself) shows its one score in every column.
    """
    records = result.records()
    parts = []
    for d in result.datasets:
        recs = {(r["method"], r["sigma"], r["sigma_given"]): r for r in records if r["dataset"] == d}
        if not recs:
            continue
        counts = sorted({int(r["n_images"]) for r in recs.values()})  # type: ignore[call-overload]
        columns = [c for c in result.conditions(d) if any(k[1:] == c for k in recs)] or result.conditions(d)
        real = " real noise (noisy/clean pairs)," if d in result.paired else ""
        lines = [f"**{d}** ({'/'.join(map(str, counts))} images),{real} PSNR (dB) / SSIM", "",
                 "| method | " + " | ".join(_column(*c) for c in columns) + " |",
                 "|---|" + "---|" * len(columns)]
        for m in result.methods:
            cells = []
            for s, g in columns:
                r = recs.get((m, s, None if m == NOISY and d in result.paired else g))
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


def paired_figure(
    path: Path, panels: Sequence[tuple[str, Tensor]], box: tuple[int, int, int], *, title: str = "",
    zoom: int = PAIRED_ZOOM,
) -> Path:
    """Save two rows for faint (real) noise: each panel's whole image with the crop ``box`` outlined,
    and under it that crop magnified ``zoom`` times with nearest-neighbour pixels.

    ``panels``: ``(title, image [C, H, W] in [0, 1])`` of one size; ``box`` from
    :func:`crop_box`. Pixels on the fixed ``[0, 1]`` scale (no contrast stretch).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    top, left, size = box
    h, w = panels[0][1].shape[-2:]
    dpi = 100
    side = max(size * zoom / dpi, 1.6) + 0.15  # inches per column: the crop at about zoom x its pixels
    fig = Figure(figsize=(side * len(panels), side * (1 + h / w) + (0.8 if title else 0.5)), layout="constrained")
    axes = fig.subplots(2, len(panels), squeeze=False, gridspec_kw={"height_ratios": [h / w, 1.0]})
    for col, (name, img) in enumerate(panels):
        img = img.float().clamp(0, 1)
        whole, zoomed = axes[0][col], axes[1][col]
        show_image(whole, img).set_interpolation("antialiased")  # the whole image is shown smaller than its pixels
        whole.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor="red", linewidth=1))
        whole.set_title(name, fontsize=9)
        show_image(zoomed, img[..., top : top + size, left : left + size])
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def psnr_sigma_figure(path: Path, result: BenchmarkResult, dataset: str) -> Path:
    """Save mean PSNR (dB) against sigma (0-255) for every method on ``dataset``.

    On a paired dataset: against the numeric levels given to the methods, with the
    noisy input as a dashed line (``"auto"`` levels are not on this axis).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    records = [r for r in result.records() if r["dataset"] == dataset]
    paired = dataset in result.paired
    for m in result.methods:
        if paired and m == NOISY:
            for r in records:
                if r["method"] == NOISY:
                    noisy_psnr = float(r["psnr"])  # type: ignore[arg-type]
                    ax.axhline(noisy_psnr, color="gray", linestyle="--", label="noisy input")
            continue
        key = "sigma_given" if paired else "sigma"
        pts = sorted((float(r[key]), float(r["psnr"]))  # type: ignore[arg-type]
                     for r in records if r["method"] == m and not isinstance(r[key], str))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    ax.set_xlabel("sigma given to the method (0-255), real noise" if paired else "noise sigma (0-255)")
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
    result: BenchmarkResult, dataset: Dataset, sigma: Level, examples_dir: Path, *, sigma_given: Level | None = None
) -> tuple[list[tuple[str, Tensor]], str] | None:
    """Panels for :func:`crop_figure` / :func:`paired_figure`: clean, noisy, and each method's saved
    output of the first image; on a paired dataset (``sigma == "real"``) the real noisy image and the
    outputs for the level ``sigma_given``."""
    given = sigma if sigma_given is None else sigma_given
    rows = [r for r in result.rows if r.dataset == dataset.name and r.sigma == sigma]
    if not rows:
        return None
    image = rows[0].image
    x = read_image(dataset.clean_path(image)).data
    seed, clip = int(result.protocol["seed"]), bool(result.protocol["clip"])  # type: ignore[call-overload]
    if dataset.paired:
        y = read_image(dataset.noisy_path(image)).data
    else:
        y = quantize_8bit(noisy_image(x, float(sigma), dataset=dataset.name, image=image, seed=seed, clip=clip))[0]
    scores = f"{float(psnr(y[None], x[None])[0]):.2f} dB"
    if dataset.paired:
        scores += f" / {float(ssim(y[None], x[None])[0]):.4f}"
    panels = [("clean", x), (f"noisy {scores}", y)]
    for m in result.methods:
        row = next((r for r in rows if r.method == m and r.image == image and r.sigma_given == given), None)
        file = example_path(examples_dir, dataset.name, sigma, m, seed=seed, clip=clip, sigma_given=given)
        if row is not None and file.is_file():
            label = f"{m} {row.psnr:.2f} dB" + (f" / {row.ssim:.4f}" if dataset.paired else "")
            panels.append((label, read_image(file).data))
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
    lines = ["# Benchmark report", "", "## Protocol", ""]
    if result.sigmas:
        lines.append(f"- noise: {p['noise']}; seed {p['seed']} ({p['seed_scheme']})")
    if result.paired:
        lines.append(f"- real noise ({', '.join(result.paired)}): {p['real_noise']}")
    lines += [f"- output: {p['output']}; PSNR: {p['psnr']}",
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
        has_rows = any(r.dataset == d.name for r in result.rows)
        sweep = [g for g in result.paired_sigmas if g != AUTO_SIGMA] if d.paired else result.sigmas
        if len(sweep) > 1 and has_rows:
            f = psnr_sigma_figure(fig_dir / f"psnr_vs_sigma_{d.name}.png", result, d.name)
            lines += [f"![PSNR against sigma on {d.name}]({f.relative_to(out_dir).as_posix()})", ""]
        for s, g in result.conditions(d.name):
            found = example_panels(result, d, s, out_dir / "examples", sigma_given=g)
            if found is None:
                continue
            panels, image = found
            with torch.no_grad():
                box = crop_box(panels[0][1], size=PAIRED_CROP if d.paired else None)
            if d.paired:
                what = f"real noise, sigma {'estimated' if g == AUTO_SIGMA else f'{level_text(g)} given'}"
                f = paired_figure(fig_dir / f"crops_{d.name}_real_sigma{level_text(g)}.png", panels, box,
                                  title=f"{d.name}/{image}, {what}: crop at ({box[0]}, {box[1]}), {box[2]} px, "
                                        f"magnified {PAIRED_ZOOM}x")
            else:
                what = f"sigma {level_text(s)}"
                f = crop_figure(fig_dir / f"crops_{d.name}_sigma{level_text(s)}.png", panels, box,
                                title=f"{d.name}/{image}, {what}: crop at ({box[0]}, {box[1]}), {box[2]} px")
            lines += [f"![{d.name} {image} {what}]({f.relative_to(out_dir).as_posix()})", ""]
    return lines
