"""The project's import graph: no cycles, and every import inside a function says why it is there.

Read with ``ast`` (nothing imported): an edge for every ``import`` of a project module, at the top of
a module or inside a function (a cycle hidden behind a function-level import is still a cycle);
imports under ``if TYPE_CHECKING:`` are for the type checker only and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "schemas", "streams", "agents", "trainer", "models", "rlsizer")
LAZY_MARK = "# lazy:"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    mods = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, int, bool]]]:
    """Edges module -> project modules it imports, and every function-level import (module, line, marked)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    inner: list[tuple[str, int, bool]] = []
    for module, path in mods.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        typing_only = {
            id(sub)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for sub in ast.walk(node)
        }
        in_function = {
            id(sub)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for sub in ast.walk(node)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in typing_only:
                continue
            if id(node) in in_function:
                inner.append((module, node.lineno, LAZY_MARK in lines[node.lineno - 1]))
            for name in _imported(node, package):
                target = resolve(name)
                if target and target != module:
                    graph[module].add(target)
    return graph, inner


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


@pytest.fixture(scope="module")
def graph_and_inner() -> tuple[dict[str, set[str]], list[tuple[str, int, bool]]]:
    return import_graph(module_files())


def test_no_import_cycles(graph_and_inner: tuple[dict[str, set[str]], list[tuple[str, int, bool]]]) -> None:
    graph, _ = graph_and_inner
    found = [sorted(c) for c in cycles(graph)]
    assert not found, f"import cycles (function-level imports included): {found}"


def test_imports_inside_functions_say_why(
    graph_and_inner: tuple[dict[str, set[str]], list[tuple[str, int, bool]]],
) -> None:
    _, inner = graph_and_inner
    unmarked = [f"{module}:{line}" for module, line, marked in inner if not marked]
    assert not unmarked, f"imports inside functions without a '{LAZY_MARK} <reason>' comment: {unmarked}"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "config" / "a.py").write_text("import config.b\n")
    (tmp_path / "config" / "b.py").write_text("def f():\n    from config import a\n    return a\n")
    graph, inner = import_graph(module_files(tmp_path))
    assert cycles(graph) == [frozenset({"config.a", "config.b"})]
    assert inner == [("config.b", 2, False)]
