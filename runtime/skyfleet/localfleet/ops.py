"""`skyfleet local up | status | down`: thin front ends over the `local` stack.

`up` is `pulumi up --refresh` (an agent that died since the last run is noticed and
started again), then waits until every agent sees every other and runs the stack's
policy; `down` is `pulumi destroy`, then checks that no agent process and no namespace of
the fleet is left. Everything a fleet is comes from the stack's outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from skyfleet.client import AgentClient, AgentError, MemberRow, tls_files_in
from skyfleet.config.fleet_files import FleetPaths
from skyfleet.localfleet import netns
from skyfleet.localfleet.procs import runs_agent
from skyfleet.localfleet.stack import EngineStep, FleetOutputs, LocalStack, StackError
from skyfleet.localfleet.watch import FleetWatch
from skyfleet.transport.tls import TlsMaterial

JOIN_TIMEOUT = 120.0
POLICY_TIMEOUT = 60.0


def watch(outputs: FleetOutputs) -> FleetWatch:
    """The fleet's agents, watched with the stack's admin identity."""
    admin = TlsMaterial.load(tls_files_in(FleetPaths(outputs.state_dir).tls, "admin"))
    return FleetWatch(outputs.endpoints, admin)


async def settled(outputs: FleetOutputs) -> tuple[float, float]:
    """Wait until every agent sees every other alive, then until every agent says it runs
    the stack's policy; (join seconds, policy seconds)."""
    fleet, names = watch(outputs), list(outputs.endpoints)
    joined = await fleet.wait_converged(names, timeout=JOIN_TIMEOUT)
    version = outputs.policy_version
    policy = await fleet.wait_for(
        lambda views: all(view[name].policy_version == version
                          for name, view in views.items()),
        names, timeout=POLICY_TIMEOUT, what=f"policy v{version} on every agent")
    return joined, policy


def up(stack: LocalStack, say: Callable[[str], None]) -> tuple[EngineStep, FleetOutputs]:
    step = stack.up(refresh=stack.exists())
    say(step.describe())
    outputs = stack.outputs()
    joined, policy = asyncio.run(settled(outputs))
    say(f"{len(outputs.endpoints)} agents see each other after {joined:.2f}s; "
        f"policy v{outputs.policy_version} on all after {policy:.2f}s more")
    return step, outputs


def leftovers(outputs: FleetOutputs) -> list[str]:
    """Agent processes and network pieces of the fleet still present."""
    left = [f"process {name} ({a.pid})" for name, a in outputs.agents.items()
            if runs_agent(a.pid, a.config)]
    if outputs.network.get("mode") == "netns" and outputs.network.get("prefix"):
        left += netns.leftovers(outputs.network["prefix"])
    return left


def down(stack: LocalStack, say: Callable[[str], None]) -> list[str]:
    """Destroy the stack; returns what is left of the fleet (empty on success)."""
    if not stack.exists():
        say(f"{stack.project}: the local stack does not exist; nothing to do")
        return []
    try:
        before: FleetOutputs | None = stack.outputs()
    except StackError:
        before = None  # never brought up, or only half: destroy what the state holds
    say(stack.destroy().describe())
    return leftovers(before) if before is not None else []


@dataclass(frozen=True, slots=True)
class Answer:
    """The first agent of the stack that answered, and its member table."""

    address: str
    observer: str
    rows: list[MemberRow]


async def first_answer(outputs: FleetOutputs, timeout: float) -> Answer:
    """Ask the stack's agents in turn, each for at most `timeout` seconds (one that died
    must not hold up the view); StackError naming why if none answers."""
    admin = TlsMaterial.load(tls_files_in(FleetPaths(outputs.state_dir).tls, "admin"))
    errors = []
    for name, address in outputs.endpoints.items():
        async with AgentClient(address, admin, agent_name=name) as client:
            try:
                return Answer(address, *await client.list_members(timeout=timeout))
            except AgentError as exc:
                errors.append(str(exc))
    raise StackError("no agent of the local stack answers: " + "; ".join(errors[:3]))
