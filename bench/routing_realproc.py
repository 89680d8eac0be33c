"""Routing with real agents: 9 agents as 3 clouds on this machine, against a bare grpc.aio
echo server with the same mTLS and the same `Tasks.Submit` shape, in one invocation.

1. Overhead: for each concurrency C, the closed-loop generator (`routing_load.py`) runs
   the `echo` handler through Skyfleet (random entry agent, routed under the example
   policy, or with `--prefer` another locality) and through the bare server
   (`routing_echo_server.py`), in `--repeats` pairs alternating which goes first;
   medians of throughput and latency and of the per-pair Skyfleet / bare ratios.
2. Cloud loss: under steady load, `kill -9` the three agents of one cloud. From the kill:
   - routed attempts: the last "attempt failed" log line of a survivor about a killed
     peer (agents log every failed attempt, with the wall-clock stamp);
   - client entries: the last task whose client tried a killed entry agent (the client
     rests a failed entry for `FleetClient.rest` s and then tries it again);
   - the last task that did not succeed, and the last one that needed a retry.

Run from the repository root:
    .venv/bin/python bench/routing_realproc.py --quick     # about a minute
    .venv/bin/python bench/routing_realproc.py             # C = 1 4 16 64, 3 x 10 s pairs
    .venv/bin/python bench/routing_realproc.py --prefer none   # every task routed over 9
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from membership_procs import LOOPBACK, PortAllocator
from routing_load import Record, Throughput, closed_loop, measure

from skyfleet.client import AgentClient, tls_files_in
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import sign_policy
from skyfleet.security.certs import issue_node_cert, write_cert_file, write_key_file
from skyfleet.transport.tls import TlsMaterial

ROOT = Path(__file__).resolve().parent.parent
CLOUDS = ("aws", "azure", "gcp")
BARE = "bare-echo"
KILLED = "gcp"


def fleet_specs(ports: list[int], per_cloud: int) -> list[AgentSpec]:
    """`per_cloud` agents in each cloud, one zone each (hosts spread over zones), the
    first of each cloud a seed."""
    seeds = tuple(f"{LOOPBACK}:{ports[c * per_cloud]}" for c in range(len(CLOUDS)))
    return [
        AgentSpec(
            name=f"{cloud}-{i}",
            cloud=cloud,
            zone=f"{cloud}-{chr(ord('a') + i)}",
            address=f"{LOOPBACK}:{ports[per_cloud * c + i]}",
            seeds=seeds,
            profile="lan",
        )
        for c, cloud in enumerate(CLOUDS)
        for i in range(per_cloud)
    ]


def write_policy(fleet: LocalFleet, prefer: str) -> None:
    """Version 1 of the example policy with `locality.prefer` set, signed with the fleet
    key, in the folder every agent watches."""
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    doc["locality"]["prefer"] = prefer
    envelope = sign_policy(doc, fleet.layout.signing_key.read_bytes())
    (fleet.layout.policy_source / "policy.json").write_text(json.dumps(envelope))


def start_bare(fleet: LocalFleet, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """The echo server in its own process, with a node certificate of the fleet CA."""
    tls = fleet.layout.tls
    ca, ca_key = (tls / "ca.pem").read_bytes(), (tls / "ca.key").read_bytes()
    cert, key = issue_node_cert(ca, ca_key, BARE, [LOOPBACK])
    write_cert_file(tls / f"{BARE}.pem", cert)
    write_key_file(tls / f"{BARE}.key", key)
    address = f"{LOOPBACK}:{port}"
    script = Path(__file__).with_name("routing_echo_server.py")
    argv = [sys.executable, str(script), "--bind", address, "--tls", str(tls), "--name", BARE]
    return subprocess.Popen(argv, start_new_session=True), address


async def wait_ready(fleet: LocalFleet, admin: TlsMaterial, timeout: float = 120.0) -> None:
    """Every agent lists every agent alive, each with a status (so balancers see capacity) and
    on policy version 1."""
    names = list(fleet.specs)
    await fleet.wait_converged(names, timeout=timeout)
    await fleet.wait_for(
        lambda views: all(
            all(r.capacity > 0 and r.policy_version == 1 for r in v.values())
            for v in views.values()
        ),
        names,
        timeout=timeout,
        what="every agent to know every agent's capacity",
    )


async def wait_bare(address: str, admin: TlsMaterial, timeout: float = 30.0) -> None:
    start = time.monotonic()
    async with AgentClient(address, admin, agent_name=BARE) as client:
        while True:
            try:
                await client.submit("echo", b"ping", timeout=2.0)
                return
            except Exception:
                if time.monotonic() - start > timeout:
                    raise
                await asyncio.sleep(0.1)


async def overhead(
    fleet: LocalFleet, bare: str, admin: TlsMaterial, levels: list[int], window: float, repeats: int
) -> list[dict[str, object]]:
    """Per concurrency, `repeats` side-by-side pairs (the order alternating); each row
    holds every pair and the medians of the figures and of the per-pair ratios."""
    entries = [Entry(s.name, s.address) for s in fleet.specs.values()]
    sky = FleetClient(entries, admin)
    base = FleetClient([Entry(BARE, bare)], admin)
    rows = []
    try:
        for i, c in enumerate(levels):
            pairs: list[dict[str, Throughput]] = []
            for rep in range(repeats):
                order = [("skyfleet", sky), ("bare", base)]
                pair: dict[str, Throughput] = {}
                for label, client in order if (i + rep) % 2 == 0 else order[::-1]:
                    pair[label] = await measure(client, c, warmup=1.0, seconds=window)
                print(f"C={c}: skyfleet {pair['skyfleet']}\n      bare {pair['bare']}", flush=True)
                pairs.append(pair)
            rows.append(summarize_pairs(c, pairs))
    finally:
        await sky.close()
        await base.close()
    return rows


def summarize_pairs(concurrency: int, pairs: list[dict[str, Throughput]]) -> dict[str, object]:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    row: dict[str, object] = {"concurrency": concurrency, "pairs": len(pairs)}
    for system in ("skyfleet", "bare"):
        runs = [p[system] for p in pairs]
        row[system] = {
            "per_second": med([r.per_second for r in runs]),
            "p50_ms": med([r.p50_ms for r in runs]),
            "p99_ms": med([r.p99_ms for r in runs]),
            "succeeded": min(r.succeeded for r in runs),
            "runs": [asdict(r) for r in runs],
        }
    for name, attr in (("throughput", "per_second"), ("p50", "p50_ms"), ("p99", "p99_ms")):
        ratios = [getattr(p["skyfleet"], attr) / getattr(p["bare"], attr) for p in pairs]
        row[f"{name}_ratio"] = med(ratios)
        row[f"{name}_ratio_range"] = (min(ratios), max(ratios))
    return row


def last_failed_attempt(fleet: LocalFleet, victims: set[str], after: float) -> tuple[float, int]:
    """(wall time of the last failed routed attempt at a victim, how many) from the
    survivors' logs."""
    last, count = 0.0, 0
    for name in fleet.specs:
        if name in victims:
            continue
        log = fleet.layout.root / "logs" / f"{name}.log"
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "attempt failed" and entry.get("peer") in victims:
                if entry["ts"] >= after:
                    last, count = max(last, entry["ts"]), count + 1
    return last, count


