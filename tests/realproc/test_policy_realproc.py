"""A signed policy published to one real agent reaches the whole fleet by gossip and pull;
forged, older and conflicting documents are refused everywhere; restarts and late
joiners end on the newest version."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from skyfleet.client import AgentClient, AgentError, tls_files_in
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import generate_signing_key, sign_policy
from skyfleet.transport.tls import TlsMaterial

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def specs(n: int, ports: list[int]) -> list[AgentSpec]:
    seeds = tuple(f"127.0.0.1:{p}" for p in ports[:2])
    clouds = ("aws", "azure", "gcp")
    return [
        AgentSpec(
            name=f"agent-{i}",
            cloud=clouds[i % 3],
            zone="z0",
            address=f"127.0.0.1:{ports[i]}",
            seeds=seeds,
        )
        for i in range(n)
    ]


def signed(version: int, key: bytes, **changes: object) -> bytes:
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    doc.update(version=version, **changes)
    return json.dumps(sign_policy(doc, key)).encode()


def on_version(version: int):  # type: ignore[no-untyped-def]
    """Predicate: every observer reports itself on `version`."""
    return lambda views: all(v[name].policy_version == version for name, v in views.items())


async def publish(fleet: LocalFleet, name: str, envelope: bytes, identity: str = "admin"):  # type: ignore[no-untyped-def]
    tls = TlsMaterial.load(tls_files_in(fleet.layout.tls, identity))
    async with AgentClient(fleet.specs[name].address, tls, agent_name=name) as client:
        return await client.publish_policy(envelope)


async def test_policy_reaches_twenty_agents_and_survives_restart_and_late_join(
    tmp_path: Path, free_ports
):
    ports = free_ports(21)
    all_specs = specs(21, ports)
    with LocalFleet(tmp_path, all_specs) as fleet:
        key = fleet.layout.signing_key.read_bytes()
        names = [s.name for s in all_specs[:20]]
        fleet.start(names)
        await fleet.wait_converged(names, timeout=90)

        reply = await publish(fleet, "agent-7", signed(2, key))
        assert reply.outcome == "adopted"
        await fleet.wait_for(on_version(2), names, timeout=60, what="all 20 on version 2")

        # Refused everywhere: not signed by a trusted key, an older version, and another
        # document under the version in force.
        forged = signed(3, generate_signing_key()[0])
        with pytest.raises(AgentError, match="INVALID_ARGUMENT|untrusted"):
            await publish(fleet, "agent-3", forged)
        with pytest.raises(AgentError, match="FAILED_PRECONDITION|ignored-older"):
            await publish(fleet, "agent-4", signed(1, key))
        with pytest.raises(AgentError, match="FAILED_PRECONDITION|conflict"):
            await publish(fleet, "agent-5", signed(2, key, description="another v2"))
        # An agent identity may not publish at all.
        with pytest.raises(AgentError, match="PERMISSION_DENIED|may not call admin"):
            await publish(fleet, "agent-6", signed(4, key), identity="agent-1")

        # A restarted agent starts on the persisted policy; a late joiner pulls it.
        fleet.agents["agent-11"].signal(signal.SIGKILL)
        fleet.agents["agent-11"].proc.wait()  # type: ignore[union-attr]
        fleet.start(["agent-11", "agent-20"])
        everyone = [*names, "agent-20"]
        await fleet.wait_converged(everyone, timeout=90)
        await fleet.wait_for(on_version(2), everyone, timeout=60, what="21 agents on version 2")
        views = await fleet.views(everyone)
        hashes = {v[n].policy_hash for n, v in views.items()}
        assert len(hashes) == 1  # one document, everywhere
