"""Peak memory of tiled inference on a 24-megapixel RGB image (6000 x 4000).

Each measurement runs in a fresh subprocess and reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, and ``VmHWM`` from ``/proc/self/status``).
Linux carries the parent's resident size into a child's ``ru_maxrss`` across
fork/exec, so this parent stays lean: it imports neither torch nor aedenoise, and the
input PNG is written by a child of its own. Measurements:

* ``tensor``: :func:`aedenoise.denoising.tiling.denoise_tiled` on a synthetic float32 image
  already in memory (the tiling machinery alone: input + one output + tiles).
* ``file``: the whole ``aedenoise denoise`` pipeline on a synthetic PNG
  (:func:`aedenoise.denoising.denoise_files`: decode, denoise, encode, atomic write).
* ``whole`` (only with ``--whole``): the same image in one forward pass, for comparison.

The model is a 3-channel ``conv_ae`` with fixed random weights unless ``--model``
names a checkpoint or shipped weights (e.g. the default color model). Fails (exit 1)
if a tiled peak reaches ``--limit-mb`` (default 2048).

    MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824 \\
        .venv/bin/python benchmarks/tiling_memory.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _hwm_mb() -> float | None:
    """Peak RSS of this process image only (Linux ``VmHWM``), or None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _model(spec: str | None):
    import torch

    from aedenoise.denoising import load_denoiser
    from aedenoise.models import create_model

    if spec:
        return load_denoiser(spec)
    torch.manual_seed(0)
    return create_model("conv_ae", in_channels=3).eval()


def _synthetic(height: int, width: int):
    """Smooth color gradients plus Gaussian noise (sigma 25/255), built in row strips."""
    import torch

    y = torch.empty(3, height, width)
    g = torch.Generator().manual_seed(0)
    xs = torch.linspace(0, 1, width)
    for r0 in range(0, height, 256):
        r1 = min(r0 + 256, height)
        ys = torch.linspace(r0 / height, r1 / height, r1 - r0)[:, None]
        y[0, r0:r1] = 0.2 + 0.6 * xs
        y[1, r0:r1] = 0.3 + 0.5 * ys
        y[2, r0:r1] = 0.5 + 0.3 * torch.sin(6 * (xs + ys))
        y[:, r0:r1] += torch.randn(3, r1 - r0, width, generator=g) * (25 / 255)
    return y.clamp_(0, 1)


def child(mode: str, args: argparse.Namespace) -> dict:
    import torch

    from aedenoise.denoising.tiling import denoise_tiled, denoise_whole

    if mode == "make-png":
        from aedenoise.io import write_image

        write_image(args.png, _synthetic(args.height, args.width))
        return {"mode": mode}
    model = _model(args.model)
    sigma = 25 / 255 if model.uses_sigma else None
    base = _peak_mb()
    start = time.perf_counter()
    if mode == "file":
        from aedenoise.denoising import denoise_files

        out = Path(args.png).with_name("out")
        summary = denoise_files([args.png], out, model=model, sigma=sigma, tile=args.tile, overwrite=True)
        if summary.failed:
            raise SystemExit(f"denoise failed: {summary.failed[0].message}")
    else:
        y = _synthetic(args.height, args.width)
        with torch.inference_mode():
            if mode == "whole":
                x_hat = denoise_whole(model, y, sigma)
            else:
                x_hat = denoise_tiled(model, y, sigma, tile=args.tile)
        assert x_hat.shape == y.shape
    hwm = _hwm_mb()
    return {"mode": mode, "peak_rss_mb": round(_peak_mb(), 1), "vm_hwm_mb": None if hwm is None else round(hwm, 1),
            "rss_after_import_mb": round(base, 1), "seconds": round(time.perf_counter() - start, 1),
            "threads": torch.get_num_threads()}


def _spawn(mode: str, args: argparse.Namespace, png: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--width", str(args.width), "--height", str(args.height)]
    for flag, value in (("--model", args.model), ("--tile", args.tile), ("--png", png)):
        if value is not None:
            cmd += [flag, str(value)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=6000)
    p.add_argument("--height", type=int, default=4000)
    p.add_argument("--model", help="checkpoint or shipped weights (default: 3-channel conv_ae, random weights)")
    p.add_argument("--tile", type=int, help="tile side (default: the library's)")
    p.add_argument("--modes", default="tensor,file", help="comma-separated: tensor, file")
    p.add_argument("--whole", action="store_true", help="also measure whole-image inference (needs several GB)")
    p.add_argument("--limit-mb", type=float, default=2048)
    p.add_argument("--child", choices=("tensor", "file", "whole", "make-png"), help=argparse.SUPPRESS)
    p.add_argument("--png", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0

    modes = [m for m in args.modes.split(",") if m]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        png = str(Path(tmp) / "in" / "synthetic.png")
        if "file" in modes:
            _spawn("make-png", args, png)
        for mode in modes + (["whole"] if args.whole else []):
            results.append(_spawn(mode, args, png))
            print(json.dumps(results[-1]), flush=True)
    mp = args.width * args.height / 1e6
    print(f"\n{args.width}x{args.height} RGB ({mp:.1f} MP), model {args.model or 'conv_ae (3 channels)'}, "
          f"tile {args.tile or 'default'}")
    print(f"parent ru_maxrss {_peak_mb():.0f} MB (a child's ru_maxrss is at least the parent's)")
    print("| mode | peak RSS (MB) | RSS after imports (MB) | seconds |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['peak_rss_mb']:.0f} | {r['rss_after_import_mb']:.0f} | {r['seconds']} |")
    over = [r for r in results if r["mode"] != "whole" and r["peak_rss_mb"] >= args.limit_mb]
    if over:
        print(f"FAIL: peak RSS {over[0]['peak_rss_mb']:.0f} MB >= {args.limit_mb:.0f} MB ({over[0]['mode']})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
