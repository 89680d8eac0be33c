"""A throwaway copy of the project for tests that run the real Pulumi engine: its own
stack files (so a test's `pulumi config set` never touches the committed ones), its own
backend, CLI home and fleet folder (all under `.skyfleet/` of the copy), the program,
the policies and the virtualenv shared with the checkout by symlink."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def consecutive_free_ports(count: int, start: int = 23000) -> int:
    """The first of `count` consecutive loopback ports free right now (the local stack
    gives host i the port agentPort + i)."""
    for base in range(start, 60000, count + 7):
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {count} consecutive free ports")


def make_project(where: Path, *, network: str = "loopback", stacks: tuple[str, ...] = ("local",),
                 config: dict[str, Any] | None = None) -> Path:
    """The copy, at `where`; `network` and `config` (strings as `pulumi config set` writes
    them, lists as lists) go into Pulumi.local.yaml."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "Pulumi.yaml", where / "Pulumi.yaml")
    for stack in stacks:
        shutil.copy(REPO_ROOT / f"Pulumi.{stack}.yaml", where / f"Pulumi.{stack}.yaml")
    shutil.copytree(REPO_ROOT / "policies", where / "policies")
    for shared in ("infra", ".venv"):
        (where / shared).symlink_to(REPO_ROOT / shared)
    if "local" in stacks:
        path = where / "Pulumi.local.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["config"]["skyfleet:localNetwork"] = network
        if network == "loopback":
            agent = consecutive_free_ports(9)
            metrics = consecutive_free_ports(9, start=agent + 20)
            doc["config"]["skyfleet:agentPort"] = str(agent)
            doc["config"]["skyfleet:metricsPort"] = str(metrics)
        doc["config"].update(config or {})
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return where
