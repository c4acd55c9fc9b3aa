"""Real camera noise on a paired folder (``noisy/`` + ``clean/``): what the noise level
estimator reads, and whether pixel-shuffle refinement helps a Gaussian-noise model.

Run from the project root (PolyU-Canon is a validation set: choose with it, never train on it)::

    .venv/bin/python benchmarks/real_noise.py levels --data ../shared/data/PolyU-Canon
    .venv/bin/python benchmarks/real_noise.py shuffle --data ../shared/data/PolyU-Canon --model color-blind

``levels``: per image, the standard deviation of ``noisy - clean`` (0-255) beside what
``aedenoise.noise.estimate_sigma`` reads on the image, on its 2x2 and 3x3 pixel-shuffled
sub-images (the median over them), and on 2x2 / 4x4 box-averaged copies times the factor
(for white noise every column reads the same level).

``shuffle``: the model at fixed levels on the whole image, against pixel-shuffle
refinement (Zhou et al. 2020, "When AWGN-based denoiser meets real noises"): the 2x2
sub-images denoised at one level, put back together, then a light pass at another. PSNR
on 8-bit RGB against the clean references, mean over images (as ``aedenoise evaluate``).

``figure``: one pair's noisy input, what ``aedenoise denoise`` makes of it with its
defaults, and the clean reference, as a 128x128 crop (the most detailed one of the clean
image) magnified 3x, into ``--out FILE.png``::

    .venv/bin/python benchmarks/real_noise.py figure --data ../shared/data/PolyU-Canon \
        --image Canon5D2_5_160_6400_reciever_4.JPG --out docs/img/real-photo.png

``ensemble``: the model at one level (``--levels 10``) on the whole image, alone and as the
mean of 2, 4 and 8 flipped/transposed copies (self-ensemble; n copies cost n times the time).

``--gray`` turns both images of every pair into gray (BT.601 luma, rounded to 8 bit) first,
for the gray models; ``--levels 4,6,8`` sets the fixed levels of ``shuffle`` (default 5,10,15).
``--every N`` takes every N-th pair (by name); ``--out FILE.json`` writes the numbers.
Prints the CPU; set ``--threads``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aedenoise.atomic import write_json
from aedenoise.benchmark import load_samples, open_dataset
from aedenoise.denoising import load_denoiser
from aedenoise.hardware import cpu_description
from aedenoise.metrics import psnr
from aedenoise.models.pixel_shuffle import shuffle_down, shuffle_up
from aedenoise.noise import estimate_sigma


def luma(x: torch.Tensor) -> torch.Tensor:
    """RGB ``[B, 3, H, W]`` -> gray ``[B, 1, H, W]`` (BT.601 weights), rounded to 8 bit."""
    return quantized(0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])


def quantized(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def levels(pairs: list[tuple[str, torch.Tensor, torch.Tensor]]) -> dict[str, object]:
    columns = ("true", "image", "shuffle2", "shuffle3", "box2", "box4")
    rows = []
    for name, y, x in pairs:
        reading = {
            "true": float((y - x).std()) * 255,
            "image": float(estimate_sigma(y)[0]) * 255,
            "shuffle2": float(estimate_sigma(shuffle_down(y, 2)).median()) * 255,
            "shuffle3": float(estimate_sigma(shuffle_down(y, 3)).median()) * 255,
            "box2": float(estimate_sigma(F.avg_pool2d(y, 2))[0]) * 255 * 2,
            "box4": float(estimate_sigma(F.avg_pool2d(y, 4))[0]) * 255 * 4,
        }
        rows.append({"image": name, **reading})
        print(name, " ".join(f"{k} {reading[k]:5.2f}" for k in columns), flush=True)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in columns}
    print("mean", " ".join(f"{k} {mean[k]:5.2f}" for k in columns))
    return {"rows": rows, "mean": mean}


def shuffle(pairs: list[tuple[str, torch.Tensor, torch.Tensor]], model: str, fixed: list[float],
            refine: list[tuple[float, float]]) -> dict[str, object]:
    net = load_denoiser(model)
    if not net.uses_sigma:
        raise SystemExit(f"{model} takes no noise level; pixel-shuffle refinement is for Gaussian-noise models")
    out: dict[str, float] = {}
    with torch.inference_mode():
        out["noisy"] = sum(float(psnr(y, x)) for _, y, x in pairs) / len(pairs)
        for s in fixed:
            out[f"whole sigma {s:g}"] = sum(float(psnr(quantized(net(y, s / 255)), x)) for _, y, x in pairs) / len(pairs)
        for s_sub, s_pass in refine:
            total = 0.0
            for _, y, x in pairs:
                z = shuffle_up(net(shuffle_down(y, 2), s_sub / 255), 2)
                z = net(z, s_pass / 255) if s_pass > 0 else z
                total += float(psnr(quantized(z), x))
            out[f"shuffle sigma {s_sub:g}, pass {s_pass:g}"] = total / len(pairs)
    for k, v in out.items():
        print(f"{k:28s} {v:.3f} dB")
    return out


_DIHEDRAL = (
    (lambda t: t, lambda t: t),
    (lambda t: t.flip(-1), lambda t: t.flip(-1)),
    (lambda t: t.flip(-2), lambda t: t.flip(-2)),
    (lambda t: t.flip(-1).flip(-2), lambda t: t.flip(-2).flip(-1)),
    (lambda t: t.transpose(-1, -2), lambda t: t.transpose(-1, -2)),
    (lambda t: t.transpose(-1, -2).flip(-1), lambda t: t.flip(-1).transpose(-1, -2)),
    (lambda t: t.transpose(-1, -2).flip(-2), lambda t: t.flip(-2).transpose(-1, -2)),
    (lambda t: t.transpose(-1, -2).flip(-1).flip(-2), lambda t: t.flip(-2).flip(-1).transpose(-1, -2)),
)
"""(transform, its inverse): the 8 symmetries of the square."""
_ENSEMBLES = {"x1": (0,), "x2 (180-degree turn)": (0, 3), "x4 (flips)": (0, 1, 2, 3), "x8": tuple(range(8))}


def ensemble(pairs: list[tuple[str, torch.Tensor, torch.Tensor]], model: str, level: float) -> dict[str, float]:
    net = load_denoiser(model)
    totals = dict.fromkeys(_ENSEMBLES, 0.0)
    with torch.inference_mode():
        for _, y, x in pairs:
            outs = [inverse(net(forward(y), level / 255)) for forward, inverse in _DIHEDRAL]
            for name, members in _ENSEMBLES.items():
                totals[name] += float(psnr(quantized(sum(outs[k] for k in members) / len(members)), x))
    out = {name: total / len(pairs) for name, total in totals.items()}
    for k, v in out.items():
        print(f"{k:28s} {v:.3f} dB")
    return out


def figure(data: str, image: str, out: Path) -> None:
    from aedenoise.denoising import run_jobs
    from aedenoise.denoising.files import Job
    from aedenoise.io import read_image
    from aedenoise.metrics import ssim
    from matplotlib.figure import Figure

    from aedenoise.atomic import atomic_path
    from aedenoise.report.benchmark import crop_box

    noisy, clean = Path(data) / "noisy" / image, Path(data) / "clean" / image
    y, x = read_image(noisy).data, read_image(clean).data
    denoised = out.with_name(out.stem + ".denoised.png")
    run_jobs([Job(noisy, denoised)], sigma="auto", overwrite=True)  # the defaults of `aedenoise denoise noisy`
    x_hat = read_image(denoised).data
    denoised.unlink()
    score = lambda z: f"{float(psnr(z[None], x[None])):.2f} dB / {float(ssim(z[None], x[None])):.3f}"  # noqa: E731
    box = crop_box(x, size=128)
    panels = [(f"noisy {score(y)}", y), (f"aedenoise denoise {score(x_hat)}", x_hat), ("clean (mean of many shots)", x)]
    top, left, size = box
    fig = Figure(figsize=(3 * 4.0, 4.75), layout="constrained")
    for ax, (name, img) in zip(fig.subplots(1, 3), panels):  # nearest-neighbour, the fixed [0, 1] scale
        ax.imshow(img[:, top : top + size, left : left + size].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"PolyU-Canon {image}, 128 px crop, 3x: (c) 2018 The Hong Kong Polytechnic University\n"
                 "(Xu, Li, Liang, Zhang, Zhang, arXiv 1804.02603; non-commercial use)", fontsize=9)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("levels", "shuffle", "ensemble", "figure"))
    p.add_argument("--image", help="figure: the pair's file name")
    p.add_argument("--data", required=True, help="a paired folder (noisy/ and clean/ with the same names)")
    p.add_argument("--model", default="color-blind", help="shuffle: a Gaussian-noise model (default color-blind)")
    p.add_argument("--every", type=int, default=1, help="every N-th pair by name (default 1: all)")
    p.add_argument("--gray", action="store_true", help="turn every pair into gray (luma) first")
    p.add_argument("--levels", default="5,10,15", help="shuffle: the fixed levels (0-255), comma-separated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the numbers to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "figure":
        if not (args.image and args.out):
            raise SystemExit("figure needs --image NAME and --out FILE.png")
        return figure(args.data, args.image, Path(args.out))
    dataset = open_dataset(args.data)
    if not dataset.paired:
        raise SystemExit(f"{args.data}: not a paired folder (needs noisy/ and clean/)")
    samples = load_samples(dataset, [], print)[:: args.every]
    pairs = [(s.image, s.noisy[None], s.clean[None]) for s in samples]
    if args.gray:
        pairs = [(name, luma(y), luma(x)) for name, y, x in pairs]
    print(f"{len(pairs)} pairs; CPU: {cpu_description()}; {args.threads} thread(s)")
    t0 = time.perf_counter()
    if args.command == "levels":
        result = levels(pairs)
    elif args.command == "ensemble":
        result = ensemble(pairs, args.model, float(args.levels.split(",")[0]))
    else:
        levels_255 = [float(v) for v in args.levels.split(",")]
        result = shuffle(pairs, args.model, levels_255, [(5, 0), (5, 2), (5, 5), (10, 0), (10, 5)])
    print(f"{time.perf_counter() - t0:.1f} s")
    if args.out:
        write_json(Path(args.out), {"command": args.command, "data": args.data, "pairs": len(pairs),
                                    "cpu": cpu_description(), "threads": args.threads, "result": result})


if __name__ == "__main__":
    main()
