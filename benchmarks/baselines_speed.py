"""Quick information run: PSNR and time per megapixel of each classical baseline.

NOT the benchmark harness (that is ``aedenoise evaluate``) and NOT used for tuning:
it only reports how the fixed baselines do on a few images. Default: the first 4
BSD68 images, Gaussian noise sigma 25 (0-255), unclipped, seeded, one thread::

    MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824 \\
        .venv/bin/python benchmarks/baselines_speed.py

Time is reported as wall-clock and as process CPU seconds per megapixel (CPU time
is the steadier number on a shared machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from aedenoise.classical import create_baseline, list_baselines
from aedenoise.metrics import psnr


def load(folder: Path, *, count: int, color: bool) -> list[torch.Tensor]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg"})[:count]
    out = []
    for path in files:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if color else "L"), dtype=np.float32) / 255.0
        t = torch.from_numpy(arr).permute(2, 0, 1) if color else torch.from_numpy(arr)[None]
        out.append(t[None].contiguous())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/BSD68"))
    p.add_argument("--color", action="store_true", help="read images as RGB (e.g. with --data ../shared/data/CBSD68)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--sigma", type=float, default=25.0, help="noise std on the 0-255 scale")
    p.add_argument("--methods", nargs="+", default=list_baselines(), choices=list_baselines())
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    images = load(args.data, count=args.images, color=args.color)
    g = torch.Generator().manual_seed(args.seed)
    noisy = [x + args.sigma / 255 * torch.randn(x.shape, generator=g) for x in images]
    mpix = sum(x.shape[-1] * x.shape[-2] for x in images) / 1e6
    noisy_psnr = float(torch.cat([psnr(y.clamp(0, 1), x) for x, y in zip(images, noisy)]).mean())
    print(f"{len(images)} images from {args.data}, sigma {args.sigma:g}/255; noisy input (clipped) {noisy_psnr:.2f} dB")
    print(f"{'method':<9} {'PSNR dB':>8} {'wall s/MP':>10} {'CPU s/MP':>9}")
    for name in args.methods:
        model = create_baseline(name, in_channels=3 if args.color else 1)
        scores = []
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for x, y in zip(images, noisy):
            scores.append(psnr(model(y, args.sigma / 255), x))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        print(f"{name:<9} {float(torch.cat(scores).mean()):>8.2f} {wall / mpix:>10.2f} {cpu / mpix:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
