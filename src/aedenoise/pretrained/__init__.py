"""Weights that ship inside the package, each with a model card.

``pretrained/index.json`` lists them: file, model card, channels, the task they
were trained for and whether they are the default for gray or color photos.
Nothing is downloaded: the files are part of the installed package. May import:
models and the top-level shared modules.

>>> from aedenoise.pretrained import list_pretrained, load_pretrained
>>> model = load_pretrained("gray-blind")          # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from aedenoise.errors import ConfigError
from aedenoise.models import Denoiser, load_checkpoint


@dataclass(frozen=True)
class PretrainedWeights:
    name: str
    file: str
    card: str
    channels: int
    task: str  # "fashion-mnist" (28x28 gray, sigma 0.2 clipped) or "photo" (blind Gaussian)
    default_for_photos: bool
    description: str
    noise: str = "gaussian"  # what it was trained for: "gaussian" (white, level given) or "camera" (real photos)

    @property
    def path(self) -> Path:
        return _folder() / self.file

    @property
    def card_path(self) -> Path:
        return _folder() / self.card


def _folder() -> Path:
    return Path(str(resources.files(__name__)))


@lru_cache(maxsize=1)
def _index() -> dict[str, PretrainedWeights]:
    index_file = _folder() / "index.json"
    if not index_file.is_file():
        return {}
    entries: dict[str, Any] = json.loads(index_file.read_text())
    return {name: PretrainedWeights(name=name, **entry) for name, entry in entries.items()}


def list_pretrained() -> list[str]:
    """Names of the shipped weights whose files are present."""
    return sorted(name for name, w in _index().items() if w.path.is_file())


def pretrained_weights(name: str) -> PretrainedWeights:
    weights = _index().get(name)
    if weights is None or not weights.path.is_file():
        raise ConfigError(f"no shipped weights named {name!r}; available: {', '.join(list_pretrained()) or 'none'}")
    return weights


def model_card(name: str) -> str | None:
    """The model card (Markdown) of shipped weights ``name``, or ``None`` if its file is missing."""
    path = pretrained_weights(name).card_path
    return path.read_text(encoding="utf-8") if path.is_file() else None


def load_pretrained(name: str, *, device: str | torch.device = "cpu") -> Denoiser:
    """Build the model of shipped weights ``name`` and load them (eval mode)."""
    model = load_checkpoint(pretrained_weights(name).path, map_location=device).model
    return model.eval()


NOISE_KINDS = ("camera", "gaussian")
"""What a photo default is chosen for: real camera noise, or white Gaussian noise of a given level."""


def default_pretrained(channels: int, *, noise: str = "gaussian") -> str:
    """The shipped photo denoiser for gray (1) or color (3) images with ``noise`` ("camera" or "gaussian").

    Where no default for ``noise`` is shipped for that channel count, the other kind's default is used.
    """
    if noise not in NOISE_KINDS:
        raise ConfigError(f"unknown noise kind {noise!r}; choose one of: {', '.join(NOISE_KINDS)}")
    candidates = [n for n in list_pretrained() if _index()[n].default_for_photos and _index()[n].channels == channels]
    for name in sorted(candidates, key=lambda n: _index()[n].noise != noise):
        return name
    kind = "gray" if channels == 1 else "color"
    raise ConfigError(f"no default {kind} denoiser is shipped with this installation; pass --model (a checkpoint or a method)")
