"""Imports run one way. The Pulumi program (infra/) uses the runtime, never the reverse:
the local stack's front end reaches the program only through the engine (the Automation
API), so no module of the `skyfleet` package imports `infra`. Inside the runtime the
front ends (`skyfleet.cli`, the local fleet `skyfleet.localfleet`, `__main__`) use the
core, never the reverse; and the top-level units of both packages form no cycle, which
would make import order matter and every unit in it a part of all the others.

The graph is read from the source: every `import`, also those inside functions (they
run later, but tie the units together all the same) and those for type checking only
(marked as such in messages: the importer still depends on the other's shape). Units are
the subpackages and modules directly under `skyfleet`, and `infra` as one: only its
relation to the runtime is at stake here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "runtime" / "skyfleet"
FRONT_ENDS = {"skyfleet.cli", "skyfleet.localfleet", "skyfleet.__main__"}
"""What only people and scripts call: nothing of the core may depend on them."""
SKIPPED = {"guardrails", "venv", ".venv", "site-packages", "__pycache__"}
"""infra/guardrails is a policy pack with its own virtualenv, no part of the program."""


@dataclass(frozen=True, slots=True)
class Package:
    """A package whose modules are read; `units_at` is how many dotted components name a
    unit (2: `skyfleet.cli`; 1: all of `infra` is one unit)."""

    name: str
    folder: Path
    units_at: int


PACKAGES = (Package("skyfleet", PACKAGE, 2), Package("infra", ROOT / "infra", 1))


@dataclass(frozen=True, slots=True)
class Module:
    path: Path
    shown: str
    """The path from the package's folder on, as messages name it."""
    is_init: bool


def modules(packages: tuple[Package, ...]) -> dict[str, Module]:
    """Every module of `packages` by dotted name."""
    found: dict[str, Module] = {}
    for package in packages:
        for path in package.folder.rglob("*.py"):
            parts = path.relative_to(package.folder).with_suffix("").parts
            if SKIPPED & set(parts):
                continue
            is_init = parts[-1] == "__init__"
            name = ".".join((package.name, *(parts[:-1] if is_init else parts)))
            found[name] = Module(path, str(path.relative_to(package.folder.parent)), is_init)
    return found


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    guarded: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                guarded.update(ast.walk(statement))
    return guarded


