"""The end-to-end walk-through of the `local` environment: a fleet in three "clouds"
under a steady workload, a policy rollout, the loss of a whole cloud and its return.

Every figure in the summary is measured on this run: detection and convergence times by
polling every agent's own view, latencies and outcomes from the client's records (one
outcome per task; `lost` counts tasks that never got one and must be 0).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyfleet.client import AgentClient, MemberRow, tls_files_in
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.localfleet.workload import Record, Workload
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial

PHASES = ("steady", "rollout", "cloud-loss", "recovery")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    phase_seconds: float = 12.0
    """Length of each phase's workload after its event."""
    rate: float = 40.0
    """Tasks per second submitted through random agents."""
    service_mean: float = 0.03
    """Mean service time of the `sleep` tasks (exponential)."""
    victim_cloud: str = "gcp"
    timeout: float = 10.0
    """Client deadline of each task."""


@dataclass(frozen=True, slots=True)
class PhaseStats:
    submitted: int
    succeeded: int
    failed: int
    deadline_exceeded: int
    rejected: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    retried: int
    """Tasks that needed more than one executor or entry agent (failover)."""
    top_error: str = ""
    """The most frequent reason among tasks that did not succeed."""


@dataclass(slots=True)
class DemoReport:
    phases: dict[str, PhaseStats] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    join_seconds: float = 0.0
    policy_convergence_seconds: float = 0.0
    detection_seconds: float = 0.0
    rejoin_seconds: float = 0.0
    submitted: int = 0
    lost: int = 0
    chart: Path | None = None


def phase_stats(records: list[Record], phase: str) -> PhaseStats:
    mine = [r for r in records if r.phase == phase]
    ok = [(r.finished - r.started) * 1000 for r in mine if r.outcome.status == "succeeded"]
    pct = np.percentile(ok, [50, 99, 99.9]) if ok else np.zeros(3)

    def count(status: str) -> int:
        return sum(1 for r in mine if r.outcome.status.startswith(status))

    return PhaseStats(
        submitted=len(mine),
        succeeded=count("succeeded"),
        failed=count("failed"),
        deadline_exceeded=count("deadline_exceeded"),
        rejected=count("rejected"),
        p50_ms=float(pct[0]),
        p99_ms=float(pct[1]),
        p999_ms=float(pct[2]),
        retried=sum(1 for r in mine if r.outcome.attempts > 1 or r.outcome.entries > 1),
        top_error=_top_error(mine),
    )


def _top_error(records: list[Record]) -> str:
    reasons = Counter(
        f"{r.outcome.status}: {r.outcome.error[:160]}"
        for r in records
        if r.outcome.status != "succeeded"
    )
    if not reasons:
        return ""
    ((reason, n),) = reasons.most_common(1)
    return f"{n} x {reason}"


def signed_policy(source: Path, version: int, key: bytes, **changes: object) -> bytes:
    doc = json.loads(source.read_text())
    doc.update(version=version, **changes)
    return json.dumps(sign_policy(doc, key), indent=2).encode()


