"""One policy rollout over N real agents (`LocalFleet`, LAN membership profile, mTLS), with
the yardsticks measured on the same fleet just before.

A run:
1. N - 1 agents start with version 1 of the policy in their watched folder and converge.
2. Fresh alive: agent N starts; from its `agent started` log line (written as its join
   leaves) until every agent lists it alive is the fleet's dissemination time for one
   fresh member (wall clock; the log stamps to the millisecond).
3. Pull round trip: Policy.Fetch (the RPC an agent pulls with) timed from this client
   over a warm mTLS channel, the median of `FETCHES` calls.
4. Rollout: version 2 (signed with the fleet key) is published to one agent through
   `AgentClient.publish_policy`; every agent's own reported version is polled until all
   run version 2.

Every agent is polled through one long-lived admin channel (a TLS handshake per poll
would load the two cores being measured). Times are late by at most one poll gap,
reported as `poll_gap_p95_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from membership_procs import LOOPBACK, PortAllocator

from skyfleet._generated.skyfleet.v1 import policy_pb2, policy_pb2_grpc
from skyfleet.client import AgentClient, AgentError, MemberRow, tls_files_in
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial, secure_channel

ROOT = Path(__file__).resolve().parent.parent
CLOUDS = ("aws", "azure", "gcp")
POLL_INTERVAL = 0.05
FETCHES = 20
CONVERGE_TIMEOUT = 120.0
Views = dict[str, dict[str, MemberRow]]
Check = Callable[[Views], bool]
ROLLOUT_TIMEOUT = 60.0


@dataclass(slots=True)
class RealRun:
    n: int
    join_all_s: float | None = None
    """From the new agent's join until all N list it alive."""
    fetch_rtt_s: float | None = None
    policy_half_s: float | None = None
    policy_all_s: float | None = None
    poll_gap_p95_s: float | None = None
    wall_s: float = 0.0
    error: str = ""


def fleet_specs(n: int, ports: list[int]) -> list[AgentSpec]:
    seeds = (f"{LOOPBACK}:{ports[0]}",)
    return [
        AgentSpec(
            name=f"agent-{i:02d}",
            cloud=CLOUDS[i % 3],
            zone="z0",
            address=f"{LOOPBACK}:{ports[i]}",
            seeds=seeds,
            profile="lan",
        )
        for i in range(n)
    ]


def signed(version: int, key: bytes) -> bytes:
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    doc.update(version=version, description=f"bench version {version}")
    return json.dumps(sign_policy(doc, key)).encode()


class Poller:
    """One admin channel per agent; `views()` asks every agent for its table at once."""

    def __init__(self, fleet: LocalFleet) -> None:
        self.admin = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
        self._fleet = fleet
        self.clients: dict[str, AgentClient] = {}
        self.gaps: list[float] = []
        self._last = 0.0

    def client(self, name: str) -> AgentClient:
        if name not in self.clients:
            spec = self._fleet.specs[name]
            self.clients[name] = AgentClient(spec.address, self.admin, agent_name=name)
        return self.clients[name]

    async def views(self, names: list[str]) -> dict[str, dict[str, MemberRow]]:
        async def one(name: str) -> tuple[str, dict[str, MemberRow] | None]:
            try:
                _, rows = await self.client(name).list_members(timeout=2.0)
            except AgentError:
                return name, None
            return name, {r.name: r for r in rows}

        results = await asyncio.gather(*(one(n) for n in names))
        now = time.monotonic()
        if self._last:
            self.gaps.append(now - self._last)
        self._last = now
        return {n: v for n, v in results if v is not None}

    async def until(self, names: list[str], done: Check, timeout: float, what: str) -> float:
        """Poll until `done(views)`; seconds since the call. Raises TimeoutError."""
        start = time.monotonic()
        self._last = 0.0
        while time.monotonic() - start < timeout:
            views = await self.views(names)
            if len(views) == len(names) and done(views):
                return time.monotonic() - start
            await asyncio.sleep(POLL_INTERVAL)
        raise TimeoutError(f"{what}: not within {timeout:.0f} s")

    async def close(self) -> None:
        for client in self.clients.values():
            await client.__aexit__(None, None, None)


def started_at(fleet: LocalFleet, name: str) -> float:
    """Wall-clock time of the agent's `agent started` log line: it is written right
    after the agent sent its join, the first moment anyone could hear of it."""
    log = fleet.layout.root / "logs" / f"{name}.log"
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("msg") == "agent started":
                return float(entry["ts"])
    raise RuntimeError(f"{name}: no 'agent started' line in {log}")


