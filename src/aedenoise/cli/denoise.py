"""``aedenoise denoise``: denoise image files of any size.

Exit status: 0 when every file was written (or skipped with ``--skip-existing``), 1 when
some file failed (the others are still processed), 2 for a usage error found before
any work (bad option, unknown model, missing input, an output that would overwrite an
input or an existing file).
"""

from __future__ import annotations

import argparse
import math
import sys


def _sigma_arg(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give the noise level on the 0-255 scale "
                                         f"(e.g. 25) or 'auto'") from None
    if not math.isfinite(value) or not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{text} is outside 0-255; the noise level is on the 0-255 scale (e.g. 25)")
    return value


def _tile_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if value < 8:
        raise argparse.ArgumentTypeError(f"tile {value} is too small; use at least 64 (default 256)")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "denoise",
        help="denoise image files (any size; folders, globs)",
        description="Denoise image files of any size, tile by tile. Inputs are never overwritten; outputs are "
        "written atomically. Exit status: 0 all written, 1 some file failed, 2 usage error.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (their images) or glob patterns; "
                   "a multi-page TIFF is denoised page by page into one multi-page TIFF")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output folder (created), or an output file name for a single input; default: "
                   "<stem>.denoised<ext> beside each input")
    p.add_argument("--model", metavar="SPEC",
                   help="checkpoint file (*.safetensors), exported model (*.onnx), shipped weights name or "
                   "classical method (see 'aedenoise models'); default: the shipped photo model for gray/color")
    p.add_argument("--sigma", type=_sigma_arg, metavar="S",
                   help="noise level on the 0-255 scale, or 'auto' to estimate it per image; needed by models "
                   "that take a noise level. Without --model, a number picks the shipped Gaussian-noise model "
                   "at that level (see --noise)")
    p.add_argument("--noise", choices=("camera", "gaussian"),
                   help="without --model: which shipped default to use. camera: real photos (sensor noise, "
                   "demosaicing, JPEG; needs no level); gaussian: white Gaussian noise of a level (--sigma, or "
                   "estimated). Default: camera, or gaussian when --sigma is a number")
    p.add_argument("--tile", type=_tile_arg, metavar="N", help="tile side in pixels (default 256, more for models "
                   "with a wide receptive field); smaller uses less memory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="run learned models with PyTorch (default) or onnxruntime (CPU; pip install "
                   "'aedenoise[onnx]'; the model is exported once into the user cache)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bits per sample (default: the input's)")
    exist = p.add_mutually_exclusive_group()
    exist.add_argument("--overwrite", action="store_true", help="replace existing output files (never an input)")
    exist.add_argument("--skip-existing", action="store_true",
                       help="leave existing outputs alone (resume an interrupted batch)")
    p.add_argument("-r", "--recursive", action="store_true", help="include images in subfolders of input folders")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    ray = p.add_argument_group("bulk denoising on Ray (pip install 'aedenoise[ray]'; docs/bulk.md)")
    ray.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: this process (default); ray: a Ray Data pipeline over a pool of model actors")
    ray.add_argument("--ray-address", metavar="ADDR", help="a running Ray cluster (default: $RAY_ADDRESS, else a local one)")
    ray.add_argument("--ray-actors", type=int, metavar="N", help="model actors (default: the cluster's CPUs / --ray-threads)")
    ray.add_argument("--ray-threads", type=int, default=1, metavar="N", help="CPU threads per actor (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aedenoise.errors import AedenoiseError

    try:
        setup = _setup(args)
    except AedenoiseError as err:
        if args.debug:
            raise
        print(f"aedenoise denoise: error: {err}", file=sys.stderr)
        return 2
    return _process(args, *setup)


def _setup(args: argparse.Namespace):
    from aedenoise.denoising.files import expand_inputs, output_is_file, plan_jobs
    from aedenoise.denoising.selection import default_model_for, load_denoiser, photo_noise
    from aedenoise.denoising.tiling import tile_geometry
    from aedenoise.errors import ConfigError
    from aedenoise.hardware import resolve_device

    device = resolve_device("cpu" if args.backend == "onnxruntime" and args.device == "auto" else args.device)
    sigma = args.sigma
    if args.model is not None and args.noise is not None:
        raise ConfigError("--noise chooses among the shipped defaults; it does not apply with --model")
    if args.model is not None:
        model = load_denoiser(args.model, device=device, backend=args.backend)
        if model.uses_sigma and sigma is None:
            raise ConfigError(f"model {args.model!r} needs the noise level: give --sigma on the 0-255 scale "
                              f"(e.g. --sigma 25) or --sigma auto")
        tile_geometry(model, tile=args.tile)
    else:
        model, missing = None, 0
        for channels in (1, 3):
            try:
                default_model_for(channels, noise=args.noise or photo_noise(sigma))
            except ConfigError:
                missing += 1
        if missing == 2:
            raise ConfigError("no --model given and no default photo denoiser is shipped with this installation; "
                              "pass --model with a checkpoint file (*.safetensors) or a classical method "
                              "(see 'aedenoise models')")
        sigma = "auto" if sigma is None else sigma
    if isinstance(sigma, float):
        sigma = sigma / 255.0
    exclude = args.output if args.output is not None and not output_is_file(args.output) else None
    files, left_out = expand_inputs(args.inputs, recursive=args.recursive, exclude=exclude)
    if left_out:
        print(f"note: left out {left_out} file(s) named *.denoised.* (earlier outputs); name them explicitly "
              f"to denoise them", file=sys.stderr)
    jobs = plan_jobs(files, args.output, overwrite=args.overwrite, skip_existing=args.skip_existing,
                     bit_depth=args.bit_depth)
    return device, jobs, model, sigma


def _process(args: argparse.Namespace, device, jobs, model, sigma) -> int:
    from aedenoise.denoising.files import FileResult, run_jobs

    def report(r: FileResult) -> None:
        if r.status == "written":
            pages = f"{r.pages} pages, " if r.pages > 1 else ""
            level = ""
            if r.sigma is not None and sigma == "auto":
                level = f", sigma {r.sigma * 255:.1f}" + (" (mean over the pages)" if r.pages > 1 else "")
            print(f"{r.input} -> {r.output} ({pages}{r.seconds:.2f} s{level})", flush=True)
        elif r.status == "skipped":
            print(f"{r.input} -> {r.output} (skipped: output exists)", flush=True)
        else:
            problem = r.message if str(r.input) in r.message else f"{r.input}: {r.message}"
            print(f"failed: {problem}", file=sys.stderr, flush=True)

    progress = not args.no_progress and sys.stderr.isatty()
    if args.engine == "ray":
        from aedenoise.bulk import run_jobs_on_ray

        if args.device not in ("auto", "cpu"):
            print("note: --engine ray runs on the cluster's CPUs; --device is not used", file=sys.stderr)
        summary = run_jobs_on_ray(jobs, model=None if args.model is None else str(args.model), sigma=sigma,
                                  tile=args.tile, bit_depth=args.bit_depth, overwrite=args.overwrite,
                                  backend=args.backend, noise=args.noise, address=args.ray_address, actors=args.ray_actors,
                                  threads_per_actor=args.ray_threads, on_result=report)
    else:
        summary = run_jobs(jobs, model=model, sigma=sigma, tile=args.tile, device=device, bit_depth=args.bit_depth,
                           overwrite=args.overwrite, progress=progress, on_result=report, backend=args.backend,
                           noise=args.noise)
    n_w, n_s, n_f = len(summary.written), len(summary.skipped), len(summary.failed)
    stacks = [r.pages for r in summary.written if r.pages > 1]
    pages = f" ({len(stacks)} multi-page, {sum(stacks)} pages)" if stacks else ""
    print(f"done: {n_w} written{pages}, {n_s} skipped, {n_f} failed, of {len(jobs)} in {summary.seconds:.1f} s")
    if n_f:
        print(f"failed files: {', '.join(str(r.input) for r in summary.failed)}", file=sys.stderr)
        return 1
    return 0
