"""The fleet client's choice of entry agent, against a real in-process agent and an
address where nothing listens, on a fake clock."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from skyfleet.client import tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.node import Agent
from skyfleet.transport.tls import TlsMaterial

T = TypeVar("T")


class InOrder(random.Random):
    """Offers the entries in the order given, so the dead one comes first."""

    def sample(self, population: Sequence[T], k: int, **_: object) -> list[T]:  # type: ignore[override]
        return list(population)[:k]


async def test_a_dead_entry_rests_longer_after_each_failure(tmp_path: Path, free_ports) -> None:
    live_port, dead_port = free_ports(2)
    layout = FleetLayout(tmp_path)
    layout.write_agent(
        AgentSpec(name="n0", cloud="aws", zone="z", address=f"127.0.0.1:{live_port}")
    )
    now = [0.0]
    entries = [Entry("gone", f"127.0.0.1:{dead_port}"), Entry("n0", f"127.0.0.1:{live_port}")]
    admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
    async with Agent(load_agent_config(layout.config_path("n0"))):
        client = FleetClient(entries, admin, rng=InOrder(), rest=5.0, clock=lambda: now[0])
        try:
            tried = []
            for t in (0.0, 1.0, 6.0, 12.0, 17.0, 30.0):
                now[0] = t
                outcome = await client.submit("echo", b"x", timeout=5.0)
                assert outcome.status == "succeeded" and outcome.entry == "n0"
                tried.append((t, outcome.entries))
        finally:
            await client.close()
    # Rests 5 s, then 10 s, then 20 s: the dead entry is tried at 0, 6 and 17 only.
    assert tried == [(0.0, 2), (1.0, 1), (6.0, 2), (12.0, 1), (17.0, 2), (30.0, 1)]


async def test_the_next_entry_gets_only_what_is_left_of_the_deadline(
    tmp_path: Path, free_ports
) -> None:
    """A task's deadline is one, however many entry agents are tried: here the dead entry
    "took" the whole deadline (the clock jumps past it), so the live one is not tried."""
    live_port, dead_port = free_ports(2)
    layout = FleetLayout(tmp_path)
    layout.write_agent(
        AgentSpec(name="n0", cloud="aws", zone="z", address=f"127.0.0.1:{live_port}")
    )
    readings = iter([0.0, 0.0, 7.0])  # start, before the dead entry, before the live one
    entries = [Entry("gone", f"127.0.0.1:{dead_port}"), Entry("n0", f"127.0.0.1:{live_port}")]
    admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
    async with Agent(load_agent_config(layout.config_path("n0"))):
        client = FleetClient(entries, admin, rng=InOrder(), clock=lambda: next(readings, 7.0))
        try:
            outcome = await client.submit("echo", b"x", timeout=5.0)
        finally:
            await client.close()
    assert (outcome.status, outcome.entry, outcome.entries) == ("deadline_exceeded", "gone", 1)
    assert "deadline exceeded after 1 entry agent(s)" in outcome.error


def test_outcome_names_follow_the_proto_and_an_unknown_one_is_failed() -> None:
    from skyfleet._generated.skyfleet.v1 import tasks_pb2
    from skyfleet.client import outcome_name

    assert [outcome_name(n) for n in (1, 2, 3, 4)] == [
        "succeeded", "failed", "deadline_exceeded", "rejected"]
    assert outcome_name(tasks_pb2.TASK_OUTCOME_UNSPECIFIED) == "failed"
    assert outcome_name(99) == "failed"  # a newer agent's outcome: never read as success
