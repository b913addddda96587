"""fleet's import graph, read from the source, has no cycle.

An edge A -> B is any `import`/`from` statement in module A that names module B of the package,
wherever it stands: at the top, inside a function (lazy imports run too, only later), under `try`.
Imports under `if TYPE_CHECKING:` are left out (they never run; the `else:` branch does). `from p
import x` is an edge to `p.x` when that is a module, else to `p`; a name that is no module of the
package falls back to the nearest one above it. What this leaves out: the implicit import of a
module's parent packages (`import a.b` runs `a/__init__.py` first), which would make every package
that re-exports from its children a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in `tree`, at any depth, but for the bodies of `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` (a folder under `root`) it imports."""
    files = {_module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}

    def nearest(name: str) -> str | None:  # "fleet.engine.fake.FakeEngine" -> "fleet.engine.fake"
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        graph[module] = set()
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's package, `level - 1` packages up
                    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join([*here, base] if base else here)
                named = [f"{base}.{alias.name}" for alias in node.names]
            for name in named:
                target = nearest(name)
                if target is not None and target != module:
                    graph[module].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component of `graph`
    with more than one module, e.g. `[["a", "b", "a"]]` for a <-> b. Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(graph, component) for component in components]


def _cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path from the component's first module back to itself (breadth first)."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]  # start -> ... -> v -> start
                if w not in came_from:
                    came_from[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {sorted(component)}")


def _say(cycles: list[list[str]]) -> str:
    return "import cycles:\n" + "\n".join("  " + " -> ".join(cycle) for cycle in cycles)


def test_fleet_has_no_import_cycle():
    graph = import_graph(ROOT, "fleet")
    assert "fleet.engine.client" in graph and len(graph) > 50  # it read the package
    cycles = find_cycles(graph)
    assert not cycles, _say(cycles)



def test_the_replica_class_takes_only_the_wire_format_from_the_engine_package():
    """`fleet.engine.llm_server` (vLLM's replica) and the agent's client meet in `fleet.engine.wire`
    alone; the builders reach the replica, never the other way round."""
    graph = import_graph(ROOT, "fleet")
    assert {m for m in graph["fleet.engine.llm_server"] if m.startswith("fleet.engine")} == {"fleet.engine.wire"}
    assert "fleet.engine.llm_server" not in graph["fleet.engine.client"]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_a_cycle_through_a_lazy_import_is_found_and_a_type_checking_one_is_not(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import os\nfrom pkg.b import g\nfrom pkg import c\n",
        "pkg/b.py": "def g():\n    from . import a  # lazy: runs at the first call\n    return a\n",
        "pkg/c.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import g\n"
                     "else:\n    import json\n"),
        "pkg/sub/__init__.py": "from ..c import TYPE_CHECKING\n",
        "pkg/sub/d.py": "import pkg.sub\nfrom .. import b\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b", "pkg.c"}, "pkg.b": {"pkg.a"}, "pkg.c": set(),
                     "pkg.sub": {"pkg.c"}, "pkg.sub.d": {"pkg.sub", "pkg.b"}}
    cycles = find_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.a"]]
    assert "pkg.a -> pkg.b -> pkg.a" in _say(cycles)


def test_every_module_of_a_longer_cycle_is_named_in_order():
    graph = {"x": {"y"}, "y": {"z", "w"}, "z": {"x"}, "w": set(), "u": {"u"}}
    assert find_cycles(graph) == [["x", "y", "z", "x"]]  # a self-import is not a cycle between modules
