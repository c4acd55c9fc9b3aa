"""``aedenoise evaluate``: the benchmark harness on image folders.

Example::

    aedenoise evaluate --method bm3d --method nlm --data ../shared/data/BSD68 --sigma 25 --json out.json

    aedenoise evaluate --method auto --method bm3d --data ../shared/data/PolyU-Canon --json real.json

Each ``--method`` runs on each ``--data`` folder at each ``--sigma`` (0-255) under the
protocol of ``docs/benchmark-protocol.md``. A folder of clean images gets seeded Gaussian
noise of each ``--sigma`` (default 15, 25, 50). A *paired* folder, with subfolders
``noisy/`` and ``clean/`` holding images of the same file names, holds real noise: the
noisy images are scored as they are (records say ``"sigma": "real"``), the noisy input
itself is a row named ``noisy``, and the methods are told ``"sigma_given"``: without
``--sigma`` ``"auto"`` (estimated per image, as ``aedenoise denoise --sigma auto``), else
each ``--sigma`` value (``--sigma auto`` too). A method is a classical name, a checkpoint
file, the name of shipped weights (``aedenoise models``) or ``auto``: on each dataset the
shipped photo default for its channels and noise, as ``aedenoise denoise`` picks it (gray
folders get the gray default, color folders the color one; paired folders the real-photo
default). ``--json`` gets ``{"results": [...]}``, one record per method x dataset x sigma
(x sigma_given); ``weights`` names the shipped weights behind a record (for ``auto``, the
default it used; ``null`` for classical methods and checkpoints). ``--out DIR`` also keeps
the per-image CSV (``per_image.csv``), ``results.json``, ``results.md``, figures and
``report.md``, and caches every finished image under ``DIR/cache`` so a rerun of an
interrupted command continues where it stopped.
"""

from __future__ import annotations

import argparse
import math
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="benchmark denoisers on image folders (PSNR, SSIM, seconds per megapixel)",
        description="Benchmark denoisers on folders of clean images with seeded Gaussian noise "
                    "(standard DnCNN protocol), or on paired real-noise folders (subfolders noisy/ and "
                    "clean/ with the same file names: the noisy images scored as they are, plus a 'noisy' "
                    "row for the input itself); see docs/benchmark-protocol.md.",
    )
    p.add_argument("--method", action="append", required=True, metavar="METHOD",
                   help="classical name (gaussian, median, tv, wavelet, nlm, bm3d), checkpoint path, shipped "
                        "weights name, or 'auto' (the shipped gray/color photo default for each dataset, as "
                        "'aedenoise denoise' picks it; on paired folders the real-photo default); repeat for "
                        "several")
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of clean images, or a paired folder with noisy/ and clean/ subfolders (real "
                        "noise; same file names); the dataset name is the folder name; repeat for several")
    p.add_argument("--sigma", action="append", metavar="S",
                   help="clean folders: Gaussian noise level on the 0-255 scale (default: 15, 25 and 50); "
                        "paired folders: no noise is added, S is the level the methods are told, or 'auto' "
                        "to estimate it per image (default: auto); repeatable")
    p.add_argument("--json", metavar="FILE", help="write the summary records to this JSON file")
    p.add_argument("--out", metavar="DIR",
                   help="folder for per_image.csv, results.json/.md, figures, report.md and the resume cache")
    p.add_argument("--limit", metavar="N",
                   help="only the first N images (paired folders: pairs) of each folder, sorted by name")
    p.add_argument("--seed", default="0", metavar="N", help="noise seed (default 0); see docs/benchmark-protocol.md")
    p.add_argument("--clip", action="store_true",
                   help="clamp the noisy input to [0, 1] before the method (not the standard protocol)")
    p.add_argument("--device", default="cpu", help="torch device for learned models: cpu (default), cuda, cuda:1, mps")
    p.add_argument("--tile", metavar="PX", help="denoise learned models in tiles of PX pixels (default: whole image)")
    p.add_argument("--threads", metavar="N",
                   help="torch CPU threads (default: torch's default); recorded with the timings")
    p.add_argument("--no-figures", action="store_true", help="with --out: tables only, no figures")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from aedenoise import benchmark
    from aedenoise.atomic import write_json

    given = [s if s == benchmark.AUTO_SIGMA else _number(s, "--sigma") for s in args.sigma or []]
    given = [benchmark.check_paired_sigma(s) for s in dict.fromkeys(given)] or [benchmark.AUTO_SIGMA]
    sigmas = [s for s in given if s != benchmark.AUTO_SIGMA] if args.sigma else list(benchmark.DEFAULT_SIGMAS)
    limit = None if args.limit is None else _integer(args.limit, "--limit", minimum=1)
    seed = _integer(args.seed, "--seed", minimum=0)
    tile = None if args.tile is None else _integer(args.tile, "--tile", minimum=8)
    if args.threads is not None:
        torch.set_num_threads(_integer(args.threads, "--threads", minimum=1))
    device = _device(args.device)

    datasets = [benchmark.open_dataset(d, limit=limit) for d in args.data]
    methods = [benchmark.resolve_method(m, device=device) for m in dict.fromkeys(args.method)]
    out = None if args.out is None else _out_dir(args.out, datasets)

    def progress(row: benchmark.ImageResult, cached: bool) -> None:
        note = "cached" if cached else "the input" if row.sigma_given is None else f"{row.seconds:.2f} s"
        name = row.method if row.weights in (None, row.method) else f"{row.method} ({row.weights})"
        level = f"sigma {benchmark.level_text(row.sigma)}"
        if row.sigma == benchmark.REAL:
            told = row.sigma_given
            level = "real noise" + ("" if told is None else f", sigma given {benchmark.level_text(told)}")
        print(f"{name} {row.dataset}/{row.image} {level}: {row.psnr:.2f} dB, "
              f"SSIM {row.ssim:.4f} ({note})", file=sys.stderr, flush=True)

    def warn(message: str) -> None:
        print(f"aedenoise: warning: {message}", file=sys.stderr, flush=True)

    result = benchmark.run_benchmark(
        methods, datasets, sigmas, paired_sigmas=given, seed=seed, clip=args.clip, device=device, tile=tile,
        cache_dir=None if out is None else out / "cache",
        examples_dir=None if out is None or args.no_figures else out / "examples", progress=progress, warn=warn,
    )
    if args.json:
        write_json(args.json, result.to_json())
    from aedenoise.report.benchmark import markdown_tables, write_outputs

    if out is not None:
        report = write_outputs(out, result, datasets, figures=not args.no_figures)
        print(f"wrote {report}", file=sys.stderr)
    print(markdown_tables(result), end="")
    if result.skipped:
        warn(f"{len(result.skipped)} file(s) skipped (unreadable or without a partner); see the messages above")
    return 0


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        from aedenoise.errors import ConfigError

        raise ConfigError(f"{flag} takes a number, not {text!r}")
    return value


def _integer(text: str, flag: str, *, minimum: int) -> int:
    from aedenoise.errors import ConfigError

    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{flag} takes a whole number, not {text!r}") from None
    if value < minimum:
        raise ConfigError(f"{flag} must be at least {minimum} (got {value})")
    return value


def _device(name: str):  # -> torch.device
    import torch

    from aedenoise.errors import ConfigError

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a torch device (try cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return device


def _out_dir(path: str, datasets: list):  # -> pathlib.Path
    from pathlib import Path

    from aedenoise.errors import ConfigError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; give a folder path")
    for d in datasets:
        if out.resolve() == d.root.resolve():
            raise ConfigError(f"--out {out}: is the data folder {d.root}; write the results elsewhere")
    return out
