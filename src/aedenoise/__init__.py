"""aedenoise: image denoising with convolutional autoencoders.

Images are float32 tensors ``[B, C, H, W]`` (or ``[C, H, W]`` for one image) with
values in ``[0, 1]``; noise levels ``sigma`` are on the same ``[0, 1]`` scale
(``sigma * 255`` appears only in reports and on the command line).

The public API (``docs/api.md``) is importable from here::

    from aedenoise import read_image, load_pretrained, denoise_image, write_image

Each name lives in the subpackage that defines it (listed in ``_PUBLIC``) and is loaded
on first use, so ``import aedenoise`` and ``aedenoise --help`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from aedenoise.version import __version__

#: Public name -> the module it is imported from.
_PUBLIC: dict[str, str] = {
    # errors
    "AedenoiseError": "aedenoise.errors",
    "CheckpointError": "aedenoise.errors",
    "ConfigError": "aedenoise.errors",
    "DataError": "aedenoise.errors",
    # image files
    "ImageFile": "aedenoise.io",
    "read_image": "aedenoise.io",
    "write_image": "aedenoise.io",
    # models, checkpoints, shipped weights, classical methods
    "Denoiser": "aedenoise.models",
    "create_model": "aedenoise.models",
    "list_models": "aedenoise.models",
    "load_checkpoint": "aedenoise.models",
    "save_checkpoint": "aedenoise.models",
    "list_pretrained": "aedenoise.pretrained",
    "load_pretrained": "aedenoise.pretrained",
    "create_baseline": "aedenoise.classical",
    "list_baselines": "aedenoise.classical",
    # noise and metrics
    "GaussianNoise": "aedenoise.noise",
    "estimate_sigma": "aedenoise.noise",
    "psnr": "aedenoise.metrics",
    "ssim": "aedenoise.metrics",
    # denoising
    "load_denoiser": "aedenoise.denoising",
    "denoise_image": "aedenoise.denoising",
    "denoise_tiled": "aedenoise.denoising",
    "denoise_files": "aedenoise.denoising",
}

__all__ = [  # the keys of _PUBLIC (tests/test_architecture.py checks), spelled out for static tools
    "AedenoiseError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Denoiser",
    "GaussianNoise",
    "ImageFile",
    "__version__",
    "create_baseline",
    "create_model",
    "denoise_files",
    "denoise_image",
    "denoise_tiled",
    "estimate_sigma",
    "list_baselines",
    "list_models",
    "list_pretrained",
    "load_checkpoint",
    "load_denoiser",
    "load_pretrained",
    "psnr",
    "read_image",
    "save_checkpoint",
    "ssim",
    "write_image",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'aedenoise' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


if TYPE_CHECKING:  # what static tools and IDEs see; at run time __getattr__ loads these
    from aedenoise.classical import create_baseline, list_baselines
    from aedenoise.denoising import denoise_files, denoise_image, denoise_tiled, load_denoiser
    from aedenoise.errors import AedenoiseError, CheckpointError, ConfigError, DataError
    from aedenoise.io import ImageFile, read_image, write_image
    from aedenoise.metrics import psnr, ssim
    from aedenoise.models import Denoiser, create_model, list_models, load_checkpoint, save_checkpoint
    from aedenoise.noise import GaussianNoise, estimate_sigma
    from aedenoise.pretrained import list_pretrained, load_pretrained
