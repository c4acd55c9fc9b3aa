"""``aedenoise adapt``: fine-tune a denoiser on your own noisy images; no clean image needed.

Example::

    aedenoise adapt stack.tif --out mine.safetensors
    aedenoise denoise stack.tif --model mine.safetensors --sigma auto -o out.tif

Starts from the shipped photo model for the images' channels (``--from``: another shipped
name or a checkpoint), trains it with a self-supervised objective (default
neighbor2neighbor; r2r on pixel-shuffled sub-images, where the noise is correlated between
neighbours) and writes the best weights on held-back patches (docs/self-supervised.md).
Budget: 300 steps or 10 minutes, whichever comes first; ``--steps`` alone or ``--minutes``
alone sets that one only. Exit status: 0 written, 1 an error while adapting, 2 a usage
error found before any work (bad option, zero budget, no readable image, gray and color
mixed, an output that would overwrite an input or shipped weights), 130 interrupted
(``--resume`` continues).
"""

from __future__ import annotations

import argparse
import math
import sys

DEFAULT_STEPS, DEFAULT_MINUTES = 300, 10.0


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number >= 0")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "adapt", help="fine-tune a denoiser on your own noisy images (no clean images needed)",
        description="Fine-tune a trained denoiser on noisy images alone with a self-supervised objective, keeping "
        "the weights that score best on held-back patches. Budget: 300 steps or 10 minutes, whichever first. "
        "Exit status: 0 written, 1 error while adapting, 2 usage error, 130 interrupted (--resume continues).",
    )
    p.add_argument("inputs", nargs="+", metavar="NOISY", help="noisy image files, folders (their images) or glob patterns")
    p.add_argument("--out", required=True, metavar="FILE", help="the adapted checkpoint (*.safetensors); its state "
                   "for --resume goes in FILE.adapt/")
    p.add_argument("--from", dest="start", metavar="SPEC", help="start model: shipped weights name or checkpoint file "
                   "(default: the shipped photo model for the images' channels, camera noise)")
    p.add_argument("--objective", choices=("auto", "neighbor2neighbor", "n2v", "r2r"), default="auto",
                   help="self-supervised objective (default auto: neighbor2neighbor on the images, r2r on pixel-shuffled "
                        "sub-images; see docs/self-supervised.md)")
    p.add_argument("--n2v2", action="store_true", help="n2v: replace masked pixels by their neighbourhood's median (N2V2)")
    p.add_argument("--sigma", type=_number, metavar="S", help="known Gaussian noise level on the 0-255 scale (r2r's "
                   "recorruption, and the level given to models that read one); default: estimated per image")
    p.add_argument("--steps", type=_whole, metavar="N", help=f"total optimizer steps (default {DEFAULT_STEPS}, or "
                   f"{DEFAULT_MINUTES:g} minutes if that comes first)")
    p.add_argument("--minutes", type=_number, metavar="M", help="wall-clock limit of this run in minutes")
    p.add_argument("--patch", type=_whole, default=64, metavar="N", help="patch side in pixels (default 64; shrunk to fit small images)")
    p.add_argument("--batch", type=_whole, default=8, metavar="N", help="patches per step (default 8)")
    p.add_argument("--lr", type=_number, default=1e-4, metavar="LR", help="Adam learning rate (default 1e-4)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the held-back cells, patches and draws (default 0)")
    p.add_argument("--val-every", type=_whole, default=25, metavar="K", help="validate every K steps (default 25)")
    p.add_argument("--threads", type=_whole, metavar="N", help="CPU threads (default: one per core not busy)")
    p.add_argument("-r", "--recursive", action="store_true", help="include images in subfolders of input folders")
    p.add_argument("--resume", action="store_true", help="continue an interrupted or finished adaptation (same "
                   "settings; --steps/--minutes may grow)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input) and its state")
    p.add_argument("--force", action="store_true",
                   help="adapt even where the noise looks correlated between neighbouring pixels at every --shuffle "
                        "stride tried (camera JPEGs, resampled images), which the objectives cannot remove and would "
                        "learn to keep")
    p.add_argument("--shuffle", choices=("auto", "1", "2", "3", "4"), default="auto",
                   help="train on the images' SxS pixel-shuffled sub-images, where noise correlated between neighbours "
                        "is independent again (auto, the default: the smallest S from 1 at which the noise the start "
                        "model removes is independent; 1: the images themselves)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from aedenoise.errors import AedenoiseError
    from aedenoise.training.adapt import adapt

    try:
        plan, out = _setup(args)
    except AedenoiseError as err:
        if args.debug:
            raise
        print(f"aedenoise adapt: error: {err}", file=sys.stderr)
        return 2
    result = adapt(plan, out, resume=args.resume, progress=not args.no_progress and sys.stderr.isatty(), log=_note)
    verdict = (f"best at step {result.best_step}" if result.improved else "no improvement that counts: the start model is kept")
    print(f"adapted {plan.start.label} on {len(result.images)} image(s), {result.steps} steps in {result.seconds:.0f} s: "
          f"validation score {result.start_score:.6g} -> {result.best_score:.6g} ({verdict})")
    level = "auto" if args.sigma is None else f"{args.sigma:g}"  # the level it was adapted with
    sigma = f" --sigma {level}" if result.reads_sigma else ""
    if result.shuffle > 1:
        print(f"the model works on {result.shuffle}x{result.shuffle} pixel-shuffled sub-images (correlated noise); "
              f"it reads the noise level there")
    print(f"wrote {out}; denoise with: aedenoise denoise IMAGE --model {out}{sigma}")
    return 0


def _setup(args: argparse.Namespace):
    from pathlib import Path

    from aedenoise.config import validate_adapt_config
    from aedenoise.data.noisy import read_noisy_images
    from aedenoise.denoising.files import expand_inputs
    from aedenoise.denoising.selection import default_model_for
    from aedenoise.errors import ConfigError
    from aedenoise.training.adapt import (
        check_channels,
        check_resumable,
        resolve_start,
        saved_shuffle,
    )
    from aedenoise.training.adapt_checks import check_output, plan_for_noise

    if args.steps == 0 or args.minutes == 0:
        raise ConfigError("a budget of zero leaves nothing to do; give --steps N or --minutes M above 0 "
                          f"(default: {DEFAULT_STEPS} steps or {DEFAULT_MINUTES:g} minutes, whichever first)")
    if args.n2v2 and args.objective != "n2v":
        raise ConfigError("--n2v2 applies to --objective n2v only")
    steps, minutes = args.steps, args.minutes
    if steps is None and minutes is None:
        steps, minutes = DEFAULT_STEPS, DEFAULT_MINUTES
    kind = "neighbor2neighbor" if args.objective == "auto" else args.objective  # auto: plan_for_noise may pick r2r
    objective = {"kind": kind, **({"n2v2": True} if args.n2v2 else {}),
                 **({"sigma": args.sigma / 255} if args.sigma is not None else {})}
    config = validate_adapt_config({
        "objective": objective, "steps": steps, "minutes": minutes, "patch_size": args.patch, "batch_size": args.batch,
        "lr": args.lr, "seed": args.seed, "val_every": args.val_every, "threads": args.threads,
    })
    out = Path(args.out)
    files, left_out = expand_inputs(args.inputs, recursive=args.recursive)
    if left_out:
        _note(f"left out {left_out} file(s) named *.denoised.* (earlier outputs); name them explicitly to use them")
    check_output(out, [p for p, _ in files], overwrite=args.overwrite, resume=args.resume)
    images = read_noisy_images(files, log=_note)
    if args.start is None:
        check_channels(images, int(images[0][1].shape[0]), model="the images")  # mixed kinds: named here
        start = resolve_start(default_model_for(int(images[0][1].shape[0]), noise="camera"))
    else:
        start = resolve_start(args.start)
    shuffle = None if args.shuffle == "auto" else int(args.shuffle)
    if args.resume and shuffle is None:
        shuffle = saved_shuffle(out)  # continue at the stride chosen before
    plan = plan_for_noise(start, images, config, shuffle=shuffle, force=args.force, auto_objective=args.objective == "auto",
                          log=_note)
    if args.resume:
        check_resumable(plan, out)
    return plan, out
