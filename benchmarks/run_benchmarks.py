"""The project's standard denoising benchmark: methods x {Set12, BSD68, CBSD68} x sigma {15, 25, 50}.

Runs the harness of ``aedenoise evaluate`` (protocol: docs/benchmark-protocol.md) with each
method on every dataset whose channel count it takes (gray-only models skip CBSD68;
classical filters run everywhere), and writes one combined report::

    python benchmarks/run_benchmarks.py                          # classical baselines, all sets
    python benchmarks/run_benchmarks.py --method bm3d --dataset BSD68 --sigma 25
    python benchmarks/run_benchmarks.py --quick                  # 3 images per set: a smoke run

Outputs in ``--out`` (default ``benchmarks/results``, ``benchmarks/results-quick`` with
``--quick``): results.json, per_image.csv, results.md, report.md and figures; finished
images are cached there, so rerunning an interrupted command continues it. Long: BM3D is
the slow one (BSD68 at sigma 25 took 29 minutes on a shared, loaded 2-core machine; CBM3D
on color images more), so the full suite takes hours; run it in the background.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("Set12", "BSD68", "CBSD68")
CLASSICAL = ("gaussian", "median", "tv", "wavelet", "nlm", "bm3d")


def main(argv: list[str] | None = None) -> int:
    import torch

    from aedenoise import benchmark
    from aedenoise.errors import AedenoiseError
    from aedenoise.report.benchmark import markdown_tables, write_outputs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data",
                   help="folder holding the dataset folders")
    p.add_argument("--dataset", action="append", choices=DATASETS, help="default: all three")
    p.add_argument("--method", action="append", help=f"default: {', '.join(CLASSICAL)}")
    p.add_argument("--sigma", action="append", type=float, help="0-255 scale; default 15, 25, 50")
    p.add_argument("--out", type=Path, help="default: benchmarks/results (benchmarks/results-quick with --quick)")
    p.add_argument("--quick", action="store_true", help="only the first 3 images of each set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: comparable timings)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or ROOT / "benchmarks" / ("results-quick" if args.quick else "results")

    def progress(row: benchmark.ImageResult, cached: bool) -> None:
        if not cached:
            print(f"{row.method} {row.dataset}/{row.image} sigma {row.sigma:g}: {row.psnr:.2f} dB "
                  f"({row.seconds:.2f} s)", file=sys.stderr, flush=True)

    try:
        limit = 3 if args.quick else None
        datasets = [benchmark.open_dataset(args.data_root / d, limit=limit) for d in args.dataset or DATASETS]
        methods = [benchmark.resolve_method(m, device=args.device) for m in args.method or CLASSICAL]
        result = benchmark.run_benchmark(
            methods, datasets, args.sigma or benchmark.DEFAULT_SIGMAS, seed=args.seed, device=args.device,
            cache_dir=out / "cache", examples_dir=out / "examples", progress=progress,
            warn=lambda msg: print(f"note: {msg}", file=sys.stderr), mismatch="skip",
        )
        print(f"wrote {write_outputs(out, result, datasets)}", file=sys.stderr)
    except AedenoiseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(markdown_tables(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
