"""Paired folders of a test set with noise the shipped models were not trained on, for ``aedenoise adapt``.

Writes ``OUT/noisy/NAME.png`` (16-bit PNG: the noise is kept, not rounded to 8 bit; values
clipped to [0, 1], as a camera would) and ``OUT/clean/NAME.png`` (the 8-bit original), so that
``aedenoise evaluate --data OUT`` scores the noisy images as they are (paired protocol,
docs/benchmark-protocol.md) and ``aedenoise adapt OUT/noisy`` sees the noisy ones only::

    .venv/bin/python benchmarks/unseen_noise.py --data ../shared/data/CBSD68 --noise poisson30 --out runs/unseen/poisson30
    .venv/bin/python benchmarks/unseen_noise.py --data ../shared/data/CBSD68 --noise blur25 --out runs/unseen/blur25

Noises (the same classes as training configs, seeded per image from ``--seed`` and the file name):

* ``poisson30``: Poisson (shot) noise at peak 30, ``y = Poisson(30 x) / 30``
  (``noise.kind = "poisson"``, ``peak = 30``);
* ``blur25``: white Gaussian noise of sigma 25/255 averaged over 3x3 windows before it is
  added, standard deviation 25/3/255 (``noise.kind = "correlated_gaussian"``, ``blur = 3``);
* ``gauss25``: white Gaussian noise of sigma 25/255 (the shipped models' own kind).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from aedenoise.io import is_image_path, read_image, write_image
from aedenoise.noise import CorrelatedGaussianNoise, GaussianNoise, NoiseModel, PoissonNoise

NOISES: dict[str, NoiseModel] = {
    "poisson30": PoissonNoise(30.0),
    "blur25": CorrelatedGaussianNoise(25 / 255, blur=3),
    "gauss25": GaussianNoise(25 / 255),
}


def seed_for(name: str, image: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}/{image}".encode()).digest()[:8], "little") & (2**63 - 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a folder of clean images")
    p.add_argument("--noise", required=True, choices=sorted(NOISES))
    p.add_argument("--out", required=True, help="the paired folder to write (noisy/ and clean/)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    noise = NOISES[args.noise]
    files = sorted(f for f in Path(args.data).iterdir() if f.is_file() and is_image_path(f))
    out = Path(args.out)
    for f in files:
        x = read_image(f).data
        g = torch.Generator().manual_seed(seed_for(args.noise, f.name, args.seed))
        y = noise(x[None], generator=g)[0].clamp(0, 1)
        name = f.with_suffix(".png").name
        write_image(out / "noisy" / name, y, bit_depth=16, overwrite=True)
        write_image(out / "clean" / name, x, bit_depth=8, overwrite=True)
    print(f"wrote {len(files)} pairs with {noise.describe()} to {out}")


if __name__ == "__main__":
    main()
