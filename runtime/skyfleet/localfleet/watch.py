"""Watching a running fleet through its agents' operator API: every agent's own view of
the member table, polled until a condition holds (always with a deadline, never a fixed
sleep). Works for any fleet whose addresses are known: one this process started
(`procs.LocalFleet`) or one the engine started (the `local` stack's outputs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

from skyfleet.client import AgentClient, AgentError, MemberRow
from skyfleet.transport.tls import TlsMaterial

Views = dict[str, dict[str, MemberRow]]
"""Observer name -> (member name -> that observer's row for it)."""


class FleetTimeout(AssertionError):
    """A fleet did not reach the awaited state in time; the message says what was seen."""


class FleetWatch:
    def __init__(self, addresses: Mapping[str, str], admin: TlsMaterial) -> None:
        self.addresses = dict(addresses)
        """Agent name -> host:port of its API."""
        self.tls = admin
        """The admin identity every call is made with."""

    async def views(self, names: Iterable[str]) -> Views:
        """Each named agent's member table (an agent that does not answer is left out)."""

        async def one(name: str) -> tuple[str, dict[str, MemberRow] | None]:
            async with AgentClient(self.addresses[name], self.tls, agent_name=name) as client:
                try:
                    _, rows = await client.list_members(timeout=2.0)
                except AgentError:
                    return name, None
            return name, {r.name: r for r in rows}

        results = await asyncio.gather(*(one(n) for n in names))
        return {n: v for n, v in results if v is not None}

    async def wait_for(
        self,
        predicate: Callable[[Views], bool],
        observers: Iterable[str],
        *,
        timeout: float,
        what: str,
        interval: float = 0.1,
    ) -> float:
        """Poll the observers' views until `predicate(views)` holds; seconds it took."""
        observers = list(observers)
        start = time.monotonic()
        views: Views = {}
        while time.monotonic() - start < timeout:
            views = await self.views(observers)
            if len(views) == len(observers) and predicate(views):
                return time.monotonic() - start
            await asyncio.sleep(interval)
        summary = {o: {m: r.state for m, r in v.items()} for o, v in views.items()}
        raise FleetTimeout(f"timed out after {timeout:.0f}s waiting for {what}; views: {summary}")

    async def wait_states(
        self, subject: str, states: set[str], observers: Iterable[str], *, timeout: float
    ) -> float:
        """Wait until every observer sees `subject` in one of `states`."""
        return await self.wait_for(
            lambda views: all(subject in v and v[subject].state in states for v in views.values()),
            observers,
            timeout=timeout,
            what=f"{subject} in {sorted(states)}",
        )

    async def wait_converged(self, names: Iterable[str], *, timeout: float) -> float:
        """Wait until each named agent sees every named agent alive."""
        names = list(names)
        return await self.wait_for(
            lambda views: all(
                all(n in v and v[n].state == "alive" for n in names) for v in views.values()
            ),
            names,
            timeout=timeout,
            what=f"{len(names)} agents to see each other alive",
        )
