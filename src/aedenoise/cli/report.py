"""``aedenoise report RUN_DIR``: redraw a training run's figures and ``report.md``.

Reads the run's ``metrics.json`` and ``model.safetensors`` (no retraining); for a
Fashion-MNIST run it re-creates the fixed noisy test images for the comparison grid.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate a training run's figures and report.md from its files",
                       description="Regenerate comparison.png, curves.png and report.md of a finished "
                                   "`aedenoise train` run folder, without retraining.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of a finished `aedenoise train`")
    p.add_argument("--device", default="cpu", metavar="DEV", help="device for re-denoising the grid images (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aedenoise.hardware import resolve_device
    from aedenoise.report.run import regenerate

    path, note = regenerate(args.run_dir, device=str(resolve_device(args.device)))
    if note:
        print(f"aedenoise report: note: {note}", file=sys.stderr)
    print(f"Report: {path}")
    return 0
