"""Accuracy of ``aedenoise.noise.level.estimate_sigma`` (the ``--sigma auto`` estimator).

Two commands (run from the project root):

* ``tune``: the small grid search over ``patch_size`` and ``texture_ratio`` on
  training images (30 Train400 gray, 6 CBSD432 RGB; seeded) that chose the module
  defaults (about 10 minutes on one core)::

      .venv/bin/python benchmarks/noise_level.py tune

* ``measure``: mean absolute error on a folder of clean images (BSD68 is a test set:
  measure only, never tune on it)::

      .venv/bin/python benchmarks/noise_level.py measure --data ../shared/data/BSD68

Noise is additive white Gaussian, unclipped, seeded (``--seed``); errors are reported
on the 0-255 scale. ``--out FILE.json`` also writes the numbers (atomically).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aedenoise.atomic import write_json
from aedenoise.noise.level import MAX_ITER, PATCH_SIZE, TEXTURE_RATIO, estimate_sigma

SIGMAS_255 = (15, 25, 50)
PATCH_GRID = (6, 7, 8)
RATIO_GRID = (1.2, 1.3, 1.4, 1.5, 1.6)


def load_images(folder: Path, *, color: bool, limit: int | None) -> list[tuple[str, torch.Tensor]]:
    """Clean images ``[1, C, H, W]`` float32 in ``[0, 1]`` from PNG/JPEG files, sorted by name."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif"})
    if not files:
        sys.exit(f"no images in {folder}")
    out = []
    for path in files[:limit]:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if color else "L"), dtype=np.float32) / 255.0
        t = torch.from_numpy(arr).permute(2, 0, 1) if color else torch.from_numpy(arr)[None]
        out.append((path.name, t[None].contiguous()))
    return out


def mad_sigma(y: torch.Tensor) -> float:
    """Reference: Donoho's wavelet MAD estimator (skimage ``estimate_sigma``, averaged over channels)."""
    from skimage.restoration import estimate_sigma as skimage_estimate_sigma

    arr = y[0].permute(1, 2, 0).double().numpy()
    return float(skimage_estimate_sigma(arr, channel_axis=-1, average_sigmas=True))


def errors_255(images, *, sigma_255: float, seed: int, patch_size: int, texture_ratio: float,
               max_iter: int = MAX_ITER, mad: bool = False) -> np.ndarray:
    """Signed errors (estimate - truth) on the 0-255 scale, one per image."""
    g = torch.Generator().manual_seed(seed)
    errs = []
    for _, x in images:
        y = x + sigma_255 / 255.0 * torch.randn(x.shape, generator=g)
        if mad:
            est = mad_sigma(y)
        else:
            est = float(estimate_sigma(y, patch_size=patch_size, texture_ratio=texture_ratio, max_iter=max_iter)[0])
        errs.append(est * 255.0 - sigma_255)
    return np.asarray(errs)


def cmd_measure(args: argparse.Namespace) -> dict:
    images = load_images(args.data, color=args.color, limit=args.images)
    rows = {}
    for s in SIGMAS_255:
        t0 = time.perf_counter()
        e = errors_255(images, sigma_255=s, seed=args.seed + s, patch_size=args.patch_size,
                       texture_ratio=args.texture_ratio, max_iter=args.max_iter, mad=args.mad)
        dt = (time.perf_counter() - t0) / len(images)
        rows[str(s)] = {"mae": float(np.abs(e).mean()), "bias": float(e.mean()), "max_abs": float(np.abs(e).max()), "sec_per_image": dt}
        print(f"sigma {s:>2}: MAE {np.abs(e).mean():.3f}  bias {e.mean():+.3f}  max |err| {np.abs(e).max():.2f}  ({dt:.2f} s/image)", flush=True)
    return {"data": str(args.data), "images": len(images), "color": args.color, "seed": args.seed,
            "estimator": "wavelet MAD (skimage)" if args.mad else "estimate_sigma",
            "patch_size": args.patch_size, "texture_ratio": args.texture_ratio, "max_iter": args.max_iter, "per_sigma": rows}


def pick(images: list, count: int, rng: np.random.Generator) -> list:
    return [images[i] for i in sorted(rng.choice(len(images), size=min(count, len(images)), replace=False))]


def cmd_tune(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    sets = {
        "gray": pick(load_images(args.gray, color=False, limit=None), args.gray_images, rng),
        "color": pick(load_images(args.color, color=True, limit=None), args.color_images, rng),
    }
    results = []
    for r, ratio in itertools.product(PATCH_GRID, RATIO_GRID):
        row = {"patch_size": r, "texture_ratio": ratio}
        for label, images in sets.items():
            row[label] = {
                str(s): float(np.abs(errors_255(images, sigma_255=s, seed=args.seed + s, patch_size=r, texture_ratio=ratio)).mean())
                for s in SIGMAS_255
            }
        row["worst_mae"] = max(v for label in sets for v in row[label].values())
        results.append(row)
        print(f"patch {r} ratio {ratio:.2f}: MAE gray " + " / ".join(f"{v:.3f}" for v in row["gray"].values())
              + "  color " + " / ".join(f"{v:.3f}" for v in row["color"].values()), flush=True)
    best = min(results, key=lambda row: row["worst_mae"])
    print(f"chosen (lowest worst MAE over gray/color x sigma 15/25/50): patch_size={best['patch_size']} texture_ratio={best['texture_ratio']}")
    return {"images": {k: [name for name, _ in v] for k, v in sets.items()}, "seed": args.seed, "grid": results, "chosen": best}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="MAE of estimate_sigma on a folder of clean images")
    m.add_argument("--data", type=Path, default=Path("../shared/data/BSD68"))
    m.add_argument("--color", action="store_true", help="read images as RGB")
    m.add_argument("--images", type=int, default=None, help="use only the first N images")
    m.add_argument("--patch-size", type=int, default=PATCH_SIZE)
    m.add_argument("--texture-ratio", type=float, default=TEXTURE_RATIO)
    m.add_argument("--max-iter", type=int, default=MAX_ITER, help="0: Chen et al.'s split on all patches, no texture selection")
    m.add_argument("--mad", action="store_true", help="measure the wavelet MAD estimator instead (reference)")
    t = sub.add_parser("tune", help="grid search of patch_size and texture_ratio on training images")
    t.add_argument("--gray", type=Path, default=Path("../shared/data/Train400"))
    t.add_argument("--color", type=Path, default=Path("../shared/data/CBSD432"))
    t.add_argument("--gray-images", type=int, default=30, help="number of randomly chosen (seeded) gray images")
    t.add_argument("--color-images", type=int, default=6, help="number of randomly chosen (seeded) RGB images")
    for q in (m, t):
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    result = cmd_measure(args) if args.cmd == "measure" else cmd_tune(args)
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
