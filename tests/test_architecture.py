"""The package's shape: imports run one way and never in a circle; every folder says what it holds.

The layers are the table in docs/architecture.md. A module may import its own subpackage
(without a cycle) and any lower layer, never a layer at its level or above. Imports are
read from the source (ast), function-level and ``TYPE_CHECKING`` ones included, so the
rule also holds for imports that only run later.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import aedenoise

ROOT = Path(aedenoise.__file__).parent
DOCS = Path(__file__).resolve().parents[1] / "docs"

#: Lowest first. Names are modules or subpackages directly under ``aedenoise``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("version", "errors"),
    ("atomic", "paths", "hardware", "metrics"),
    ("io", "noise", "models"),
    ("config", "classical", "pretrained", "export"),
    ("data",),
    ("denoising",),
    ("benchmark", "serve", "bulk"),
    ("report",),
    ("training",),
    ("cli",),
    ("__init__", "__main__"),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def unit_of(module: str) -> str:
    """``aedenoise.models.unet`` -> ``models``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(module: str) -> set[str]:
    """The package modules that ``module`` imports anywhere in its source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    is_package = MODULES[module].name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer() -> None:
    missing = sorted({unit_of(m) for m in MODULES} - set(RANK))
    assert not missing, f"place {missing} in LAYERS here and in docs/architecture.md's layer table"


def test_imports_run_down_the_layers() -> None:
    upward = []
    for module, targets in GRAPH.items():
        for target in targets:
            mine, theirs = unit_of(module), unit_of(target)
            if mine != theirs and RANK[theirs] >= RANK[mine]:
                upward.append(f"{module} -> {target} ({mine} is not above {theirs})")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail() -> None:
    """The cycle finder and the layer rule catch what they are for (on made-up graphs and names)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert RANK[unit_of("aedenoise.models.unet")] < RANK[unit_of("aedenoise.training.loop")]
    assert RANK[unit_of("aedenoise.io.codecs")] == RANK[unit_of("aedenoise.noise.level")]  # siblings: neither may import the other


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py" and m != "aedenoise"))
def test_each_folder_says_what_lives_there_and_what_it_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
    assert doc, f"{package}/__init__.py has no docstring"
    assert "may import" in doc.lower(), f"{package}/__init__.py: say what it may import"


def test_public_api_resolves_and_is_documented() -> None:
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    names = [n for n in aedenoise.__all__ if n != "__version__"]
    assert sorted(names) == sorted(aedenoise._PUBLIC)
    for name in names:
        assert getattr(aedenoise, name) is not None
        assert re.search(rf"`{re.escape(name)}\b", api), f"docs/api.md does not document aedenoise.{name}"
    with pytest.raises(AttributeError):
        aedenoise.no_such_name  # noqa: B018


def test_architecture_doc_names_every_unit() -> None:
    doc = (DOCS / "architecture.md").read_text(encoding="utf-8")
    for unit in RANK:
        if unit not in ("__init__", "__main__"):
            assert f"`{unit}" in doc, f"docs/architecture.md does not mention {unit}"
