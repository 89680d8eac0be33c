"""The end-to-end walk-through of the `local` environment, every step through the Pulumi
engine: `pulumi up` builds the fleet (3 clouds x 3 zones), a steady workload runs, the
policy rolls out by `pulumi config set` + `pulumi preview` + `pulumi up`, a whole cloud is
lost (its agents `kill -9`ed, or cut off with iptables), `pulumi refresh` + `pulumi up`
bring it back, and `pulumi destroy` ends it.

Every figure in the summary is measured on this run: engine steps by the wall clock
around each command, detection and convergence by polling every agent's own view,
latencies and outcomes from the client's records (one outcome per task; `lost` counts
tasks that never got one and must be 0). The rollout edits Pulumi.local.yaml as an
operator would; the demo puts the file back as it found it when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyfleet.client import MemberRow
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet import ops
from skyfleet.localfleet.netns import FleetNetwork
from skyfleet.localfleet.netplan import NetworkPlan
from skyfleet.localfleet.stack import STACK, EngineStep, FleetOutputs, LocalStack
from skyfleet.localfleet.workload import Record, Workload

PHASES = ("steady", "rollout", "cloud-loss", "recovery")
LOSSES = ("kill", "cut")


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
    rollout_file: str = "policies/latency-first.json"
    """The document the rollout names; its own version is the one rolled out."""
    loss: str = "kill"
    """How the cloud is lost: `kill` (-9 of its agents; refresh + up bring them back) or
    `cut` (iptables between its namespaces and the rest; netns fleets only)."""


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
    engine: list[EngineStep] = field(default_factory=list)
    """Every engine command the demo ran, in order, with its time."""
    rollout_preview: list[str] = field(default_factory=list)
    """What `pulumi preview` said the rollout changes, one line per resource."""
    join_seconds: float = 0.0
    policy_convergence_seconds: float = 0.0
    detection_seconds: float = 0.0
    rejoin_seconds: float = 0.0
    submitted: int = 0
    lost: int = 0
    leftovers: list[str] = field(default_factory=list)
    """What `pulumi destroy` left behind (processes, namespaces); must be empty."""
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



class Demo:
    def __init__(self, stack: LocalStack, settings: DemoSettings,
                 say: Callable[[str], None]) -> None:
        if settings.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, got {settings.loss!r}")
        self.stack = stack
        self.settings = settings
        self.say = say
        self.report = DemoReport()
        self.records: list[Record] = []
        self._workload: Workload | None = None
        self._stack_file = stack.project / f"Pulumi.{STACK}.yaml"

    def _event(self, label: str) -> None:
        assert self._workload is not None
        self.report.events.append((self._workload.now(), label))
        self.say(label)

    async def _engine(self, call: Callable[[], EngineStep]) -> EngineStep:
        """Run one engine command off the event loop (the workload keeps running)."""
        step = await asyncio.to_thread(call)
        self.report.engine.append(step)
        self.say(step.describe())
        return step

    async def run(self) -> DemoReport:
        """The whole walk-through; the stack is destroyed and Pulumi.local.yaml restored
        however it ends."""
        original = self._stack_file.read_bytes()
        outputs: FleetOutputs | None = None
        try:
            outputs = await self._bring_up()
            await self._under_load(outputs)
        finally:
            self._stack_file.write_bytes(original)
            await self._engine(self.stack.destroy)
            if outputs is not None:
                self.report.leftovers = ops.leftovers(outputs)
        return self.report

    async def _bring_up(self) -> FleetOutputs:
        report = self.report
        await self._engine(lambda: self.stack.up(refresh=self.stack.exists()))
        outputs = self.stack.outputs()
        clouds = sorted(set(outputs.clouds.values()))
        where = ("each in its own network namespace, clouds joined by "
                 f"{outputs.network['prefix']}-router" if outputs.network["mode"] == "netns"
                 else "on loopback")
        self.say(f"{len(outputs.endpoints)} agents in {len(clouds)} clouds "
                 f"({', '.join(clouds)}), {where}")
        report.join_seconds, policy = await ops.settled(outputs)
        self.say(f"all agents see each other after {report.join_seconds:.2f}s; policy "
                 f"v{outputs.policy_version} on every agent {policy:.2f}s later")
        return outputs

    async def _under_load(self, outputs: FleetOutputs) -> None:
        s, report = self.settings, self.report
        admin = ops.watch(outputs)
        entries = [Entry(n, a) for n, a in outputs.endpoints.items()]
        client = FleetClient(entries, admin.tls, rng=random.Random(7))
        payload = json.dumps({"mean": s.service_mean, "dist": "exponential"}).encode()
        workload = Workload(client, s.rate, payload, timeout=s.timeout, rng=random.Random(11))
        self._workload = workload
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(workload.run(stop))
        ticker = asyncio.get_running_loop().create_task(self._progress(workload))
        try:
            await self._phases(workload, outputs)
        finally:
            stop.set()
            await runner
            ticker.cancel()
            await client.close()
        self.records = workload.records
        for phase in PHASES:
            report.phases[phase] = phase_stats(workload.records, phase)
        report.submitted, report.lost = workload.submitted, workload.lost

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

    async def _phases(self, workload: Workload, outputs: FleetOutputs) -> None:
        s, report = self.settings, self.report
        fleet, names = ops.watch(outputs), list(outputs.endpoints)
        workload.phase = "steady"
        self._event(f"steady: {s.rate:.0f} tasks/s through random agents")
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "rollout"
        version = int(json.loads((self.stack.project / s.rollout_file).read_text())["version"])
        self._event(f"rollout: pulumi config set skyfleet:policyFile {s.rollout_file}, "
                    f"skyfleet:policyVersion {version}")
        await asyncio.to_thread(self.stack.set_config, "skyfleet:policyFile", s.rollout_file)
        await asyncio.to_thread(self.stack.set_config, "skyfleet:policyVersion", str(version))
        step, changes = await asyncio.to_thread(self.stack.preview)
        report.engine.append(step)
        report.rollout_preview = changes
        self.say(step.describe())
        for line in changes:
            self.say(f"  preview: {line}")
        started = workload.now()
        await self._engine(self.stack.up)
        await fleet.wait_for(_on_version(version), names, timeout=60,
                             what=f"policy v{version} everywhere")
        report.policy_convergence_seconds = workload.now() - started
        self.say(f"every agent runs v{version} {report.policy_convergence_seconds:.2f}s "
                 "after `pulumi up` began")
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "cloud-loss"
        victims = [n for n in names if outputs.clouds[n] == s.victim_cloud]
        survivors = [n for n in names if n not in victims]
        network = _network(outputs) if s.loss == "cut" else None
        if network is not None:
            self._event(f"{s.victim_cloud} cut: cut off from the other clouds (iptables)")
            network.cut(s.victim_cloud)
        else:
            self._event(f"{s.victim_cloud} lost: kill -9 of its {len(victims)} agents")
            for name in victims:
                _kill(outputs.agents[name].pid)
        report.detection_seconds = await fleet.wait_for(
            lambda views: all(v[x].state == "dead" for v in views.values() for x in victims),
            survivors, timeout=120, what=f"{s.victim_cloud} seen dead by all others")
        self.say(f"all survivors marked {s.victim_cloud} failed after "
                 f"{report.detection_seconds:.2f}s")
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "recovery"
        started = workload.now()
        if network is not None:
            self._event(f"{s.victim_cloud} back: reconnected")
            network.heal()
        else:
            self._event(f"{s.victim_cloud} back: pulumi refresh (the engine notices the dead "
                        "agents), pulumi up (starts them again)")
            await self._engine(self.stack.refresh)
            await self._engine(self.stack.up)
            # The restarted agents have new pids: the stack's outputs say which.
            outputs = self.stack.outputs()
        await fleet.wait_converged(names, timeout=120)
        await fleet.wait_for(_on_version(version), names, timeout=60,
                             what=f"policy v{version} after rejoin")
        report.rejoin_seconds = workload.now() - started
        self.say(f"{s.victim_cloud} back in the fleet on v{version} "
                 f"{report.rejoin_seconds:.2f}s after recovery began")
        await asyncio.sleep(s.phase_seconds)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _network(outputs: FleetOutputs) -> FleetNetwork:
    """The stack's namespaced network, to cut and heal (a `cut` needs netns)."""
    if outputs.network.get("mode") != "netns":
        raise ValueError("loss: `cut` needs the netns network (root; skyfleet:localNetwork)")
    return FleetNetwork(NetworkPlan.of_record(outputs.network))


def _on_version(version: int) -> Callable[[dict[str, dict[str, MemberRow]]], bool]:
    """Every observer reports itself on `version`."""
    return lambda views: all(v[n].policy_version == version for n, v in views.items())
