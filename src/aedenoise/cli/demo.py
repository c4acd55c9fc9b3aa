"""``aedenoise demo``: a clean photo, the same with noise, and the shipped default's result, side by side."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="noise a photo, denoise it with the shipped default, write a before/after picture",
                       description="Add seeded Gaussian noise to a clean photo (default: the sample shipped with "
                                   "aedenoise), denoise it as 'aedenoise denoise' would (shipped default, --sigma auto) "
                                   "and write clean/noisy/denoised images, a side-by-side picture and report.md.")
    p.add_argument("--out", default="runs/demo-photo", metavar="DIR", help="output folder (default runs/demo-photo)")
    p.add_argument("--image", metavar="FILE", help="a clean photo of your own instead of the sample")
    p.add_argument("--sigma", type=float, default=25.0, metavar="S", help="noise level on the 0-255 scale (default 25)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="noise seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aedenoise.report.photo import photo_demo

    r = photo_demo(args.out, image=args.image, sigma=args.sigma / 255, seed=args.seed)
    print(f"{r.model}: noisy {r.noisy_psnr:.2f} dB -> denoised {r.denoised_psnr:.2f} dB "
          f"(SSIM {r.noisy_ssim:.3f} -> {r.denoised_ssim:.3f}) in {r.seconds:.2f} s")
    print(f"Before/after: {r.side_by_side}" + (f" (zoomed: {r.crops})" if r.crops else ""))
    print(f"Report: {r.report}")
    return 0