def all_alive(names: list[str]) -> Check:
    return lambda views: all(
        all(n in v and v[n].state == "alive" for n in names) for v in views.values()
    )


def on_version(version: int) -> Check:
    return lambda views: all(v[name].policy_version >= version for name, v in views.items())


async def fetch_rtt(fleet: LocalFleet, admin: TlsMaterial, name: str) -> float:
    """Median Fetch time over one warm channel, as an agent's long-lived peer channel."""
    spec = fleet.specs[name]
    async with secure_channel(spec.address, admin.channel_credentials(), name) as channel:
        stub = policy_pb2_grpc.PolicyStub(channel)
        times = []
        for _ in range(FETCHES + 1):
            start = time.perf_counter()
            reply = await stub.Fetch(policy_pb2.FetchPolicyRequest(), timeout=5.0)
            times.append(time.perf_counter() - start)
            if not reply.envelope:
                raise RuntimeError(f"{name}: Fetch returned no envelope")
    return statistics.median(times[1:])  # the first call pays the handshake


async def one_run(n: int, ports: list[int], work: Path) -> RealRun:
    run = RealRun(n)
    specs = fleet_specs(n, ports)
    names = [s.name for s in specs]
    started = time.monotonic()
    with LocalFleet(work, specs) as fleet:
        key = fleet.layout.signing_key.read_bytes()
        (fleet.layout.policy_source / "policy.json").write_bytes(signed(1, key))
        poller = Poller(fleet)
        try:
            fleet.start(names[:-1])
            await poller.until(names[:-1], all_alive(names[:-1]), CONVERGE_TIMEOUT, "converge")
            await poller.until(names[:-1], on_version(1), CONVERGE_TIMEOUT, "all on v1")
            joiner = names[-1]
            fleet.start([joiner])
            await poller.until(names, all_alive([joiner]), CONVERGE_TIMEOUT, f"all see {joiner}")
            run.join_all_s = time.time() - started_at(fleet, joiner)
            await poller.until(names, all_alive(names), CONVERGE_TIMEOUT, "converge")
            await poller.until(names, on_version(1), CONVERGE_TIMEOUT, "all on v1")
            run.fetch_rtt_s = await fetch_rtt(fleet, poller.admin, names[1])
            run.policy_half_s, run.policy_all_s = await rollout(poller, names, signed(2, key))
            gaps = sorted(poller.gaps)
            run.poll_gap_p95_s = gaps[int(0.95 * (len(gaps) - 1))] if gaps else None
        finally:
            await poller.close()
    run.wall_s = round(time.monotonic() - started, 1)
    return run


async def rollout(poller: Poller, names: list[str], envelope: bytes) -> tuple[float, float]:
    """(time to half, time to all) from the Publish call to agent N/2."""
    half: list[float] = []
    start = time.monotonic()
    reply = await poller.client(names[len(names) // 2]).publish_policy(envelope)
    if reply.outcome != "adopted":
        raise RuntimeError(f"publish: {reply.outcome}: {reply.reason}")

    def done(views: dict[str, dict[str, MemberRow]]) -> bool:
        count = sum(v[name].policy_version >= 2 for name, v in views.items())
        if not half and 2 * count >= len(names):
            half.append(time.monotonic() - start)
        return count == len(names)

    await poller.until(names, done, ROLLOUT_TIMEOUT, "all on v2")
    return half[0], time.monotonic() - start


async def run_real_sizes(
    sizes: list[int], runs: int, keep: bool = False
) -> dict[int, list[RealRun]]:
    ports = PortAllocator()
    results: dict[int, list[RealRun]] = {}
    for r in range(runs):
        for n in sizes:
            with contextlib.ExitStack() as stack:
                work = Path(tempfile.mkdtemp(prefix=f"skyfleet-policy-{n}-"))
                if not keep:
                    stack.callback(shutil.rmtree, work, ignore_errors=True)
                try:
                    run = await one_run(n, ports.take(n), work)
                except (TimeoutError, RuntimeError, AgentError) as exc:
                    run = RealRun(n, error=str(exc))
                print(f"real N={n} run {r + 1}: {run}", flush=True)
                results.setdefault(n, []).append(run)
    return results
