"""The photo half of the demo: a clean photo, the same with noise, and the shipped default's result.

:func:`photo_demo` adds seeded white Gaussian noise to a clean photo (by default the sample
shipped in ``aedenoise/samples``), saves it as an ordinary 8-bit image, denoises that file's
pixels as ``aedenoise denoise`` would (the shipped photo default, ``--sigma auto``), and
writes the three images, a side-by-side picture, zoomed crops (with matplotlib) and a
``report.md`` with PSNR/SSIM into one folder. Pixels are never rescaled for display.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

from aedenoise.atomic import write_text
from aedenoise.benchmark import noisy_image, quantize_8bit
from aedenoise.denoising import default_model_for, denoise_image, load_denoiser, resolve_sigma
from aedenoise.errors import ConfigError
from aedenoise.io import read_image, write_image
from aedenoise.metrics import psnr, ssim
from aedenoise.report.benchmark import crop_box, crop_figure
from aedenoise.report.figures import MissingMatplotlib, require_matplotlib

SAMPLE = "astronaut.png"
"""The shipped sample: Eileen Collins, NASA, public domain (``aedenoise/samples/README.md``)."""
GUTTER = 8  # white pixels between the images of the side-by-side picture


@dataclass(frozen=True)
class PhotoDemo:
    """Where the demo wrote its files, the model it used, and the scores against the clean photo."""

    out_dir: Path
    report: Path
    side_by_side: Path
    crops: Path | None
    model: str
    sigma: float  # the noise level added, [0, 1] scale
    sigma_estimated: float | None  # what --sigma auto found in the noisy image, [0, 1] scale
    noisy_psnr: float
    denoised_psnr: float
    noisy_ssim: float
    denoised_ssim: float
    seconds: float


def sample_photo() -> Path:
    """The path of the shipped sample photo."""
    return Path(str(resources.files("aedenoise") / "samples" / SAMPLE))


def side_by_side(images: list[Tensor]) -> Tensor:
    """``[C, H, W]`` images of one size in a row with white gutters (gray ones repeated to RGB)."""
    images = [x.expand(3, -1, -1) if x.shape[0] == 1 else x for x in images]
    h = images[0].shape[-2]
    gap = torch.ones(3, h, GUTTER)
    parts = [p for x in images for p in (x, gap)][:-1]
    return torch.cat(parts, dim=-1)


def photo_demo(out_dir: str | Path, *, image: str | Path | None = None, sigma: float = 25 / 255, seed: int = 0,
               device: torch.device | str = "cpu") -> PhotoDemo:
    """Noise a clean photo (``image``, default :func:`sample_photo`) at ``sigma`` (``[0, 1]`` scale),
    denoise it with the shipped default for its channels and write the results into ``out_dir``.

    The noise is drawn from a generator seeded by ``seed`` and the photo's name, so a rerun
    writes the same files. Raises :class:`ConfigError` when no default model is shipped.
    """
    if not 0 < sigma <= 1:
        raise ConfigError(f"--sigma must be in (0, 255] on the 0-255 scale (got {sigma * 255:g})")
    src = Path(image) if image is not None else sample_photo()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = read_image(src).data
    y = quantize_8bit(noisy_image(x, sigma * 255, dataset="demo", image=src.name, seed=seed))[0]  # an ordinary 8-bit photo
    spec = default_model_for(x.shape[0])
    model = load_denoiser(spec, device=device)
    estimated = resolve_sigma(model, y, "auto")  # what "auto" finds, reported beside the true level
    t0 = time.perf_counter()
    x_hat = quantize_8bit(denoise_image(model, y, sigma=estimated, device=device))  # that level, not estimated twice
    seconds = time.perf_counter() - t0
    files = {"clean.png": x, "noisy.png": y, "denoised.png": x_hat}
    for name, img in files.items():
        write_image(out / name, img, overwrite=True)
    pair = side_by_side([x, y, x_hat])
    write_image(out / "side-by-side.png", pair, overwrite=True)
    scores = {name: (float(psnr(img[None], x[None])[0]), float(ssim(img[None], x[None])[0]))
              for name, img in (("noisy", y), ("denoised", x_hat))}
    crops = None
    try:
        require_matplotlib()
        panels = [("clean", x), (f"noisy {scores['noisy'][0]:.2f} dB", y), (f"{spec} {scores['denoised'][0]:.2f} dB", x_hat)]
        crops = crop_figure(out / "crops.png", panels, crop_box(x, size=min(x.shape[-2:]) // 3),
                            title=f"Gaussian noise sigma {sigma * 255:g}/255; zoomed crops, pixels as they are")
    except MissingMatplotlib:
        pass
    result = PhotoDemo(
        out_dir=out, report=out / "report.md", side_by_side=out / "side-by-side.png", crops=crops, model=spec,
        sigma=sigma, sigma_estimated=estimated,
        noisy_psnr=scores["noisy"][0], denoised_psnr=scores["denoised"][0],
        noisy_ssim=scores["noisy"][1], denoised_ssim=scores["denoised"][1], seconds=seconds)
    write_text(result.report, _markdown(result, src))
    return result


def _markdown(r: PhotoDemo, src: Path) -> str:
    est = f"{r.sigma_estimated * 255:.1f}" if r.sigma_estimated is not None else "not used"
    lines = [f"# Denoising a photo: `{src.name}`", "",
             f"White Gaussian noise of sigma {r.sigma * 255:g}/255 added to the clean photo and saved as 8-bit "
             f"`noisy.png`; `{r.model}` (the shipped default, `aedenoise denoise noisy.png`) with the noise level "
             f"estimated from the noisy image (`--sigma auto`: {est}/255) gives `denoised.png` in {r.seconds:.2f} s.", "",
             "| image | PSNR (dB) | SSIM |", "|---|---|---|",
             f"| noisy | {r.noisy_psnr:.2f} | {r.noisy_ssim:.4f} |",
             f"| denoised | **{r.denoised_psnr:.2f}** | **{r.denoised_ssim:.4f}** |", "",
             "Clean, noisy, denoised (pixels as they are, no contrast stretch):", "", "![side by side](side-by-side.png)", ""]
    if r.crops is not None:
        lines += ["![zoomed crops](crops.png)", ""]
    return "\n".join(lines)
