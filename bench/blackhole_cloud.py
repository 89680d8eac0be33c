"""A cloud gone dark under load: Skyfleet's outlier ejection side by side with the same
fleet under Envoy's outlier-detection defaults, in one invocation (issue 14, item 1).

    sudo .venv/bin/python bench/blackhole_cloud.py                 # 9 agents, 3 runs each
    sudo .venv/bin/python bench/blackhole_cloud.py --runs 1 --dark 6 --rate 30   # a quick look

Nine real agents, three per cloud, each in its own network namespace; tasks (`sleep`,
20 ms mean) arrive at `--rate` per second through the fleet client, whose entries are
all nine agents, under a policy with no locality (every router sends to every cloud)
and the policy's default 60 s per-attempt timeout, the client's deadline `--deadline`.
Each run: `--warm` seconds of load, then one cloud (in turn) dropped both ways by
iptables in the router namespace, nothing refused, for `--dark` seconds, then healed and
waited for until whole; every run starts with the agents restarted, so that no ejection
carries over. The two configurations alternate run by run on the same fleet, told apart
only by the policy's `outlier_detection`:

- **skyfleet**: the policy defaults (5 consecutive failures, a cloud ejected as a whole,
  an unreachable peer ejected at once, `max_ejection_percent` 100);
- **envoy**: Envoy's defaults (interval 10 s, 5 consecutive 5xx, 30 s base ejection,
  `max_ejection_percent` 10: with 9 hosts no ejection is ever allowed, so only
  membership's verdict takes the dark cloud out of the picks).

Reported per configuration, over the tasks submitted while the cloud was dark: the share
that succeeded, and per router outside the dark cloud the time from the cut to its last
attempt sent into the dark cloud (its agent log's `attempt failed` lines, each with the
attempt's length: nothing sent there after the cut succeeds), with the time membership
took to list the cloud dead.
Writes bench/out/blackhole_cloud.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from signed_policy import signed_policy

from skyfleet.client import AgentClient, MemberRow, tls_files_in
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.netns import FleetNetwork, unavailable_reason
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.localfleet.workload import Workload
from skyfleet.transport.tls import TlsMaterial

ROOT = Path(__file__).resolve().parents[1]
CLOUDS = ("aws", "azure", "gcp")
AGENTS = [(f"{cloud}-{i}", cloud) for cloud in CLOUDS for i in range(3)]
OUTLIER = {
    "skyfleet": {},
    "envoy": {
        "enabled": True,
        "interval_seconds": 10,
        "consecutive_failures": 5,
        "base_ejection_seconds": 30,
        "max_ejection_percent": 10,
    },
}
"""Each configuration's `outlier_detection` over the defaults (empty: the defaults)."""
Views = dict[str, dict[str, MemberRow]]


