"""Denoising real images and files: which model, what noise level, tiles, and the file batch driver.

``selection.py`` picks the denoiser (checkpoint, shipped weights, classical) and fits it
to gray or color; ``image.py`` denoises one image (sigma resolved, ``"auto"`` estimated);
``tiling.py`` runs any size in bounded memory; ``files.py`` is ``aedenoise denoise``'s
driver (inputs, outputs, atomic writes, bad files reported). May import: io, noise,
models, classical, pretrained and the top-level shared modules.
"""

from aedenoise.denoising.files import (
    DENOISED_TAG,
    DenoiseSummary,
    FileResult,
    Job,
    denoise_files,
    expand_inputs,
    output_is_file,
    plan_jobs,
    run_jobs,
)
from aedenoise.denoising.image import AUTO_SIGMA_CROP, Sigma, check_sigma, denoise_image, resolve_sigma
from aedenoise.denoising.selection import adapt_channels, default_model_for, load_denoiser
from aedenoise.denoising.tiling import denoise_tiled, denoise_whole, tile_geometry

__all__ = [
    "AUTO_SIGMA_CROP",
    "DENOISED_TAG",
    "DenoiseSummary",
    "FileResult",
    "Job",
    "Sigma",
    "adapt_channels",
    "check_sigma",
    "default_model_for",
    "denoise_files",
    "denoise_image",
    "denoise_tiled",
    "denoise_whole",
    "expand_inputs",
    "load_denoiser",
    "output_is_file",
    "plan_jobs",
    "resolve_sigma",
    "run_jobs",
    "tile_geometry",
]
