"""Helpers for tests of a few in-process agents that join through the first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from skyfleet.localfleet.layout import AgentSpec, FleetLayout


def joined_layout(root: Path, ports: list[int]) -> tuple[FleetLayout, list[AgentSpec]]:
    """Agents n0, n1, ... on loopback `ports`; every one but n0 seeds from n0."""
    layout = FleetLayout(root)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    specs = [
        AgentSpec(name=f"n{i}", cloud="aws", zone="z", address=address,
                  seeds=(addresses[0],) if i else ())
        for i, address in enumerate(addresses)
    ]
    for spec in specs:
        layout.write_agent(spec)
    return layout, specs


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `condition` under a deadline (real agents: the loop must turn)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
