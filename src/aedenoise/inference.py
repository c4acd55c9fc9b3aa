"""Denoising real images: pick a model, adapt channels, resolve sigma, tile.

* :func:`load_denoiser`: a checkpoint file, shipped weights or a classical method by name;
  :func:`default_model_for`: the shipped photo default for gray or color images.
* :func:`denoise_image`: one image (tensor or :class:`~aedenoise.io.ImageFile`) of any size.
* :func:`expand_inputs`, :func:`plan_jobs`, :func:`run_jobs` (= :func:`denoise_files`):
  the batch driver behind ``aedenoise denoise``, defined in :mod:`aedenoise.batch` and
  re-exported here.

Gray/color mismatch: a gray model on an RGB image denoises each channel as a gray image
(noise is independent per channel; a luminance-only pass would leave the color noise);
a color model on a gray image gets the gray plane repeated to RGB and its three output
channels are averaged back to one. Denoisers with ``any_channels`` (the classical
methods) take both kinds as they are.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from aedenoise.batch import (  # re-exported: the batch driver's names stay importable from here
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
from aedenoise.errors import ConfigError
from aedenoise.io import ImageFile
from aedenoise.models import Denoiser, list_models
from aedenoise.tiling import denoise_tiled, model_label

Sigma = float | Literal["auto"] | None
AUTO_SIGMA_CROP = 512
"""``sigma="auto"`` estimates the noise level on a central crop of at most this side."""


# -- models --------------------------------------------------------------------------


def _classical_names() -> list[str]:
    from aedenoise.baselines import list_baselines

    return list_baselines()


def _pretrained_names() -> list[str]:
    from aedenoise.pretrained import list_pretrained

    return list_pretrained()


def load_denoiser(spec: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> Denoiser:
    """The denoiser named by ``spec``, on ``device``, in eval mode.

    ``spec`` is a checkpoint file (``*.safetensors``), the name of shipped weights
    (:func:`aedenoise.pretrained.list_pretrained`) or a classical method
    (:func:`aedenoise.baselines.list_baselines`). Raises :class:`ConfigError` for an
    unknown name (listing the choices), :class:`CheckpointError` for a bad file.
    """
    text = os.fspath(spec)
    path = Path(text)
    if path.suffix.lower() == ".safetensors" or path.is_file():
        from aedenoise.checkpoint import load_checkpoint

        model = load_checkpoint(path, map_location=device).model
    elif text in _pretrained_names():
        from aedenoise.pretrained import load_pretrained

        model = load_pretrained(text, device=device)
    elif text in _classical_names():
        from aedenoise.baselines import create_baseline

        model = create_baseline(text)
    else:
        hint = (f" ({text!r} is an architecture: train it with 'aedenoise train' and pass the checkpoint)"
                if text in list_models() else "")
        raise ConfigError(
            f"unknown model {text!r}{hint}; give a checkpoint file (*.safetensors), shipped weights "
            f"({', '.join(_pretrained_names()) or 'none installed'}) or a classical method "
            f"({', '.join(_classical_names()) or 'none available'})"
        )
    return model.to(device).eval()


def default_model_for(channels: int) -> str:
    """The ``spec`` used when no model is given, for gray (1) or color (3) images.

    The one hook for shipped defaults: raises :class:`ConfigError` when no default
    weights are installed for that kind of image.
    """
    from aedenoise.pretrained import default_pretrained

    return default_pretrained(channels)


class _ChannelAdapter(Denoiser):
    """``inner`` applied to ``channels``-channel images: a gray model per channel (channels
    folded into the batch), or a color model on gray (plane repeated, outputs averaged)."""

    def __init__(self, inner: Denoiser, channels: int) -> None:
        super().__init__()
        self.inner, self.in_channels, self.arch = inner, channels, inner.arch
        self.size_multiple, self.receptive_field = inner.size_multiple, inner.receptive_field
        self.uses_sigma = inner.uses_sigma

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        b, c, h, w = y.shape
        if self.inner.in_channels == 3:
            return self.inner(y.expand(-1, 3, -1, -1), sigma).mean(dim=1, keepdim=True)
        if isinstance(sigma, Tensor) and sigma.ndim > 0:
            sigma = sigma.reshape(-1).expand(b).repeat_interleave(c)
        return self.inner(y.reshape(b * c, 1, h, w), sigma).reshape(b, c, h, w)


def adapt_channels(model: Denoiser, channels: int) -> Denoiser:
    """``model`` made to take ``channels`` (1 or 3) channel images; itself when it already does."""
    have = int(getattr(model, "in_channels", 1))
    if have == channels or model.any_channels:  # e.g. the classical methods take both natively
        return model
    if have == 1 or (have == 3 and channels == 1):
        return _ChannelAdapter(model, channels)
    raise ConfigError(f"{model_label(model)} takes {have}-channel images; cannot apply it to {channels} channels")


# -- one image -----------------------------------------------------------------------


def check_sigma(sigma: float) -> float:
    """``sigma`` as a float if it is a valid noise level on the ``[0, 1]`` scale."""
    value = float(sigma)
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ConfigError(f"noise level {sigma!r} is outside [0, 1] (the command line takes 0-255: --sigma 25)")
    return value


def resolve_sigma(model: Denoiser, y: Tensor, sigma: Sigma) -> float | None:
    """The ``[0, 1]``-scale noise level to pass to ``model`` for image ``y`` ``[C, H, W]``.

    ``None`` for a model that ignores sigma. ``"auto"`` estimates it with
    :func:`aedenoise.noise_level.estimate_sigma` on a central crop (at most
    :data:`AUTO_SIGMA_CROP` pixels a side). A model that needs sigma and gets ``None``
    raises :class:`ConfigError`.
    """
    if not getattr(model, "uses_sigma", False):
        return None
    if sigma is None:
        raise ConfigError(f"{model_label(model)} needs the noise level: give --sigma on the 0-255 scale "
                          f"(e.g. --sigma 25) or --sigma auto to estimate it")
    if sigma == "auto":
        from aedenoise.noise_level import estimate_sigma

        h, w = y.shape[-2:]
        ch, cw = min(h, AUTO_SIGMA_CROP), min(w, AUTO_SIGMA_CROP)
        crop = y[..., (h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
        return float(estimate_sigma(crop.reshape(1, *crop.shape[-3:]))[0])
    return check_sigma(sigma)


def denoise_image(
    model: Denoiser,
    image: ImageFile | Tensor,
    *,
    sigma: Sigma,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> ImageFile | Tensor:
    """Denoise one image of any size with ``model`` (gray and color adapted both ways).

    ``image``: a float tensor ``[C, H, W]`` in ``[0, 1]`` (C = 1 or 3), or an
    :class:`ImageFile`, which comes back as a copy with new ``data`` and the same
    ``alpha``, ``bit_depth``, format and color profile. ``sigma``: ``[0, 1]`` scale,
    ``"auto"`` or ``None`` (see :func:`resolve_sigma`). ``tile``, ``overlap``,
    ``batch_size``, ``device``, ``progress``: as :func:`aedenoise.tiling.denoise_tiled`.
    Returns ``x_hat`` in ``[0, 1]``, shaped like the input.
    """
    y = image.data if isinstance(image, ImageFile) else image
    if y.ndim != 3 or y.shape[0] not in (1, 3):
        raise ValueError(f"expected an image [C, H, W] with C = 1 or 3, got shape {tuple(y.shape)}")
    s = resolve_sigma(model, y, sigma)
    x_hat = denoise_tiled(adapt_channels(model, y.shape[0]), y, s, tile=tile, overlap=overlap,
                          batch_size=batch_size, device=device, progress=progress)
    return replace(image, data=x_hat) if isinstance(image, ImageFile) else x_hat


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
    "expand_inputs",
    "load_denoiser",
    "output_is_file",
    "plan_jobs",
    "resolve_sigma",
    "run_jobs",
]