async def cloud_loss(
    fleet: LocalFleet, admin: TlsMaterial, concurrency: int, before: float, after: float
) -> dict[str, object]:
    entries = [Entry(s.name, s.address) for s in fleet.specs.values()]
    client = FleetClient(entries, admin)
    victims = {n for n, s in fleet.specs.items() if s.cloud == KILLED}
    stop, records = asyncio.Event(), []
    load = asyncio.get_running_loop().create_task(closed_loop(client, concurrency, stop, records))
    await asyncio.sleep(before)
    killed = time.time()
    for name in sorted(victims):
        fleet.agents[name].signal(signal.SIGKILL)
    await asyncio.sleep(after)
    stop.set()
    await load
    await client.close()
    return loss_summary(records, killed, victims, fleet)


def loss_summary(
    records: list[Record], killed: float, victims: set[str], fleet: LocalFleet
) -> dict[str, object]:
    def last(pred) -> float | None:  # type: ignore[no-untyped-def]
        times = [r.finished - killed for r in records if r.started >= killed - 1 and pred(r)]
        return max(times) if times else None

    attempt_at, attempts = last_failed_attempt(fleet, victims, killed)
    post = [r for r in records if r.finished >= killed]
    per_second: dict[int, list[int]] = {}
    for r in post:
        bucket = per_second.setdefault(int(r.finished - killed), [0, 0])
        bucket[0] += r.status == "succeeded"
        bucket[1] += 1
    return {
        "killed_cloud": KILLED,
        "victims": sorted(victims),
        "last_routed_attempt_to_killed_s": attempt_at - killed if attempts else None,
        "routed_attempts_to_killed": attempts,
        "last_executed_in_killed_s": last(lambda r: r.executed_by in victims),
        "last_not_succeeded_s": last(lambda r: r.status != "succeeded"),
        "last_retried_s": last(lambda r: r.attempts > 1),
        "last_entry_failover_s": last(lambda r: r.entries > 1),
        "tasks_after_kill": len(post),
        "failed_after_kill": sum(r.status != "succeeded" for r in post),
        "success_rate_per_second": {
            str(s): round(ok / n, 4) for s, (ok, n) in sorted(per_second.items())
        },
    }


