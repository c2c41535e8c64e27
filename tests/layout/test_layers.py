"""The layer rules of DESIGN.md ("the rooms"), checked on the code as it is: every
module imports, no module imports a layer above it (function-level imports count
too), the two front ends never import each other, and there is no import cycle."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BELOW_SERVICES = {"config", "definitions", "workflows", "store", "activities"}
# What each package may import (besides itself), as DESIGN.md's table says.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "definitions": {"config"},
    "workflows": {"config", "definitions"},
    "store": {"config", "definitions", "workflows"},
    "activities": {"config", "definitions", "workflows", "store"},
    "services": BELOW_SERVICES,
    "monitoring": {"config", "definitions", "workflows", "store"},
    "bench": BELOW_SERVICES | {"services"},
    "gateway": BELOW_SERVICES | {"services"},
    "workers": BELOW_SERVICES | {"services", "monitoring", "bench"},  # never gateway
}


def modules() -> Iterator[tuple[str, Path]]:
    for package in ALLOWED:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts and (path.parent.name == "versions" or path.name == "env.py"):
                continue  # Alembic's scripts: Alembic runs them, nothing imports them
            parts = path.relative_to(REPO).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imports_of(name: str, path: Path) -> set[str]:
    """Our modules `name` imports, at any depth of the file (lazy imports too)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    known = dict(modules())
    return {m for m in found if m in known and m != name}


MODULES = dict(modules())
GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_there_is_something_to_check() -> None:
    assert len(MODULES) > 80 and sum(map(len, GRAPH.values())) > 200


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_module_imports_a_layer_above_it() -> None:
    wrong = sorted(f"{name} imports {target}" for name, targets in GRAPH.items() for target in targets
                   if (top := target.split(".")[0]) != name.split(".")[0] and top not in ALLOWED[name.split(".")[0]])
    assert wrong == []


def test_the_front_ends_never_import_each_other() -> None:
    assert not any(t.startswith("gateway") for n, ts in GRAPH.items() if n.startswith("workers") for t in ts)
    assert not any(t.startswith("workers") for n, ts in GRAPH.items() if n.startswith("gateway") for t in ts)


def test_no_shipped_module_imports_the_tests() -> None:
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(m == "tests" or m.startswith("tests.") for m in names), name


def test_no_import_cycles() -> None:
    # A module importing its own package's __init__ is how Python loads it, not a cycle.
    graph = {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in GRAPH.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []
