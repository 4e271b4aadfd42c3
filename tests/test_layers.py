"""The package's layers (pyproject.toml's import-linter contract, drawn in docs/architecture.md): the contract
holds, every module sits in a layer, there are at most 11 layers, and the import graph has no cycle."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import grimp
import pytest

from conftest import REPO

LAYERS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("adapterci", include_external_packages=False)


def layer_members(layer: str) -> list[str]:
    return [name for name in re.split(r"[|:\s]+", layer) if name]


def test_layers_the_contract_holds() -> None:
    """lint-imports (import-linter) on the repository's pyproject.toml: exit 0 only when no layer imports one above
    it (or an independent sibling)."""
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                          "sys.exit(lint_imports_command())", "--no-cache"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "layers KEPT" in run.stdout


def test_layers_cover_every_module(graph: grimp.ImportGraph) -> None:
    """A new module must be placed in a layer (or inside a package that is): otherwise the contract says nothing
    about it."""
    members = [m for layer in LAYERS for m in layer_members(layer)]
    assert len(members) == len(set(members)), "a module is in two layers"
    assert all(m in graph.modules for m in members), set(members) - graph.modules
    outside = {m for m in graph.modules if m not in ("adapterci", "adapterci.data")
               and not any(m == p or m.startswith(p + ".") for p in members)}
    assert not outside, f"modules in no layer of pyproject.toml's [tool.importlinter]: {sorted(outside)}"
    assert len(LAYERS) <= 11


def test_layers_the_import_graph_has_no_cycle(graph: grimp.ImportGraph) -> None:
    """No module imports (at module level or inside a function) one that imports it back, however indirectly."""
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def test_layers_a_cycle_would_be_found() -> None:
    """The cycle finder is not vacuous."""
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert [sorted(c) for c in _strongly_connected(graph) if len(c) > 1] == [["p.a", "p.b", "p.c"]]


def _strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                found.append(component)
    return found
