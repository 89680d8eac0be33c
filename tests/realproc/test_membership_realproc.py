"""Real agent processes on loopback, talking gRPC over mTLS: the wiring works end to end.

The protocol's behaviour is proven deterministically in tests/membership; these tests
prove that processes, sockets, certificates and signals do what the core expects.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.procs import LocalFleet

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

CLOUDS = ("aws", "azure", "gcp")


def specs(n: int, ports: list[int]) -> list[AgentSpec]:
    seeds = tuple(f"127.0.0.1:{p}" for p in ports[:2])
    return [
        AgentSpec(
            name=f"agent-{i}",
            cloud=CLOUDS[i % 3],
            zone=f"{CLOUDS[i % 3]}-z{i // 3}",
            address=f"127.0.0.1:{ports[i]}",
            seeds=seeds,
        )
        for i in range(n)
    ]


def refusals_logged(fleet: LocalFleet, names: list[str], line: str) -> list[str]:
    """The agents among `names` whose log has `line` (the port check's refusal)."""
    return [n for n in names if line in fleet.agents[n].log.read_text()]


async def test_ten_agents_join_see_kill_and_recover_from_sigstop(tmp_path: Path, free_ports):
    with LocalFleet(tmp_path, specs(10, free_ports(10))) as fleet:
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_converged(names, timeout=60)

        # kill -9: no leave message, but the host's kernel refuses connections to the
        # dead port, which the others check as their streams to it break.
        fleet.agents["agent-3"].signal(signal.SIGKILL)
        others = [n for n in names if n != "agent-3"]
        await fleet.wait_states("agent-3", {"dead"}, others, timeout=60)
        killed = f"agent-3 at {fleet.specs['agent-3'].address} refused a connection"
        assert refusals_logged(fleet, others, killed), "no agent saw the dead port refuse"

        # SIGSTOP past the suspicion timeout: declared dead; after SIGCONT it refutes
        # (its incarnation rises) and everyone sees it alive again.
        stopped = fleet.agents["agent-5"]
        before = (await fleet.views(["agent-0"]))["agent-0"]["agent-5"].incarnation
        stopped.signal(signal.SIGSTOP)
        watchers = [n for n in others if n != "agent-5"]
        await fleet.wait_states("agent-5", {"dead"}, watchers, timeout=60)
        stopped.signal(signal.SIGCONT)
        await fleet.wait_states("agent-5", {"alive"}, watchers, timeout=60)
        # A frozen process's port still accepts connections: its death came from silence.
        frozen = f"agent-5 at {fleet.specs['agent-5'].address} refused"
        assert not refusals_logged(fleet, watchers, frozen)
        after = (await fleet.views(["agent-0"]))["agent-0"]["agent-5"].incarnation
        assert after > before

        # No false positive survived: every live agent sees every live agent alive.
        await fleet.wait_converged(others, timeout=30)


async def test_graceful_leave_is_seen_as_left(tmp_path: Path, free_ports):
    with LocalFleet(tmp_path, specs(3, free_ports(3))) as fleet:
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_converged(names, timeout=60)
        assert fleet.agents["agent-2"].stop() == 0  # SIGTERM: leave, drain, exit 0
        await fleet.wait_states("agent-2", {"left"}, names[:2], timeout=30)


async def test_agent_with_certificate_from_another_ca_is_refused(tmp_path: Path, free_ports):
    ports = free_ports(3)
    fleet_specs = specs(2, ports[:2])
    seeds = tuple(s.address for s in fleet_specs)
    rogue = AgentSpec(
        name="rogue", cloud="aws", zone="aws-z0", address=f"127.0.0.1:{ports[2]}", seeds=seeds
    )
    with (
        LocalFleet(tmp_path / "fleet", fleet_specs) as fleet,
        LocalFleet(tmp_path / "rogue", [rogue]) as intruder,
    ):
        fleet.start()
        await fleet.wait_converged(list(fleet.specs), timeout=60)
        intruder.start()
        log = intruder.agents["rogue"].log

        # The rogue's join attempts fail at the TLS handshake, and its log names the seed.
        def refusal_logged() -> bool:
            return any(
                f"peer {seeds[0]} " in line and "fleet CA" in line
                for line in log.read_text().splitlines()
            )

        await fleet.wait_for(
            lambda _views: refusal_logged(),
            list(fleet.specs),
            timeout=30,
            what="the rogue to log the refused handshake",
        )
        views = await fleet.views(list(fleet.specs))
        assert all("rogue" not in v for v in views.values())
        assert all(set(v) == set(fleet.specs) for v in views.values())