@dataclass(frozen=True, slots=True)
class RunResult:
    config: str
    run: int
    cloud: str
    tasks: int
    succeeded: int
    last_attempt_s: dict[str, float]
    """Router -> seconds from the cut to its last attempt sent into the dark cloud
    (routers that sent none after the cut are absent)."""
    membership_dead_s: float | None
    """Until every agent outside the cloud listed all of it dead."""
    cut_at: float
    """Wall-clock time of the cut, to read the agents' logs (`ts`) against."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration")
    parser.add_argument("--rate", type=float, default=50.0, help="tasks per second")
    parser.add_argument("--warm", type=float, default=4.0, help="load before the cut (s)")
    parser.add_argument("--dark", type=float, default=15.0, help="how long the cloud is dark")
    parser.add_argument("--deadline", type=float, default=10.0, help="client deadline (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-workdir", type=Path, metavar="DIR",
                        help="run the fleet in DIR and keep its logs, configs and certificates")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "blackhole_cloud.json")
    args = parser.parse_args(argv)
    if args.runs < 1 or min(args.rate, args.dark, args.deadline) <= 0 or args.warm < 0:
        parser.error("--runs must be >= 1; --rate, --dark and --deadline > 0; --warm >= 0")
    return args


def specs(network: FleetNetwork) -> list[AgentSpec]:
    loopback = {name: f"127.0.0.1:{7470 + i}" for i, (name, _) in enumerate(AGENTS)}
    seeds = tuple(loopback[f"{c}-0"] for c in CLOUDS)
    return network.place(
        AgentSpec(name=name, cloud=cloud, zone=f"{name}-z", address=loopback[name],
                  seeds=seeds, profile="local")
        for name, cloud in AGENTS
    )


class Bench:
    def __init__(self, fleet: LocalFleet, network: FleetNetwork, args: argparse.Namespace):
        self.fleet, self.network, self.args = fleet, network, args
        self.names = list(fleet.specs)
        self.admin = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
        self.key = fleet.layout.signing_key.read_bytes()
        self.version = 1

    def envelope(self, config: str) -> bytes:
        defaults = json.loads((ROOT / "policies" / "default.json").read_text())
        outlier = {**defaults["outlier_detection"], **OUTLIER[config]}
        return signed_policy(
            ROOT / "policies" / "default.json", self.version, self.key,
            locality={"prefer": "none"}, outlier_detection=outlier,
            description=f"blackhole bench: {config} outlier detection",
        )

    async def adopt(self, config: str) -> None:
        self.version += 1
        spec = self.fleet.specs[self.names[0]]
        async with AgentClient(spec.address, self.admin, agent_name=spec.name) as client:
            await client.publish_policy(self.envelope(config))
        await self.whole()

    async def whole(self) -> None:
        await self.fleet.wait_converged(self.names, timeout=120)
        await self.fleet.wait_for(
            lambda v: all(v[n][n].policy_version == self.version for n in v),
            self.names, timeout=120, what=f"policy {self.version} everywhere",
        )

    async def run(self, config: str, index: int, cloud: str) -> RunResult:
        # Fresh agents each run: ejections outlast a run (30 s, longer each time again),
        # and a cloud still ejected from the last run would make this one a second loss.
        self.fleet.stop()
        self.fleet.start()
        await self.fleet.wait_converged(self.names, timeout=120)
        await self.adopt(config)
        dark = [n for n in self.names if self.fleet.specs[n].cloud == cloud]
        outside = [n for n in self.names if n not in dark]
        entries = [Entry(n, self.fleet.specs[n].address) for n in self.names]
        client = FleetClient(entries, self.admin, rng=random.Random(self.args.seed + index))
        payload = json.dumps({"mean": 0.02, "dist": "exponential"}).encode()
        load = Workload(client, self.args.rate, payload, timeout=self.args.deadline,
                        rng=random.Random(self.args.seed * 100 + index))
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(load.run(stop))
        offsets = {n: self.fleet.agents[n].log.stat().st_size for n in outside}
        await asyncio.sleep(self.args.warm)
        load.phase = "dark"
        cut_at, cut_mono = time.time(), time.monotonic()
        self.network.cut(cloud, "both")
        dead_s: float | None = None
        try:
            await self.fleet.wait_for(
                lambda v: all(v[o][x].state == "dead" for o in outside for x in dark),
                outside, timeout=self.args.dark, what=f"{cloud} dead everywhere else",
            )
            dead_s = time.monotonic() - cut_mono
        except Exception:  # noqa: BLE001 - not seen within the window: reported as such
            pass
        await asyncio.sleep(max(0.0, self.args.dark - (time.monotonic() - cut_mono)))
        load.phase = "healed"
        self.network.heal()
        stop.set()
        await runner
        await client.close()
        await self.whole()
        records = [r for r in load.records if r.phase == "dark"]
        return RunResult(
            config, index, cloud, len(records),
            sum(r.outcome.status == "succeeded" for r in records),
            self.last_attempts(outside, dark, offsets, cut_at), dead_s, cut_at,
        )

    def last_attempts(
        self, routers: list[str], dark: list[str], offsets: dict[str, int], cut_at: float
    ) -> dict[str, float]:
        last: dict[str, float] = {}
        for name in routers:
            text = self.fleet.agents[name].log.read_bytes()[offsets[name]:].decode(errors="replace")
            for line in text.splitlines():
                try:
                    entry: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "attempt failed" and entry.get("peer") in dark:
                    sent = entry["ts"] - entry.get("seconds", 0.0)
                    if sent >= cut_at:
                        last[name] = max(last.get(name, 0.0), sent - cut_at)
        return last


def summary(results: list[RunResult]) -> dict[str, Any]:
    tasks = sum(r.tasks for r in results)
    ok = sum(r.succeeded for r in results)
    lasts = sorted(v for r in results for v in r.last_attempt_s.values())
    dead = [r.membership_dead_s for r in results if r.membership_dead_s is not None]
    return {
        "tasks": tasks,
        "succeeded": ok,
        "success_percent": 100.0 * ok / tasks if tasks else None,
        "last_attempt_median_s": statistics.median(lasts) if lasts else None,
        "last_attempt_max_s": lasts[-1] if lasts else None,
        "routers_measured": len(lasts),
        "membership_dead_median_s": statistics.median(dead) if dead else None,
    }


def table(sums: dict[str, dict[str, Any]]) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "—" if value is None else fmt.format(value)

    sky, env = sums["skyfleet"], sums["envoy"]
    rows = [
        ("tasks submitted while dark", "{:.0f}", "tasks"),
        ("succeeded (%)", "{:.2f}", "success_percent"),
        ("last attempt sent into the dark cloud, median over routers (s)", "{:.2f}",
         "last_attempt_median_s"),
        ("... worst router (s)", "{:.2f}", "last_attempt_max_s"),
        ("membership: the cloud dead everywhere else, median (s)", "{:.2f}",
         "membership_dead_median_s"),
    ]
    lines = ["| metric | Skyfleet | Envoy's outlier defaults | ratio |", "|---|---|---|---|"]
    for label, fmt, key in rows:
        a, b = sky[key], env[key]
        ratio = num(a / b if a is not None and b else None, "{:.2f}")
        lines.append(f"| {label} | {num(a, fmt)} | {num(b, fmt)} | {ratio} |")
    return "\n".join(lines)


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with (
        FleetNetwork.create(AGENTS) as network,
        LocalFleet(workdir, specs(network)) as fleet,
    ):
        b = Bench(fleet, network, args)
        (fleet.layout.policy_source / "policy.json").write_bytes(
            signed_policy(ROOT / "policies" / "default.json", 1, b.key))
        fleet.start()
        await b.whole()
        results: list[RunResult] = []
        for i in range(args.runs):
            order = ("skyfleet", "envoy") if i % 2 == 0 else ("envoy", "skyfleet")
            for config in order:
                cloud = CLOUDS[len(results) % len(CLOUDS)]
                result = await b.run(config, len(results), cloud)
                results.append(result)
                worst = max(result.last_attempt_s.values(), default=None)
                print(f"{config:8} run {i + 1} ({cloud} dark): {result.succeeded}/{result.tasks}"
                      f" succeeded, last attempt sent into it {worst} s after the cut, "
                      f"membership {result.membership_dead_s}", file=sys.stderr)
    sums = {c: summary([r for r in results if r.config == c]) for c in OUTLIER}
    return {"args": {k: str(v) for k, v in vars(args).items()},
            "runs": [asdict(r) for r in results], "summary": sums, "table": table(sums)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        print(f"blackhole_cloud needs network namespaces: {reason}", file=sys.stderr)
        return 2
    if args.keep_workdir is not None:
        args.keep_workdir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(bench(args, args.keep_workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="skyfleet-blackhole-") as tmp:
            report = asyncio.run(bench(args, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(report["table"])
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
