"""A stand-in for the shipped weights: tiny checkpoints in a temporary folder, registered as
``aedenoise.pretrained``'s index, so tests of the default-model logic do not depend on which
real weights are installed.

``install(monkeypatch, folder)`` writes and registers:

* ``toy-gray``: conv_ae, 1 channel, task photo, the gray photo default (ignores sigma);
* ``toy-color``: a small unet, 3 channels, task photo, the color photo default (reads sigma);
* ``toy-fmnist``: conv_ae, 1 channel, task fashion-mnist, no default.

``gray_default=False`` / ``color_default=False`` leave that default out (the weights stay listed).
``camera=True`` adds ``toy-camera``: a blind unet (no noise map), 3 channels, the color default
for camera noise (real photos).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import aedenoise.pretrained as pretrained
from aedenoise.models import create_model
from aedenoise.models.checkpoint import save_checkpoint
from aedenoise.pretrained import PretrainedWeights


def install(
    monkeypatch: pytest.MonkeyPatch, folder: Path, *, gray_default: bool = True, color_default: bool = True,
    camera: bool = False,
) -> dict[str, PretrainedWeights]:
    """Write the three toy weights (with model cards) into ``folder`` and make them the shipped index."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = {
        "toy-gray": (create_model("conv_ae"), 0.3, "photo", gray_default),
        "toy-color": (create_model("unet", in_channels=3, widths=(4, 8), blocks=1), 0.05, "photo", color_default),
        "toy-fmnist": (create_model("conv_ae"), 0.2, "fashion-mnist", False),
    }
    if camera:
        specs["toy-camera"] = (create_model("unet", in_channels=3, widths=(4, 8), blocks=1, noise_map=False), 0.05, "photo", True)
    index = {}
    g = torch.Generator().manual_seed(100)
    for name, (model, std, task, default) in specs.items():
        with torch.no_grad():  # deterministic, distinct weights, large enough that the output follows the input
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * std)
        save_checkpoint(folder / f"{name}.safetensors", model)
        (folder / f"{name}.md").write_text(f"# {name}\n\nA toy model for tests.\n")
        index[name] = PretrainedWeights(
            name=name, file=f"{name}.safetensors", card=f"{name}.md", channels=int(model.in_channels), task=task,
            default_for_photos=default, description=f"toy {task} model ({model.arch['name']})",
            noise="camera" if name == "toy-camera" else "gaussian",
        )
    monkeypatch.setattr(pretrained, "_folder", lambda: folder)
    monkeypatch.setattr(pretrained, "_index", lambda: index)
    return index