def imported_names(name: str, module: Module) -> Iterator[tuple[str, str]]:
    """(absolute dotted name, where) of everything the module imports, relative imports
    resolved; `from m import x` yields `m.x`, a submodule or a name in `m`."""
    package = name if module.is_init else name.rpartition(".")[0]
    tree = ast.parse(module.path.read_text(), str(module.path))
    typing_only = _type_checking_only(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        where = f"{module.shown}:{node.lineno}" + (" (type checking)" * (node in typing_only))
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, where
            continue
        if node.level:
            anchor = package.split(".")
            base = ".".join(anchor[: len(anchor) - node.level + 1])
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        for alias in node.names:
            yield f"{source}.{alias.name}", where


@dataclass(frozen=True, slots=True)
class Graph:
    edges: dict[tuple[str, str], list[str]]
    """(importing unit, imported unit) -> where: `file:line` of each such import."""

    def successors(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for a, b in self.edges:
            out[a].add(b)
        return out


def import_graph(packages: tuple[Package, ...] = PACKAGES) -> Graph:
    known = modules(packages)
    depth = {p.name: p.units_at for p in packages}

    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[: depth[parts[0]]])

    def resolve(name: str) -> str | None:
        """The longest known module `name` is or lies in (`m.x` is `m`'s name x)."""
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, module in sorted(known.items()):
        for imported, where in imported_names(name, module):
            target = resolve(imported)
            if target is None:
                continue  # the standard library or a third party
            a, b = unit(name), unit(target)
            if a != b:
                edges[(a, b)].append(where)
    return Graph(dict(edges))


def tangles(graph: Graph) -> list[set[str]]:
    """The sets of units that all reach each other, of two units or more (Tarjan's
    strongly connected components)."""
    succ = graph.successors()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set(stack[stack.index(v):])
            del stack[stack.index(v):]
            if len(component) > 1:
                found.append(component)

    for v in sorted({u for edge in graph.edges for u in edge}):
        if v not in index:
            visit(v)
    return sorted(found, key=min)


def cycle_through(component: set[str], graph: Graph) -> list[str]:
    """A shortest cycle through the component's first unit, that unit repeated at the
    end (breadth-first, so the message shows the fewest hops)."""
    succ = graph.successors()
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(succ[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if w not in came_from:
                    came_from[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def describe(component: set[str], graph: Graph) -> str:
    cycle = cycle_through(component, graph)
    hops = [f"  {a} -> {b}: {', '.join(graph.edges[(a, b)][:3])}"
            for a, b in zip(cycle, cycle[1:], strict=False)]
    return "\n".join([" -> ".join(cycle) + f" (all of {sorted(component)})", *hops])


def front_end_imports(graph: Graph) -> list[str]:
    return [
        f"{a} -> {b}: {', '.join(where)}"
        for (a, b), where in sorted(graph.edges.items())
        if a.startswith("skyfleet") and a not in FRONT_ENDS and b in FRONT_ENDS
    ]


GRAPH = import_graph()


def test_no_runtime_module_imports_the_pulumi_program():
    offenders = [f"{a}: {', '.join(where)}" for (a, b), where in sorted(GRAPH.edges.items())
                 if b == "infra" and a.startswith("skyfleet")]
    assert offenders == []


def test_the_core_does_not_import_the_front_ends():
    offenders = front_end_imports(GRAPH)
    assert offenders == [], "the core imports a front end:\n" + "\n".join(offenders)


def test_no_cycle_between_top_level_units():
    found = tangles(GRAPH)
    assert found == [], "import cycles:\n" + "\n".join(describe(c, GRAPH) for c in found)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_finds_a_cycle_and_a_core_import_of_a_front_end(tmp_path: Path):
    """A cycle closed by an import inside a function, through a relative import and a
    `from package import module`, is found and shown with its imports; so is the core
    importing the CLI, and the CLI importing the core is no offence."""
    write(tmp_path / "skyfleet", {
        "__init__.py": "",
        "a/__init__.py": "from ..b import thing\n",
        "a/x.py": "x = 1\n",
        "b/__init__.py": "import json\n\n\ndef f():\n    from skyfleet import c\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import skyfleet.a.x\n",
        "cli/main.py": "import skyfleet.a\n",
        "d.py": "from skyfleet.cli.main import run\n",
    })
    graph = import_graph((Package("skyfleet", tmp_path / "skyfleet", 2),))
    assert tangles(graph) == [{"skyfleet.a", "skyfleet.b", "skyfleet.c"}]
    assert describe(tangles(graph)[0], graph).splitlines() == [
        "skyfleet.a -> skyfleet.b -> skyfleet.c -> skyfleet.a "
        "(all of ['skyfleet.a', 'skyfleet.b', 'skyfleet.c'])",
        "  skyfleet.a -> skyfleet.b: skyfleet/a/__init__.py:1",
        "  skyfleet.b -> skyfleet.c: skyfleet/b/__init__.py:5",
        "  skyfleet.c -> skyfleet.a: skyfleet/c.py:3 (type checking)",
    ]
    assert front_end_imports(graph) == ["skyfleet.d -> skyfleet.cli: skyfleet/d.py:1"]


def test_the_check_sees_no_cycle_where_imports_run_one_way(tmp_path: Path):
    write(tmp_path / "skyfleet", {
        "__init__.py": "",
        "a.py": "import skyfleet.b\nfrom skyfleet import c\n",
        "b/__init__.py": "from . import inner\n",
        "b/inner.py": "from skyfleet.c import x\n",
        "c.py": "x = 1\n",
    })
    graph = import_graph((Package("skyfleet", tmp_path / "skyfleet", 2),))
    assert set(graph.edges) == {("skyfleet.a", "skyfleet.b"), ("skyfleet.a", "skyfleet.c"),
                                ("skyfleet.b", "skyfleet.c")}
    assert tangles(graph) == []
