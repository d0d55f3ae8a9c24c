"""The modules of stems/ import one another without a circle, so data and dependencies flow one way
(STYLE.md: the format registry depends on the writers, never both ways)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "stems"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """The stems modules that the module at `path` imports anywhere in it.

    Imports inside functions count too. Python runs them only when the function is called, after
    both modules are loaded, so a circle through one does not fail at import time; but the two
    modules still depend on each other, and the circle this test was written for (writers and
    stemmp4, issue 28) went through such a lazy import. A module named in a string and loaded
    with importlib (engine.ENGINES) is not seen; it points at a runtime, not back."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "stems"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]  # level 1: the package, 2: its parent...
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if source.split(".")[0] != "stems":
                continue
            submodules = {f"{source}.{alias.name}" for alias in node.names if is_module(f"{source}.{alias.name}")}
            found |= submodules
            if len(submodules) < len(node.names):  # names of the module itself, not its submodules
                found.add(source)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of `graph` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:  # path: the open nodes, `node` last
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target, path + [target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_graph_is_read_right():
    graph = import_graph()
    assert {"stems.audio", "stems.errors", "stems.stemmp4"} <= graph["stems.writers"]  # from .x import ...
    assert "stems.spectral" in graph["stems.evaluate"]  # from . import spectral
    assert "stems.evaluate" in graph["stems.train"]  # inside a function
    assert {"stems.cli.separate", "stems.cli.common", "stems.errors"} <= graph["stems.cli"]  # from . / .. of a package
    assert "stems.audition.library" in graph["stems.audition.scores"]
    assert all(target in graph for targets in graph.values() for target in targets)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_in_stems():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)