class Demo:
    def __init__(
        self,
        fleet: LocalFleet,
        policies: Path,
        settings: DemoSettings,
        say: Callable[[str], None],
        *,
        cut: Callable[[str], None] | None = None,
        heal: Callable[[], None] | None = None,
    ) -> None:
        """`cut(cloud)`/`heal()` isolate a cloud at the network (namespaces); without
        them the cloud's agents are killed and restarted."""
        self.fleet = fleet
        self.policies = policies
        self.settings = settings
        self.say = say
        self._cut = cut
        self._heal = heal
        self.report = DemoReport()
        self.records: list[Record] = []
        self._workload: Workload | None = None

    def _event(self, label: str) -> None:
        assert self._workload is not None
        self.report.events.append((self._workload.now(), label))
        self.say(label)

    async def run(self) -> DemoReport:
        fleet, s, report = self.fleet, self.settings, self.report
        names = list(fleet.specs)
        clouds = sorted({spec.cloud for spec in fleet.specs.values()})
        self.say(f"starting {len(names)} agents in {len(clouds)} clouds: {', '.join(clouds)}")
        fleet.start()
        report.join_seconds = await fleet.wait_converged(names, timeout=120)
        self.say(f"all {len(names)} agents see each other after {report.join_seconds:.2f}s")

        key = fleet.layout.signing_key.read_bytes()
        # Version 1 arrives the way infra delivers it on cloud hosts: a file agents watch.
        v1 = signed_policy(self.policies / "default.json", 1, key)
        (fleet.layout.policy_source / "policy.json").write_bytes(v1)
        await fleet.wait_for(_on_version(1), names, timeout=60, what="policy v1 everywhere")
        self.say("policy v1 (p2c, zone locality) adopted by every agent from its watched file")

        admin = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
        entries = [Entry(n, fleet.specs[n].address) for n in names]
        client = FleetClient(entries, admin, rng=random.Random(7))
        payload = json.dumps({"mean": s.service_mean, "dist": "exponential"}).encode()
        workload = Workload(client, s.rate, payload, timeout=s.timeout, rng=random.Random(11))
        self._workload = workload
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(workload.run(stop))
        ticker = asyncio.get_running_loop().create_task(self._progress(workload))
        try:
            await self._phases(workload, names, admin, key)
        finally:
            stop.set()
            await runner
            ticker.cancel()
            await client.close()
        self.records = workload.records
        for phase in PHASES:
            report.phases[phase] = phase_stats(workload.records, phase)
        report.submitted, report.lost = workload.submitted, workload.lost
        return report

    async def _progress(self, workload: Workload, every: float = 2.0) -> None:
        """A line every few seconds: what was submitted, what came back, what is open."""
        while True:
            await asyncio.sleep(every)
            done = workload.records
            ok = sum(1 for r in done if r.outcome.status == "succeeded")
            self.say(
                f"  [{workload.phase}] submitted {workload.submitted}, succeeded {ok}, "
                f"not succeeded {len(done) - ok}, in flight {workload.submitted - len(done)}"
            )

    async def _phases(
        self, workload: Workload, names: list[str], admin: TlsMaterial, key: bytes
    ) -> None:
        fleet, s, report = self.fleet, self.settings, self.report
        workload.phase = "steady"
        self._event(f"steady: {s.rate:.0f} tasks/s through random agents")
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "rollout"
        v2 = signed_policy(
            self.policies / "latency-first.json",
            2,
            key,
            failover={
                "max_attempts": 5,
                "per_attempt_timeout_seconds": 2,
                "cross_cloud": True,
                "retry_budget": {"percent": 20, "min_concurrent": 3},
            },
        )
        self._event("rollout: policy v2 (latency-first) published to one agent")
        async with AgentClient(fleet.specs[names[0]].address, admin, agent_name=names[0]) as c:
            await c.publish_policy(v2)
        report.policy_convergence_seconds = await fleet.wait_for(
            _on_version(2), names, timeout=60, what="policy v2 everywhere"
        )
        self.say(f"every agent runs v2 after {report.policy_convergence_seconds:.2f}s")
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "cloud-loss"
        victims = [n for n in names if fleet.specs[n].cloud == s.victim_cloud]
        survivors = [n for n in names if n not in victims]
        if self._cut is not None:
            self._event(f"{s.victim_cloud} cut: cut off from the other clouds (iptables)")
            self._cut(s.victim_cloud)
        else:
            self._event(f"{s.victim_cloud} lost: kill -9 of its {len(victims)} agents")
            for name in victims:
                fleet.agents[name].signal(signal.SIGKILL)
        report.detection_seconds = await fleet.wait_for(
            lambda views: all(v[x].state == "dead" for v in views.values() for x in victims),
            survivors,
            timeout=120,
            what=f"{s.victim_cloud} seen dead by all others",
        )
        self.say(
            f"all survivors marked {s.victim_cloud} failed after {report.detection_seconds:.2f}s"
        )
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "recovery"
        if self._heal is not None:
            self._event(f"{s.victim_cloud} back: reconnected")
            self._heal()
        else:
            self._event(f"{s.victim_cloud} back: its agents restarted")
            for name in victims:
                fleet.agents[name].proc.wait()  # type: ignore[union-attr]
            fleet.start(victims)
        report.rejoin_seconds = await fleet.wait_converged(names, timeout=120)
        await fleet.wait_for(_on_version(2), names, timeout=60, what="policy v2 after rejoin")
        self.say(f"{s.victim_cloud} back in the fleet on v2 after {report.rejoin_seconds:.2f}s")
        await asyncio.sleep(s.phase_seconds)


def _on_version(version: int) -> Callable[[dict[str, dict[str, MemberRow]]], bool]:
    """Every observer reports itself on `version`."""
    return lambda views: all(v[n].policy_version == version for n, v in views.items())
