"""Choose the sigma-dependent parameters of the classical baselines (aedenoise.classical).

A small grid search on TRAINING images only: seeded random 128x128 crops of a few
Train400 images (gray) and CBSD432 images (RGB), additive white Gaussian noise at
sigma = 15, 25, 50 (0-255 scale), unclipped, seeded. For each method, channel count
and knot the grid point with the best mean PSNR (output clipped to [0, 1], as the
model does) wins; categorical wavelet settings are chosen once for all knots (best
PSNR averaged over the knots). BM3D takes sigma directly and is not tuned.

Run from the project root (about 3-4 minutes on 2 cores)::

    .venv/bin/python benchmarks/tune_baselines.py --out /tmp/tune_baselines.json

It prints the tables to paste into ``src/aedenoise/classical/denoisers.py``; ``--check`` exits
non-zero if they differ from the tables there.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from aedenoise.atomic import write_json
from aedenoise.classical import denoisers as B

KNOTS = B.KNOTS_255
GAUSSIAN_GRID = tuple(round(0.4 + 0.1 * i, 1) for i in range(27))  # 0.4 ... 3.0 px
MEDIAN_GRID = (3, 5, 7)
TV_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0)
WAVELET_NAMES = ("db1", "db2", "db4", "sym4")  # filters of <= 8 taps: 4 levels fit a 128 crop
WAVELET_LEVELS = (2, 3, 4)
WAVELET_SCALE_GRID = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5)
NLM_PATCH_GRID = (3, 5, 7)
NLM_DISTANCE_GRID = (5, 8)
NLM_H_GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)


def load_crops(folder: Path, *, count: int, crop: int, color: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` seeded random ``crop x crop`` crops, ``[H, W, C]`` float32 in [0, 1]."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if len(files) < count:
        sys.exit(f"{folder}: need {count} images, found {len(files)}")
    crops = []
    for idx in sorted(rng.choice(len(files), size=count, replace=False)):
        with Image.open(files[idx]) as im:
            arr = np.asarray(im.convert("RGB" if color else "L"), dtype=np.float32) / 255.0
        arr = arr if color else arr[..., None]
        top = int(rng.integers(0, arr.shape[0] - crop + 1))
        left = int(rng.integers(0, arr.shape[1] - crop + 1))
        crops.append(np.ascontiguousarray(arr[top : top + crop, left : left + crop]))
    return crops


def psnr(x_hat: np.ndarray, x: np.ndarray) -> float:
    mse = float(np.mean((np.clip(x_hat, 0, 1).astype(np.float64) - x) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-20))


class Bench:
    """Clean crops with their seeded noisy versions at every knot."""

    def __init__(self, clean: list[np.ndarray], seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.clean = clean
        self.noisy = {s: [x + np.float32(s / 255) * rng.standard_normal(x.shape, dtype=np.float32) for x in clean] for s in KNOTS}

    def score(self, model: B.ClassicalDenoiser, sigma_255: float, params: B.Params) -> float:
        """Mean PSNR over the crops."""
        s = sigma_255 / 255
        return float(np.mean([psnr(model.denoise_array(y, s, params), x) for x, y in zip(self.clean, self.noisy[sigma_255])]))


def best_per_knot(bench: Bench, model: B.ClassicalDenoiser, grid: list[tuple]) -> tuple[list[tuple], list[float]]:
    """For each knot, the grid entry ``(key, params)`` with the highest mean PSNR."""
    chosen, scores = [], []
    for s in KNOTS:
        results = [(bench.score(model, s, params), key) for key, params in grid]
        score, key = max(results, key=lambda r: r[0])
        chosen.append(key)
        scores.append(round(score, 3))
    return chosen, scores


def tune_channels(bench: Bench, channels: int) -> dict:
    out: dict = {}
    noisy = [round(float(np.mean([psnr(y, x) for x, y in zip(bench.clean, bench.noisy[s])])), 3) for s in KNOTS]
    out["noisy_psnr"] = noisy

    t0 = time.perf_counter()
    keys, scores = best_per_knot(bench, B.GaussianFilter(), [((v,), B.GaussianParams(v)) for v in GAUSSIAN_GRID])
    out["gaussian"] = {"GAUSSIAN_STD_PX": [k[0] for k in keys], "psnr": scores}
    keys, scores = best_per_knot(bench, B.MedianFilter(), [((v,), B.MedianParams(v)) for v in MEDIAN_GRID])
    out["median"] = {"MEDIAN_SIZE": [k[0] for k in keys], "psnr": scores}
    keys, scores = best_per_knot(bench, B.TotalVariation(), [((v,), B.TVParams(v)) for v in TV_GRID])
    out["tv"] = {"TV_WEIGHT_PER_SIGMA": [k[0] for k in keys], "psnr": scores}
    print(f"  gaussian/median/tv done ({time.perf_counter() - t0:.0f} s)", flush=True)

    # Wavelet: the kind (name, levels, ycbcr) once for all knots, then the sigma scale per knot.
    t0 = time.perf_counter()
    model = B.WaveletShrink()
    kinds = list(itertools.product(WAVELET_NAMES, WAVELET_LEVELS, (False, True) if channels == 3 else (False,)))
    best_kind, best_mean, best = None, -np.inf, None
    for name, levels, ycbcr in kinds:
        grid = [((v,), B.WaveletParams(name, levels, ycbcr, v)) for v in WAVELET_SCALE_GRID]
        keys, scores = best_per_knot(bench, model, grid)
        if np.mean(scores) > best_mean:
            best_kind, best_mean, best = (name, levels, ycbcr), float(np.mean(scores)), (keys, scores)
    out["wavelet"] = {"WAVELET_KIND": list(best_kind), "WAVELET_SIGMA_SCALE": [k[0] for k in best[0]], "psnr": best[1]}
    print(f"  wavelet done ({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    grid = [((h, p, d), B.NLMParams(h, p, d)) for p, d, h in itertools.product(NLM_PATCH_GRID, NLM_DISTANCE_GRID, NLM_H_GRID)]
    keys, scores = best_per_knot(bench, B.NonLocalMeans(), grid)
    out["nlm"] = {
        "NLM_H_PER_SIGMA": [k[0] for k in keys],
        "NLM_PATCH_SIZE": [k[1] for k in keys],
        "NLM_PATCH_DISTANCE": [k[2] for k in keys],
        "psnr": scores,
    }
    print(f"  nlm done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def tables(result: dict) -> dict[str, dict[int, tuple]]:
    """``{TABLE_NAME: {channels: values}}`` in the form of the constants in classical/denoisers.py."""
    out: dict[str, dict[int, tuple]] = {}
    for label, channels in (("gray", 1), ("color", 3)):
        for method in ("gaussian", "median", "tv", "wavelet", "nlm"):
            for name, values in result[label][method].items():
                if name != "psnr":
                    out.setdefault(name, {})[channels] = tuple(values)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gray", type=Path, default=Path("../shared/data/Train400"), help="gray training images")
    p.add_argument("--color", type=Path, default=Path("../shared/data/CBSD432"), help="RGB training images")
    p.add_argument("--gray-images", type=int, default=6)
    p.add_argument("--color-images", type=int, default=4)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if the tables differ from those in classical/denoisers.py")
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    result: dict = {"knots_255": list(KNOTS), "seed": args.seed, "crop": args.crop}
    for label, folder, count, color in (("gray", args.gray, args.gray_images, False), ("color", args.color, args.color_images, True)):
        print(f"{label}: {count} crops of {args.crop}x{args.crop} from {folder}", flush=True)
        crops = load_crops(folder, count=count, crop=args.crop, color=color, rng=rng)
        result[label] = tune_channels(Bench(crops, args.seed + (3 if color else 1)), 3 if color else 1)

    found = tables(result)
    result["tables"] = {name: {str(c): list(v) for c, v in per.items()} for name, per in found.items()}
    print("\n# tables for src/aedenoise/classical/denoisers.py")
    for name, per in found.items():
        print(f"{name} = {{1: {per[1]!r}, 3: {per[3]!r}}}")
    print("\n# mean PSNR (dB) of the chosen parameters at sigma 15/25/50 on the tuning crops")
    for label in ("gray", "color"):
        print(f"{label}: noisy {result[label]['noisy_psnr']}")
        for method in ("gaussian", "median", "tv", "wavelet", "nlm"):
            print(f"{label}: {method:<8} {result[label][method]['psnr']}")
    if args.out is not None:
        write_json(args.out, result)
    if args.check:
        current = {name: {c: tuple(getattr(B, name)[c]) for c in (1, 3)} for name in found}
        if current != found:
            print("MISMATCH: the tables in classical/denoisers.py differ from this run", file=sys.stderr)
            sys.exit(1)
        print("tables in classical/denoisers.py match this run")


if __name__ == "__main__":
    main()
