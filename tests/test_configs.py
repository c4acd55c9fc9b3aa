"""The training recipes in ``configs/``: each one validates and builds its model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aedenoise.config import resolve_config
from aedenoise.pretrained import list_pretrained
from aedenoise.training.loop import build_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def test_there_are_recipes() -> None:
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_recipe_validates_and_builds(path: Path) -> None:
    config = resolve_config(config_file=path)
    model = build_model(config, config.data.channels)
    assert model.in_channels == config.data.channels
    assert "aedenoise train --config configs/" + path.name in path.read_text(), "the header must say how to run it"


@pytest.mark.parametrize("path", [p for p in CONFIGS if "init_weights" in p.read_text()], ids=lambda p: p.name)
def test_fine_tuning_recipe_starts_from_the_output_of_another_recipe(path: Path) -> None:
    """Stage 2 names stage 1's ``--out``/model.safetensors, and stage 1 is a recipe here with the same model;
    or it starts from shipped weights, whose model it can load (``init_from_checkpoint``)."""
    config = resolve_config(config_file=path)
    if config.init_weights in list_pretrained():
        from aedenoise.training.loop import init_from_checkpoint

        init_from_checkpoint(build_model(config, config.data.channels), config.init_weights)
        return
    run_dir = Path(config.init_weights).parent.as_posix()
    stage1 = [p for p in CONFIGS if re.search(rf"--out {re.escape(run_dir)}\b", p.read_text()) and p != path]
    assert stage1, f"no recipe writes {run_dir}"
    assert resolve_config(config_file=stage1[0]).model == config.model
