"""`skyfleet local up | status | down`: the local environment as a long-running fleet.

`up` starts the agents (detached, in their own sessions) and records them in the state
file; `down` stops them gracefully (SIGTERM: leave), kills what does not exit, removes
the network namespaces and checks that nothing is left.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyfleet.client import AgentClient, AgentError, MemberRow, tls_files_in
from skyfleet.localfleet import netns
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.localfleet.procs import LocalFleet, runs_agent, stop_agent
from skyfleet.localfleet.state import FleetState
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial


def up(
    specs: list[AgentSpec],
    root: Path,
    policy: dict[str, Any],
    say: Callable[[str], None],
    *,
    use_netns: bool,
) -> FleetState:
    if FleetState.load(root) is not None:
        raise RuntimeError(f"{root}: a local fleet is already up; run `skyfleet local down`")
    network = None
    why_not = None if use_netns else "--loopback"
    why_not = why_not or netns.unavailable_reason()
    if why_not is None:
        network = netns.FleetNetwork.create([(s.name, s.cloud) for s in specs])
        specs = network.place(specs)
        say(f"network namespaces under {network.plan.prefix}-router")
    else:
        say(f"agents on loopback ({why_not})")
    fleet = LocalFleet(root, specs)
    state = FleetState(tuple(specs), {}, network.plan.prefix if network else None)
    state.save(root)  # before starting anything, so `down` can always clean up
    fleet.start()
    pids = {n: a.proc.pid for n, a in fleet.agents.items() if a.proc is not None}
    state = FleetState(tuple(specs), pids, state.network_prefix)
    state.save(root)
    joined = asyncio.run(fleet.wait_converged(list(fleet.specs), timeout=120))
    say(f"{len(specs)} agents up and joined after {joined:.2f}s")
    key = fleet.layout.signing_key.read_bytes()
    envelope = sign_policy(policy, key)
    (fleet.layout.policy_source / "policy.json").write_text(json.dumps(envelope, indent=2))
    version = policy["version"]
    took = asyncio.run(
        fleet.wait_for(
            # Every agent must also *see* every other on it: `status` then agrees everywhere.
            lambda views: all(
                row.policy_version == version for v in views.values() for row in v.values()
            ),
            list(fleet.specs),
            timeout=60,
            what=f"policy v{version} on every agent, as every agent sees it",
        )
    )
    say(f"policy v{version} signed into {fleet.layout.policy_source}, on all in {took:.2f}s")
    return state


def down(root: Path, say: Callable[[str], None]) -> list[str]:
    """Stop everything `up` started; returns what is left (empty on success)."""
    state = FleetState.load(root)
    if state is None:
        say(f"{root}: no local fleet is up")
        return []
    layout = FleetLayout(root)
    for name, pid in state.pids.items():
        if stop_agent(pid, layout.config_path(name)):
            say(f"{name} did not leave in time: killed")
    left = [
        f"process {n} ({p})" for n, p in state.pids.items() if runs_agent(p, layout.config_path(n))
    ]
    if state.network_prefix:
        netns.teardown(state.network_prefix)
        left += netns.leftovers(state.network_prefix)
    if not left:
        FleetState.clear(root)
    return left


async def views(root: Path) -> tuple[str, list[MemberRow]]:
    """The member table as the first answering agent sees it."""
    state = FleetState.load(root)
    if state is None:
        raise RuntimeError(f"{root}: no local fleet is up; run `skyfleet local up`")
    tls = TlsMaterial.load(tls_files_in(root / "tls", "admin"))
    errors = []
    for spec in state.specs:
        async with AgentClient(spec.address, tls, agent_name=spec.name) as client:
            try:
                return await client.list_members(timeout=2.0)
            except AgentError as exc:
                errors.append(str(exc))
    raise RuntimeError("no agent answers: " + "; ".join(errors[:3]))
