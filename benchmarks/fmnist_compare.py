"""Compare the shipped Fashion-MNIST denoisers on the full test set, and draw the figure.

Scores ``fmnist-seed`` and ``fmnist-best`` (or any checkpoints) on all 10,000
Fashion-MNIST test images at the seed's noise (Gaussian sigma 0.2 on [0, 1],
clipped; the fixed test noise of seed 1234, as ``aedenoise train`` uses), prints a
Markdown table (with the denoising rate, and for a model with a mirror-image ensemble
its scores without it) and draws clean / noisy / seed / best for the first test image
of each of the 10 classes, at a fixed [0, 1] gray scale::

    python benchmarks/fmnist_compare.py                  # docs/img/fmnist-comparison.png
    python benchmarks/fmnist_compare.py --seed runs/fmnist-seed/model.safetensors \\
        --best runs/fmnist-best/model.safetensors --json /tmp/fmnist.json

Needs matplotlib for the figure (``pip install aedenoise[report]``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
TEST_SEED = 1234
REPEATS = 3


def load_model(spec: str):  # -> (Denoiser, label)
    """A shipped weights name (``fmnist-best``) or a checkpoint path."""
    from aedenoise.models.checkpoint import load_checkpoint
    from aedenoise.pretrained import load_pretrained

    if Path(spec).suffix == ".safetensors":
        return load_checkpoint(spec).model.eval(), Path(spec).parent.name or spec
    return load_pretrained(spec), spec


def main(argv: list[str] | None = None) -> int:
    import torch

    from aedenoise.atomic import write_json
    from aedenoise.benchmark.scoring import add_noise, score
    from aedenoise.config import resolve_config
    from aedenoise.data.fashion_mnist import load_fashion_mnist
    from aedenoise.errors import AedenoiseError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", default="fmnist-seed", help="shipped weights name or checkpoint path (default fmnist-seed)")
    p.add_argument("--best", default="fmnist-best", help="shipped weights name or checkpoint path (default fmnist-best)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "fmnist-comparison.png")
    p.add_argument("--json", type=Path, help="also write the scores here")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        noise_cfg = resolve_config(preset="fmnist-seed").noise
        fmnist = load_fashion_mnist()
        x = fmnist.test_x
        y, sigma = add_noise(x, noise_cfg.build(), seed=TEST_SEED)
        rows: list[tuple[str, torch.Tensor]] = [("clean", x), ("noisy", y.clamp(0, 1))]
        scores: dict[str, dict[str, float]] = {}
        for spec in (args.seed, args.best):
            model, label = load_model(spec)
            x_hat, rate = timed_denoise(model, y, sigma)
            s = score(x_hat, y, x).means()
            scores[label] = {**s, "params": sum(t.numel() for t in model.parameters()), "images_per_s": rate}
            rows.append((label, x_hat))
            if getattr(model, "flip_ensemble", False):  # what the mirror-image ensemble buys, and costs
                model.flip_ensemble = False
                plain, rate = timed_denoise(model, y, sigma)
                scores[f"{label}, no flip ensemble"] = {**score(plain, y, x).means(), "params": scores[label]["params"],
                                                        "images_per_s": rate}
    except AedenoiseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    noisy = next(iter(scores.values()))
    print(f"Fashion-MNIST test set (10,000 images), {noise_cfg.build().describe()}, test noise seed {TEST_SEED}\n")
    print(f"| model | params | PSNR (dB) | SSIM | images/s ({args.threads} thread(s), median of {REPEATS}) |\n|---|---:|---:|---:|---:|")
    print(f"| noisy input | - | {noisy['noisy_psnr']:.2f} | {noisy['noisy_ssim']:.4f} | |")
    for label, s in scores.items():
        print(f"| {label} | {s['params']:,} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['images_per_s']:,.0f} |")
    if args.json:
        write_json(args.json, {"noise": noise_cfg.build().describe(), "test_seed": TEST_SEED, "scores": scores})
    index = [int((fmnist.test_labels == c).nonzero()[0]) for c in range(len(CLASSES))]
    draw(args.out, rows, index, x)
    print(f"\nfigure: {args.out}")
    return 0


def timed_denoise(model, y, sigma):  # -> (x_hat, images per second)
    """Denoise all of ``y`` :data:`REPEATS` times; the estimate and the median rate."""
    import time

    from aedenoise.benchmark.scoring import denoise_batched

    seconds = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        x_hat = denoise_batched(model, y, sigma)
        seconds.append(time.perf_counter() - t0)
    return x_hat, y.shape[0] / sorted(seconds)[REPEATS // 2]


def draw(path: Path, rows: list[tuple[str, "torch.Tensor"]], index: list[int], x: "torch.Tensor") -> None:
    """One row per image set, one column per test image; per-image PSNR under each estimate."""
    from matplotlib.figure import Figure

    from aedenoise.atomic import atomic_path
    from aedenoise.metrics import psnr

    fig = Figure(figsize=(1.0 * len(index) + 0.9, 1.12 * len(rows)))
    axes = fig.subplots(len(rows), len(index), squeeze=False)
    for r, (label, images) in enumerate(rows):
        values = psnr(images[index], x[index])
        for c, i in enumerate(index):
            ax = axes[r][c]
            ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r > 0:
                ax.set_xlabel(f"{float(values[c]):.1f} dB", fontsize=7, labelpad=1)
            if r == 0:
                ax.set_title(CLASSES[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.995, top=0.95, bottom=0.03, wspace=0.05, hspace=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)


if __name__ == "__main__":
    sys.exit(main())
