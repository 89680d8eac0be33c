"""What a burst of joins costs the host: Skyfleet's gossip against memberlist's rounds, on
real agents over mTLS, side by side in one invocation.

For each configuration and run, N agents (`skyfleet agent run`, LAN profile, loopback)
start alone; once every API answers, agents 1..N-1 are told at once to join node 0
(`Admin/Join`), and every agent's member list is polled every 50 ms until every agent
lists all N alive. Reported per run:

- *join*: from the join command until all N list all N alive;
- *connections*: agent-to-agent TCP connections open at that moment (`ss`: sockets owned
  by an agent process whose peer is another agent's port, so each connection counts once,
  at the side that dialled);
- *agent CPU*: user + system seconds all agents burnt from the join command until then.

Configurations: "Skyfleet" is the LAN preset (early gossip rounds to members already on
an open connection, join catch-up); "memberlist rounds" sets `gossip_eager_gap` to the
gossip interval and `join_catch_up_window` to 0, leaving memberlist's periodic rounds.
Runs alternate which configuration goes first. Needs `ss` (iproute2). From the
repository root:

    .venv/bin/python bench/membership_join_cost.py --n 20 --runs 5      # about 2 minutes

`--baseline CHECKOUT` adds "Skyfleet-baseline": the Skyfleet configuration with agents
run from another checkout's runtime (e.g. `git worktree add /tmp/before <commit>`), runs
alternating with this one, to compare a change before and after in one invocation
(`--only Skyfleet --baseline ...` leaves memberlist rounds out).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from membership_procs import AgentProcesses, PortAllocator, cpu_seconds
from membership_skyfleet import AdminMembersClient, SkyfleetSystem
from membership_systems import NodeSpec, Status, port_accepts

CONFIGS: dict[str, Mapping[str, float]] = {
    "Skyfleet": {},
    "memberlist rounds": {"gossip_eager_gap": 0.2, "join_catch_up_window": 0.0},
}
POLL = 0.05
TIMEOUT = 60.0


def agent_connections(pids: set[int], ports: set[int]) -> int:
    """Established TCP connections an agent process dialled to another agent's port."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    count = 0
    for line in out.splitlines():
        fields = line.split()
        owner = re.search(r"pid=(\d+)", line)
        if owner and int(owner.group(1)) in pids and int(fields[3].rsplit(":", 1)[1]) in ports:
            count += 1
    return count


async def connect(system: SkyfleetSystem, node: NodeSpec) -> AdminMembersClient:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if await port_accepts(node.api_port):
            client = await system.connect(node)
            try:
                await client.members()
                return client
            except OSError:
                await client.close()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{node.name}: API not answering within {TIMEOUT:.0f} s")


async def one_run(
    n: int, membership: Mapping[str, float], ports: PortAllocator, runtime: Path | None = None
) -> dict:
    """`runtime`: another checkout's `runtime/` folder to run the agents from."""
    work = Path(tempfile.mkdtemp(prefix="skyfleet-join-cost-"))
    system = SkyfleetSystem(membership, runtime=runtime)
    names = [f"n{i}" for i in range(n)]
    system.prepare(names, work)
    nodes = system.plan(names, ports.take(n))
    procs = AgentProcesses(work)
    clients: dict[str, AdminMembersClient] = {}
    joins: list[asyncio.Future[None]] = []
    try:
        for node in nodes:
            procs.start(node.name, system.argv(node, work))
        for node in nodes:
            clients[node.name] = await connect(system, node)
        pids = set(procs.pids().values())
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        start = time.monotonic()
        joins += [asyncio.ensure_future(clients[n.name].join(nodes[0])) for n in nodes[1:]]
        pending = set(names)

        async def poll(name: str) -> None:
            view = await clients[name].members()
            if sum(state == Status.ALIVE for state in view.values()) == n:
                pending.discard(name)

        while pending:
            if time.monotonic() - start > TIMEOUT:
                raise RuntimeError(f"no convergence within {TIMEOUT:.0f} s: {sorted(pending)}")
            await asyncio.gather(*(poll(name) for name in list(pending)))
            if pending:
                await asyncio.sleep(POLL)
        join_s = time.monotonic() - start
        connections = agent_connections(pids, {node.gossip_port for node in nodes})
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        await asyncio.gather(*joins)
        return {"join_s": join_s, "connections": connections, "cpu_s": cpu}
    finally:
        for join in joins:
            join.cancel()
        await asyncio.gather(*joins, return_exceptions=True)
        for client in clients.values():
            await client.close()
        procs.close()


BASELINE = "Skyfleet-baseline"


async def main(n: int, runs: int, labels: list[str], baseline: Path | None) -> None:
    ports = PortAllocator()
    if baseline is not None:
        labels = [*labels, BASELINE]
    results: dict[str, list[dict]] = {label: [] for label in labels}
    for run in range(runs):
        order = labels if run % 2 == 0 else list(reversed(labels))
        for label in order:
            if label == BASELINE:
                r = await one_run(n, CONFIGS["Skyfleet"], ports, baseline / "runtime")
            else:
                r = await one_run(n, CONFIGS[label], ports)
            results[label].append(r)
            print(
                f"{label:18} N={n} run {run + 1}: join {r['join_s']:.2f} s, "
                f"{r['connections']} connections, agent CPU {r['cpu_s']:.2f} s",
                flush=True,
            )
    print(f"\n| N = {n}, {runs} runs | join (s) | connections open | agent CPU (s) |")
    print("|---|---|---|---|")
    for label, rows in results.items():
        cells = []
        for key, fmt in (("join_s", ".2f"), ("connections", ".0f"), ("cpu_s", ".2f")):
            values = sorted(row[key] for row in rows)
            cells.append(
                f"{statistics.median(values):{fmt}} ({values[0]:{fmt}}–{values[-1]:{fmt}})"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="agents per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per configuration")
    parser.add_argument("--only", choices=list(CONFIGS), help="run this configuration only")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also run Skyfleet from this checkout's runtime")
    args = parser.parse_args()
    if args.n < 2 or args.runs < 1:
        parser.error("--n must be at least 2 and --runs at least 1")
    if args.baseline is not None and not (args.baseline / "runtime" / "skyfleet").is_dir():
        parser.error(f"--baseline: {args.baseline} has no runtime/skyfleet")
    labels = [args.only] if args.only else list(CONFIGS)
    asyncio.run(main(args.n, args.runs, labels, args.baseline))
