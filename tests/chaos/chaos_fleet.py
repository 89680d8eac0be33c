"""One fleet of real agents in network namespaces, shared by every chaos module.

Six agents, two per cloud, each in its own namespace; the clouds are joined by a router
namespace whose iptables chain the faults act on (skyfleet.localfleet.netns). Starting a
fleet and letting it converge costs more than most faults do, so the fleet is built once
per session and every test starts by checking that it is whole again (`recovered`): a
fault that leaves damage behind fails the test that caused it, not the next one.

Each test runs a bounded open-loop workload through the fleet client while it injects its
fault (`under_load`), and on leaving asserts the one property a user cares most about:
every submitted task came back with exactly one outcome (lost == 0).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyfleet.client import AgentClient, MemberRow, tls_files_in
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.netns import FleetNetwork
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.localfleet.workload import Workload
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial

ROOT = Path(__file__).resolve().parents[2]
CLOUDS = ("aws", "azure", "gcp")
AGENTS = [(f"{cloud}-{i}", cloud) for cloud in CLOUDS for i in range(2)]
SEEDS = ("aws-0", "azure-0", "gcp-0")
"""One seed per cloud: a cloud cut off and healed can rejoin through any of them."""

RECOVERY_TIMEOUT = 60.0
"""Generous upper bounds: a timeout here is a failure to recover, not a slow run."""

FAILOVER = {
    "max_attempts": 5,
    "per_attempt_timeout_seconds": 2,
    "cross_cloud": True,
    "retry_budget": {"percent": 20, "min_concurrent": 3},
}
"""A per-attempt timeout well inside the client's deadline, so a task sent to an agent
that is gone is retried elsewhere rather than running out the client's clock."""

Views = dict[str, dict[str, MemberRow]]


def policy_envelope(version: int, key: bytes, **changes: Any) -> bytes:
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    doc.update({"version": version, "failover": FAILOVER, **changes})
    return json.dumps(sign_policy(doc, key)).encode()


def failed_events(line: str) -> str | None:
    """The member named in a `failed` membership event of a JSON log line, else None."""
    if '"failed"' not in line:
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry.get("member") if entry.get("event") == "failed" else None


@dataclass
class ChaosFleet:
    network: FleetNetwork
    fleet: LocalFleet
    names: list[str]
    version: int = 0
    """Highest policy version published so far: every agent must end on it."""

    @property
    def admin(self) -> TlsMaterial:
        return TlsMaterial.load(tls_files_in(self.fleet.layout.tls, "admin"))

    @property
    def signing_key(self) -> bytes:
        return self.fleet.layout.signing_key.read_bytes()

    def cloud(self, cloud: str) -> list[str]:
        return [n for n in self.names if self.fleet.specs[n].cloud == cloud]

    def others(self, excluded: list[str]) -> list[str]:
        return [n for n in self.names if n not in excluded]

    async def publish(self, name: str, version: int, **changes: Any) -> str:
        """Publish a signed policy through one agent's admin API; its outcome."""
        envelope = policy_envelope(version, self.signing_key, **changes)
        spec = self.fleet.specs[name]
        async with AgentClient(spec.address, self.admin, agent_name=name) as client:
            reply = await client.publish_policy(envelope)
        self.version = max(self.version, version)
        return reply.outcome

    async def recovered(self, names: list[str] | None = None) -> None:
        """Membership has reconverged (everyone sees everyone alive) and every agent runs
        the highest policy published, one document everywhere."""
        names = names or self.names
        await self.fleet.wait_converged(names, timeout=RECOVERY_TIMEOUT)
        await self.fleet.wait_for(
            on_version(self.version),
            names,
            timeout=RECOVERY_TIMEOUT,
            what=f"every agent on policy version {self.version}",
        )
        views = await self.fleet.views(names)
        hashes = {view[n].policy_hash for n, view in views.items()}
        assert len(hashes) == 1, f"one version, several documents: {hashes}"

    def log_offsets(self) -> dict[str, int]:
        """Where each agent's log ends now; `failures_since` reads only what follows."""
        return {n: self.fleet.agents[n].log.stat().st_size for n in self.names}

    def failures_since(self, offsets: dict[str, int]) -> list[tuple[str, str]]:
        """(observer, member) for every `failed` event logged after `offsets`."""
        found = []
        for name, offset in offsets.items():
            with self.fleet.agents[name].log.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            found += [(name, m) for line in text.splitlines() if (m := failed_events(line))]
        return found


def on_version(version: int) -> Callable[[Views], bool]:
    """Every observer reports itself on `version`."""
    return lambda views: all(v[n].policy_version == version for n, v in views.items())


def split(cut: list[str]) -> Callable[[Views], bool]:
    """Each side sees the other side dead (and the observers are all present)."""

    def holds(views: Views) -> bool:
        return all(
            member in view and view[member].state == "dead"
            for observer, view in views.items()
            for member in views
            if (member in cut) != (observer in cut)
        )

    return holds


@asynccontextmanager
async def under_load(chaos: ChaosFleet, rate: float = 15.0) -> AsyncIterator[Workload]:
    """Tasks through random entry agents for the duration of the block; on leaving,
    every task must have its one outcome."""
    entries = [Entry(n, chaos.fleet.specs[n].address) for n in chaos.names]
    client = FleetClient(entries, chaos.admin, rng=random.Random(3), rest=2.0)
    payload = json.dumps({"mean": 0.02, "dist": "exponential"}).encode()
    workload = Workload(client, rate, payload, timeout=10.0, rng=random.Random(5))
    stop = asyncio.Event()
    runner = asyncio.get_running_loop().create_task(workload.run(stop))
    try:
        yield workload
    finally:
        stop.set()
        await runner
        await client.close()
    outcomes = Counter(r.outcome.status for r in workload.records)
    assert workload.submitted > 0
    assert workload.lost == 0, f"{workload.lost} of {workload.submitted} tasks lost; {outcomes}"
    assert sum(outcomes.values()) == workload.submitted


def chaos_specs(network: FleetNetwork) -> list[AgentSpec]:
    loopback = {
        name: f"127.0.0.1:{7470 + i}" for i, (name, _) in enumerate(AGENTS)
    }  # distinct before `place` moves each agent to its own address (same port)
    return network.place(
        AgentSpec(
            name=name,
            cloud=cloud,
            zone=f"{cloud}-z{name[-1]}",
            address=loopback[name],
            seeds=tuple(loopback[s] for s in SEEDS),
            profile="local",
        )
        for name, cloud in AGENTS
    )
