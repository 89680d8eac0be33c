"""Soak: a fleet of real agents in network namespaces under steady load, with a fault
every minute, for as long as asked. Not run in CI (10 minutes by default).

Each minute is one phase: a fault is injected (a cloud cut off both ways or one way, a
`kill -9` and restart, SIGSTOP/SIGCONT, 10 % loss between clouds, a policy published on
both sides of a partition), held until the fleet has seen it (or `--hold` seconds), then
removed; the rest of the minute the fleet must recover: every agent sees every agent
alive and runs the highest policy. Tasks flow the whole time through the fleet client.

Reported, per phase: tasks submitted and their outcomes, p50/p99 latency of the tasks
that succeeded, time to detect and to recover; overall: tasks lost (must be 0) and the
resident memory of every agent at the start and the end (growth per agent).

    sudo .venv/bin/python bench/soak.py                      # 20 agents, 10 minutes
    sudo .venv/bin/python bench/soak.py --minutes 2 --agents 9   # a quick look

Writes bench/out/soak.json and bench/out/soak.md; exit status 1 if a task was lost or
the fleet did not recover from a fault.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from signed_policy import signed_policy

from skyfleet.client import AgentClient, MemberRow, tls_files_in
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet.demo import phase_stats
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.netns import FleetNetwork, unavailable_reason
from skyfleet.localfleet.procs import FleetTimeout, LocalFleet
from skyfleet.localfleet.workload import Workload
from skyfleet.transport.tls import TlsMaterial

ROOT = Path(__file__).resolve().parents[1]
CLOUDS = ("aws", "azure", "gcp")
FAULTS = ("cut-both", "cut-in", "kill-9", "sigstop", "loss-10pct", "policy-split")
FAILOVER = {
    "max_attempts": 5,
    "per_attempt_timeout_seconds": 2,
    "cross_cloud": True,
    "retry_budget": {"percent": 20, "min_concurrent": 3},
}
Views = dict[str, dict[str, MemberRow]]


@dataclass(frozen=True, slots=True)
class FaultResult:
    phase: str
    fault: str
    target: str
    detect_seconds: float | None
    """Until every observer saw the fault (None: not observable, e.g. loss)."""
    recover_seconds: float | None
    """From removing the fault until the fleet was whole again (None: it was not)."""


class Soak:
    def __init__(self, fleet: LocalFleet, network: FleetNetwork, args: argparse.Namespace):
        self.fleet, self.network, self.args = fleet, network, args
        self.names = list(fleet.specs)
        self.version = 1
        self.rng = random.Random(args.seed)
        self.admin = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
        self.key = fleet.layout.signing_key.read_bytes()

    def cloud(self, cloud: str) -> list[str]:
        return [n for n in self.names if self.fleet.specs[n].cloud == cloud]

    async def recovered(self) -> float | None:
        start = time.monotonic()
        try:
            await self.fleet.wait_converged(self.names, timeout=self.args.recover_timeout)
            await self.fleet.wait_for(
                lambda v: all(v[n][n].policy_version == self.version for n in v),
                self.names,
                timeout=self.args.recover_timeout,
                what=f"policy {self.version} everywhere",
            )
        except FleetTimeout as exc:
            print(f"  NOT RECOVERED: {str(exc)[:300]}", file=sys.stderr)
            return None
        return time.monotonic() - start

    async def publish(self, name: str, version: int, note: str) -> None:
        doc = ROOT / "policies" / "default.json"
        envelope = signed_policy(doc, version, self.key, failover=FAILOVER, description=note)
        spec = self.fleet.specs[name]
        async with AgentClient(spec.address, self.admin, agent_name=name) as client:
            await client.publish_policy(envelope)
        self.version = max(self.version, version)

    async def seen(self, predicate: Callable[[Views], bool], observers: list[str]) -> float:
        return await self.fleet.wait_for(
            predicate, observers, timeout=self.args.hold, what="the fault to be seen"
        )

    async def inject(self, fault: str) -> tuple[str, float | None, Callable[[], Awaitable[None]]]:
        """Start `fault`; (target, seconds until seen, how to remove it)."""
        cloud = self.rng.choice(CLOUDS)
        victims = self.cloud(cloud)
        others = [n for n in self.names if n not in victims]

        def all_dead(views: Views) -> bool:
            return all(v[x].state == "dead" for o, v in views.items() for x in victims if x in v)

        async def heal() -> None:
            self.network.heal()

        if fault in ("cut-both", "cut-in"):
            self.network.cut(cloud, "both" if fault == "cut-both" else "in")
            return cloud, await self.seen(all_dead, others), heal
        if fault == "loss-10pct":
            for i, a in enumerate(CLOUDS):
                for b in CLOUDS[i + 1 :]:
                    self.network.set_loss(a, b, 0.10)
            await asyncio.sleep(self.args.hold)
            return "all clouds", None, heal
        if fault == "policy-split":
            self.network.cut(cloud, "both")
            detect = await self.seen(all_dead, others)
            await self.publish(others[0], self.version + 1, "majority side")
            await self.publish(victims[0], self.version + 1, "minority side, higher")
            return cloud, detect, heal
        victim = self.rng.choice(self.names)
        rest = [n for n in self.names if n != victim]
        agent = self.fleet.agents[victim]

        def victim_dead(views: Views) -> bool:
            return all(v[victim].state == "dead" for v in views.values() if victim in v)

        if fault == "kill-9":
            agent.signal(signal.SIGKILL)
            detect = await self.seen(victim_dead, rest)

            async def restart() -> None:
                assert agent.proc is not None
                agent.proc.wait()
                self.fleet.start([victim])

            return victim, detect, restart
        agent.signal(signal.SIGSTOP)
        detect = await self.seen(victim_dead, rest)

        async def cont() -> None:
            agent.signal(signal.SIGCONT)

        return victim, detect, cont

    async def phase(self, index: int, fault: str, workload: Workload) -> FaultResult:
        label = f"{index:02d}-{fault}"
        workload.phase = label
        print(f"[{workload.now():6.1f}s] phase {label}", file=sys.stderr)
        ends = time.monotonic() + self.args.phase_seconds
        detect: float | None = None
        try:
            target, detect, remove = await self.inject(fault)
        except FleetTimeout:
            target, remove = "?", self._heal_everything
        await remove()
        recover = await self.recovered()
        await asyncio.sleep(max(0.0, ends - time.monotonic()))
        return FaultResult(label, fault, target, detect, recover)

    async def _heal_everything(self) -> None:
        self.network.heal()
        for agent in self.fleet.agents.values():
            agent.signal(signal.SIGCONT)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def memory(fleet: LocalFleet) -> dict[str, tuple[int, int | None]]:
    """(pid, RSS KiB) per agent; a restarted agent has a new pid."""
    return {
        n: (a.proc.pid, rss_kib(a.proc.pid)) for n, a in fleet.agents.items() if a.proc is not None
    }


def specs(network: FleetNetwork, n: int) -> list[AgentSpec]:
    names = [(f"{CLOUDS[i % 3]}-{i // 3}", CLOUDS[i % 3]) for i in range(n)]
    loopback = {name: f"127.0.0.1:{7470 + i}" for i, (name, _) in enumerate(names)}
    seeds = tuple(loopback[name] for name, _ in names[:3])  # one per cloud
    return network.place(
        AgentSpec(
            name=name,
            cloud=cloud,
            zone=f"{cloud}-z{i % 2}",
            address=loopback[name],
            seeds=seeds,
            profile="local",
        )  # fmt: skip
        for i, (name, cloud) in enumerate(names)
    )


async def soak(args: argparse.Namespace, workdir: Path) -> dict:
    names = [(f"{CLOUDS[i % 3]}-{i // 3}", CLOUDS[i % 3]) for i in range(args.agents)]
    with (
        FleetNetwork.create(names) as network,
        LocalFleet(workdir, specs(network, args.agents)) as fleet,
    ):
        s = Soak(fleet, network, args)
        v1 = signed_policy(ROOT / "policies" / "default.json", 1, s.key, failover=FAILOVER)
        (fleet.layout.policy_source / "policy.json").write_bytes(v1)
        fleet.start()
        join = await fleet.wait_converged(s.names, timeout=120)
        assert await s.recovered() is not None, "the fleet never converged"
        mem_start = memory(fleet)
        entries = [Entry(n, fleet.specs[n].address) for n in s.names]
        client = FleetClient(entries, s.admin, rng=random.Random(args.seed + 1), rest=2.0)
        payload = json.dumps({"mean": args.service_mean, "dist": "exponential"}).encode()
        workload = Workload(client, args.rate, payload, timeout=10.0, rng=random.Random(args.seed))
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(workload.run(stop))
        results = []
        try:
            for i in range(args.minutes):
                results.append(await s.phase(i, FAULTS[i % len(FAULTS)], workload))
        finally:
            stop.set()
            await runner
            await client.close()
        mem_end = memory(fleet)
    growth = {
        n: {"start_kib": mem_start[n][1], "end_kib": end, "restarted": pid != mem_start[n][0]}
        for n, (pid, end) in mem_end.items()
    }
    phases = sorted({r.phase for r in workload.records})
    return {
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "report")},
        "join_seconds": join,
        "submitted": workload.submitted,
        "lost": workload.lost,
        "faults": [asdict(r) for r in results],
        "phases": {p: asdict(phase_stats(workload.records, p)) for p in phases},
        "memory": growth,
    }


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"# Soak: {s['agents']} agents, {s['minutes']} phases of {s['phase_seconds']:.0f} s, "
        f"{s['rate']:.0f} tasks/s, one fault per phase",
        "",
        f"Tasks submitted: {result['submitted']}; **lost: {result['lost']}** (must be 0). "
        f"Fleet converged {result['join_seconds']:.1f} s after start.",
        "",
        "| phase | target | detected (s) | recovered (s) | tasks | ok | failed | deadline "
        "| rejected | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in result["faults"]:
        p = result["phases"].get(f["phase"], {})

        def sec(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        lines.append(
            f"| {f['phase']} | {f['target']} | {sec(f['detect_seconds'])} | "
            f"{'NOT RECOVERED' if f['recover_seconds'] is None else sec(f['recover_seconds'])} | "
            f"{p.get('submitted', 0)} | {p.get('succeeded', 0)} | {p.get('failed', 0)} | "
            f"{p.get('deadline_exceeded', 0)} | {p.get('rejected', 0)} | "
            f"{p.get('p50_ms', 0):.0f} | {p.get('p99_ms', 0):.0f} |"
        )
    lines += [
        "",
        "| agent | RSS start (MiB) | RSS end (MiB) | growth | note |",
        "|---|---|---|---|---|",
    ]
    for name, m in sorted(result["memory"].items()):
        start, end = m["start_kib"], m["end_kib"]
        if start is None or end is None:
            continue
        note = "restarted (new process)" if m["restarted"] else ""
        lines.append(
            f"| {name} | {start / 1024:.1f} | {end / 1024:.1f} | "
            f"{(end - start) / 1024:+.1f} MiB | {note} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--minutes", type=int, default=10, help="phases, one fault each")
    p.add_argument("--phase-seconds", type=float, default=60.0)
    p.add_argument("--hold", type=float, default=30.0, help="max seconds a fault is held")
    p.add_argument("--recover-timeout", type=float, default=45.0)
    p.add_argument("--rate", type=float, default=30.0, help="tasks per second")
    p.add_argument("--service-mean", type=float, default=0.02, help="mean task seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "soak.json")
    p.add_argument("--report", type=Path, default=ROOT / "bench" / "out" / "soak.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        print(f"soak needs network namespaces: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="skyfleet-soak-") as tmp:
        result = asyncio.run(soak(args, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.report.write_text(markdown(result))
    print(markdown(result))
    unrecovered = [f for f in result["faults"] if f["recover_seconds"] is None]
    return 1 if result["lost"] or unrecovered else 0


if __name__ == "__main__":
    raise SystemExit(main())
