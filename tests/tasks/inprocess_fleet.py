"""Several real agents (gRPC, mTLS, SWIM, signed policy) in one event loop, each serving
the `gated` handler of a shared `Gates`, so a test sees which executor ran what."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from task_doubles import Gates

from skyfleet.client import AgentClient, tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.config.tasks import TaskSettings
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.node import Agent
from skyfleet.policy.signing import sign_policy
from skyfleet.tasks import handlers
from skyfleet.tasks.handlers import HandlerRegistry
from skyfleet.transport.tls import TlsMaterial

ROOT = Path(__file__).resolve().parents[2]

FAST = {"status_interval": 0.2, "status_refresh_interval": 0.5, "leave_propagate_delay": 0.1}
"""Membership overrides on the `local` profile: fresher load, quicker shutdown."""


def policy_document(version: int, **changes: Any) -> dict[str, Any]:
    """policies/default.json with top-level `changes`, and the nested ones given as
    `section__field` (e.g. locality__prefer="none")."""
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            doc[section][name] = value
        else:
            doc[section] = value
    doc["version"] = version
    return doc


class InProcessFleet:
    def __init__(
        self,
        root: Path,
        ports: list[int],
        placement: Iterable[tuple[str, str]],
        *,
        gates: Gates,
        policy: dict[str, Any],
        tasks: TaskSettings | None = None,
    ) -> None:
        """`placement`: (name, cloud) per agent; each agent gets a zone of its own."""
        placement = list(placement)
        seeds = (f"127.0.0.1:{ports[0]}",)
        self.specs = [
            AgentSpec(
                name=name,
                cloud=cloud,
                zone=f"{name}-zone",
                address=f"127.0.0.1:{port}",
                seeds=seeds,
                overrides=dict(FAST),
            )
            for (name, cloud), port in zip(placement, ports, strict=True)
        ]
        self.layout = FleetLayout(root)
        self.gates = gates
        self.policy = policy
        self.tasks = tasks or TaskSettings()
        self.agents: dict[str, Agent] = {}

    async def __aenter__(self) -> InProcessFleet:
        self.layout.ensure_ca()
        envelope = sign_policy(self.policy, self.layout.signing_key.read_bytes())
        (self.layout.policy_source / "policy.json").write_text(json.dumps(envelope))
        for spec in self.specs:
            config = load_agent_config(self.layout.write_agent(spec))
            registry = HandlerRegistry(
                {"gated": self.gates.handler(spec.name), "sleep": handlers.sleep,
                 "tokens": self.gates.streamer(spec.name)}
            )
            agent = Agent(replace(config, tasks=self.tasks), registry=registry)
            self.agents[spec.name] = agent
            await agent.start()
        await self.wait(self.ready, "every agent to route to every agent under the policy")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(a.shutdown() for a in self.agents.values()))

    def ready(self) -> bool:
        names = set(self.agents)
        version = self.policy["version"]
        return all(
            {p.name for p in a.router.peers()} == names
            and a.router.balancer.policy.version == version
            for a in self.agents.values()
        )

    async def wait(self, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        """Poll `condition` until it holds (agents do real I/O: the loop must turn)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def settled(self) -> None:
        """Wait until nothing is in flight anywhere, then check every ledger adds up."""
        await self.wait(
            lambda: all(
                a.router.ledger.in_flight == 0 and a.executor.inflight + a.executor.queued == 0
                for a in self.agents.values()
            ),
            "every task to end",
        )
        for name, a in self.agents.items():
            ledger = a.router.ledger
            assert ledger.submitted == ledger.terminal, (name, ledger)
            # Every attempt was closed with the balancer, cancelled ones included.
            budget = a.router.balancer.retry_budget
            assert (budget.active, budget.active_retries) == (0, 0), name

    def client(self, name: str) -> AgentClient:
        spec = next(s for s in self.specs if s.name == name)
        tls = TlsMaterial.load(tls_files_in(self.layout.tls, "admin"))
        return AgentClient(spec.address, tls, agent_name=name)
