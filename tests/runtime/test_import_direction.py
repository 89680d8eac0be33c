"""Imports run one way: the Pulumi program (infra/) uses the runtime, never the reverse.
The local stack's front end reaches the program only through the engine (the Automation
API), so no module of the `skyfleet` package imports `infra`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "runtime" / "skyfleet"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_runtime_module_imports_the_pulumi_program():
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if "infra" in imported_roots(p))
    assert offenders == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from infra.config import load_stack_config\n")
    assert "infra" in imported_roots(module)
