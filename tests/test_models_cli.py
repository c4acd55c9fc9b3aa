"""``aedenoise models``: architectures, shipped weights (from a fake index), photo defaults, classical methods."""

from __future__ import annotations

from pathlib import Path

import pytest

import aedenoise.pretrained as pretrained
from aedenoise.classical import list_baselines
from aedenoise.cli import main
from aedenoise.models import list_models

from fake_pretrained import install


def models_output(capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out.splitlines()


def section(lines: list[str], title: str) -> list[str]:
    """The indented lines under the heading starting with ``title``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        body.append(line)
    return body


def test_lists_architectures_weights_and_defaults(tmp_path: Path, monkeypatch, capsys) -> None:
    index = install(monkeypatch, tmp_path / "weights")
    lines = models_output(capsys)
    archs = [line.split()[0] for line in section(lines, "Architectures")]
    assert archs == list_models()

    weights = section(lines, "Shipped weights")
    heads = {line.split()[0]: line for line in weights if not line.startswith("   ")}
    assert sorted(heads) == sorted(index)
    for name, w in index.items():
        head = heads[name]
        assert f"{w.channels} channel(s)" in head and f"task {w.task}" in head
        assert ("[default for" in head) == w.default_for_photos
        block = weights[weights.index(head) : weights.index(head) + 3]
        assert any(w.description in line for line in block)
        card = next(line.split("model card: ")[1] for line in block if "model card:" in line)
        assert Path(card) == w.card_path and Path(card).is_file()
    assert "[default for gray photos]" in heads["toy-gray"] and "[default for color photos]" in heads["toy-color"]

    defaults = section(lines, "Photo defaults")
    assert [line.split() for line in defaults] == [["gray", "toy-gray"], ["color", "toy-color"]]
    classical = section(lines, "Classical methods")
    assert classical == ["  " + ", ".join(list_baselines())]


def test_says_when_a_photo_default_is_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    install(monkeypatch, tmp_path / "weights", color_default=False)
    defaults = section(models_output(capsys), "Photo defaults")
    assert defaults[0].split() == ["gray", "toy-gray"]
    assert defaults[1].split()[:3] == ["color", "none", "installed"] and "--model" in defaults[1]


def test_no_shipped_weights_at_all(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(pretrained, "_index", lambda: {})
    lines = models_output(capsys)
    assert section(lines, "Shipped weights") == ["  none installed"]
    defaults = section(lines, "Photo defaults")
    assert len(defaults) == 2 and all("none installed" in line for line in defaults)
    assert section(lines, "Architectures")  # the architectures are still listed
