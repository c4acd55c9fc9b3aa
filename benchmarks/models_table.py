"""Print the docs/models.md comparison table from `aedenoise evaluate --json` files.

    python benchmarks/models_table.py runs/bench/auto.json runs/bench/bm3d-bsd68.json \
        runs/bench/cbm3d-cbsd68-20.json runs/bench/auto-cbsd68-20.json runs/bench/stacked.json

Rows: method (weights) x dataset (with the image count); columns: sigma 15/25/50, PSNR (dB) /
SSIM, and seconds per megapixel. Published rows (DnCNN, DRUNet, BM3D) are quoted from the
papers in docs/models.md, not computed here.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(paths: list[str]) -> None:
    table: dict[tuple[str, str, int], dict[float, dict]] = defaultdict(dict)
    for path in paths:
        with open(path) as f:
            for r in json.load(f)["results"]:
                name = r["method"] if not r.get("weights") or r["weights"] == r["method"] else f"{r['method']} ({r['weights']})"
                name = name.rsplit("/", 1)[-1]
                table[(r["dataset"], name, r["n_images"])][r["sigma"]] = r
    print("| dataset (images) | method | σ=15 | σ=25 | σ=50 | s/MP |")
    print("|---|---|---|---|---|---|")
    for (dataset, name, n), by_sigma in sorted(table.items()):
        cells = [f"{by_sigma[s]['psnr']:.2f} / {by_sigma[s]['ssim']:.3f}" if s in by_sigma else "–" for s in (15.0, 25.0, 50.0)]
        speed = sum(r["seconds"] for r in by_sigma.values()) / sum(r["megapixels"] for r in by_sigma.values())
        print(f"| {dataset} ({n}) | {name} | " + " | ".join(cells) + f" | {speed:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
