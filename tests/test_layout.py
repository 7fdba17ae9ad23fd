"""The house's plan, checked: one-way dependencies between layers and no import cycles.

Imports are read statically (ast), function-level ones included, so a cycle hidden behind a
lazy import counts. An import of ``a.b`` depends on module ``a.b`` (or package ``a`` when
``b`` is a name in it), not on every package above it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "cli", "config", "feed", "recommender", "bench", "devtools")
# What each layer must never import (its own layer and the ones below are fine).
FORBIDDEN = {
    "recommender": ("api", "cli", "feed", "bench", "devtools", "flask"),
    "feed": ("api", "cli", "bench", "devtools", "flask"),
    "config": ("api", "cli", "feed", "recommender", "bench", "devtools"),
    "api": ("cli", "bench"),
}


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    found["wsgi"] = ROOT / "wsgi.py"
    return found


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module name an import statement anywhere in the file names, resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def dependencies() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            # `from feed.corpus import articles` names the module feed.corpus.articles; `from
            # feed.x import Y` names feed.x (Y is not a module): keep the longest module name.
            if name in modules and name != module:
                targets.add(name)
        # Drop a package when one of its modules is named by the same import.
        graph[module] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_import_graph_has_no_cycles() -> None:
    cycle = find_cycle(dependencies())
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_never_import_upper_ones(layer: str) -> None:
    modules = project_modules()
    wrong = sorted(
        f"{module} imports {name}"
        for module, path in modules.items()
        if module == layer or module.startswith(layer + ".")
        for name in set(imported_names(module, path))
        if name.split(".")[0] in FORBIDDEN[layer]
    )
    assert not wrong, wrong


def test_no_two_classes_share_a_name() -> None:
    """A class name says which one it is, wherever it is imported."""
    seen: dict[str, list[str]] = {}
    for module, path in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(module)
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}
