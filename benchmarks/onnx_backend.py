"""Seconds per megapixel of the shipped photo models on the two backends, PyTorch and onnxruntime, side by side.

    python benchmarks/onnx_backend.py --json runs/bench-onnx.json

For each model (``gray-blind`` on BSD68, ``color-blind`` on CBSD68: the first ``--images``
images of each, read from ``$AEDENOISE_DATA`` or ``../shared/data``) and thread count, the
two backends take turns for ``--rounds`` rounds over the same noisy images (sigma 25,
seeded), as ``aedenoise denoise`` runs them (``denoise_image``: whole image up to the
default tile, tiled beyond); the median round's wall time over the images' megapixels is
reported, with the largest difference between the two outputs (8-bit levels).
Re-executes itself with glibc's malloc thresholds raised (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if any(os.environ.get(k) != v for k, v in _MALLOC.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC})

    import torch

    from aedenoise.benchmark import noisy_image, open_dataset
    from aedenoise.denoising import denoise_image, load_denoiser
    from aedenoise.hardware import cpu_description
    from aedenoise.io import read_image

    root = Path(os.environ.get("AEDENOISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    results = []
    for name, folder in (("gray-blind", "BSD68"), ("color-blind", "CBSD68")):
        data = open_dataset(root / folder, limit=args.images)
        ys = [noisy_image(read_image(path).data, 25, dataset=folder, image=path.name)[0] for path in data.paths]
        megapixels = sum(y.shape[-2] * y.shape[-1] for y in ys) / 1e6
        for threads in args.threads:
            torch.set_num_threads(threads)
            models = {b: load_denoiser(name, backend=b) for b in ("torch", "onnxruntime")}  # export outside the clock
            outs: dict[str, list] = {}
            seconds: dict[str, list[float]] = {b: [] for b in models}
            for _ in range(args.rounds):
                for backend, model in models.items():
                    t0 = time.perf_counter()
                    outs[backend] = [denoise_image(model, y, sigma=25 / 255) for y in ys]
                    seconds[backend].append(time.perf_counter() - t0)
            diff = max(float(((a * 255).round() - (b * 255).round()).abs().max())
                       for a, b in zip(outs["torch"], outs["onnxruntime"]))
            row = {"model": name, "data": folder, "images": len(ys), "megapixels": megapixels, "threads": threads,
                   **{f"{b}_s_per_mp": statistics.median(s) / megapixels for b, s in seconds.items()},
                   "max_diff_8bit_levels": diff}
            results.append(row)
            print(f"{name} on {folder} ({len(ys)} images, {megapixels:.2f} MP), {threads} thread(s): "
                  f"torch {row['torch_s_per_mp']:.2f} s/MP, onnxruntime {row['onnxruntime_s_per_mp']:.2f} s/MP, "
                  f"outputs differ by at most {diff:g} 8-bit level(s)", flush=True)
    if args.json:
        import onnxruntime

        record = {"cpu": cpu_description(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                  "load_average": os.getloadavg()[0], "results": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
