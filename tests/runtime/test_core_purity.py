"""The protocol and decision cores do no I/O of their own: no event loop, no gRPC, no
sockets, no clock (time is passed in), so the agent and the simulator drive the same
objects. Beyond them, the tasks package as a whole knows nothing of gRPC (its one error
is mapped to status codes at the services edge)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "runtime" / "skyfleet"

PURE = [
    *sorted((PACKAGE / "membership").glob("*.py")),
    *sorted((PACKAGE / "balancing").glob("*.py")),
    *sorted((PACKAGE / "policy").glob("*.py")),
    *sorted((PACKAGE / "status").glob("*.py")),
    *(PACKAGE / "tasks" / f"{name}.py"
      for name in ("flight", "verdict", "errors", "requests", "ledger")),
]
IO = {"asyncio", "grpc", "socket", "time", "subprocess", "threading", "selectors"}


def imported(path: Path) -> set[str]:
    """Top-level modules `path` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_core_does_no_io_of_its_own(path: Path) -> None:
    assert imported(path) & IO == set()


def test_the_tasks_package_knows_nothing_of_grpc() -> None:
    offenders = sorted(p.name for p in (PACKAGE / "tasks").glob("*.py") if "grpc" in imported(p))
    assert offenders == []


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import grpc.aio\n")
    assert "grpc" in imported(module)