def markdown(rows: list[dict[str, object]], loss: dict[str, object]) -> str:
    head = (
        "| C | Skyfleet tasks/s | bare tasks/s | ratio (min–max) | Skyfleet p50 / p99 (ms) "
        "| bare p50 / p99 (ms) | p50 ratio | p99 ratio | Skyfleet success |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        s, b = row["skyfleet"], row["bare"]
        assert isinstance(s, dict) and isinstance(b, dict)
        lo, hi = row["throughput_ratio_range"]  # type: ignore[misc]
        out.append(
            f"| {row['concurrency']} | {s['per_second']:.0f} | {b['per_second']:.0f} "
            f"| {row['throughput_ratio']:.2f} ({lo:.2f}–{hi:.2f}) "
            f"| {s['p50_ms']:.1f} / {s['p99_ms']:.1f} "
            f"| {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {row['p50_ratio']:.2f} "
            f"| {row['p99_ratio']:.2f} | {100 * s['succeeded']:.1f} % |"
        )

    def fmt(key: str) -> str:
        value = loss.get(key)
        return "—" if value is None else f"{value:.2f} s"

    out += [
        "",
        f"Cloud loss (`kill -9` of {', '.join(loss['victims'])}), times from the kill:",  # type: ignore[arg-type]
        "",
        "| last routed attempt to the killed cloud | routed attempts to it "
        "| last task run there | last retried task | last task not succeeded "
        "| last client entry failover | failed / tasks after kill |",
        "|---|---|---|---|---|---|---|",
        f"| {fmt('last_routed_attempt_to_killed_s')} | {loss['routed_attempts_to_killed']} "
        f"| {fmt('last_executed_in_killed_s')} | {fmt('last_retried_s')} "
        f"| {fmt('last_not_succeeded_s')} | {fmt('last_entry_failover_s')} "
        f"| {loss['failed_after_kill']} / {loss['tasks_after_kill']} |",
    ]
    return "\n".join(out)


async def run(args: argparse.Namespace) -> dict[str, object]:
    n = 3 * args.per_cloud
    ports = PortAllocator().take(n + 1)
    work = Path(tempfile.mkdtemp(prefix="skyfleet-routing-"))
    load = os.getloadavg()
    with LocalFleet(work, fleet_specs(ports[:n], args.per_cloud)) as fleet:
        admin = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
        write_policy(fleet, args.prefer)
        bare, address = start_bare(fleet, ports[n])
        try:
            fleet.start()
            await wait_ready(fleet, admin)
            await wait_bare(address, admin)
            rows = await overhead(
                fleet, address, admin, args.concurrency, args.window, args.repeats
            )
            loss = await cloud_loss(
                fleet, admin, args.loss_concurrency, args.before_kill, args.after_kill
            )
        finally:
            bare.terminate()
            bare.wait(10)
    if not args.keep_workdir:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "locality_prefer": args.prefer,
        "loadavg_before": load,
        "cpus": os.cpu_count(),
        "window_s": args.window,
        "repeats": args.repeats,
        "overhead": rows,
        "cloud_loss": loss,
        "workdir": str(work) if args.keep_workdir else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="side-by-side pairs per C")
    parser.add_argument("--loss-concurrency", type=int, default=16)
    parser.add_argument("--before-kill", type=float, default=3.0, help="steady load (s)")
    parser.add_argument("--after-kill", type=float, default=20.0, help="load after it (s)")
    parser.add_argument(
        "--prefer",
        default="zone",
        choices=["zone", "region", "cloud", "none"],
        help="locality.prefer of the policy the agents run (zone: the example policy)",
    )
    parser.add_argument("--per-cloud", type=int, default=3, help="agents per cloud")
    parser.add_argument("--keep-workdir", action="store_true", help="keep agents' logs")
    parser.add_argument("--quick", action="store_true", help="C = 1 16, 3 s windows")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/routing_realproc.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.window, args.after_kill, args.repeats = [1, 16], 3.0, 12.0, 1
    return args


def main() -> None:
    args = parse_args()
    result = asyncio.run(run(args))
    print()
    print(markdown(result["overhead"], result["cloud_loss"]))  # type: ignore[arg-type]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out} (load average before: {result['loadavg_before']})")


if __name__ == "__main__":
    main()
