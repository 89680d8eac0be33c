"""Membership at 100 to 10,000 nodes on virtual time.

The simulator (`skyfleet.sim.SimCluster`) drives the very same SWIM + Lifeguard core the
agents run, so these are the protocol's figures, not a model's. Per fleet size and run:

1. Build: start N nodes in batches, each joining through one of a few seeds, until every
   node sees every node alive (virtual join time, wall time). A join floods N alive
   messages into N tables, O(N^2 log N) work and N^2 queued items: it dominates the
   benchmark's wall time and, at N = 10,000, needs more memory than this machine has.
   From `--converged-from` on, the fleet instead starts converged (`add_converged`:
   every node knows every other, nothing queued, shared immutable entries) and phases
   2-5 run on it unchanged; the join figure is then not measured.
2. Steady state (c): once the join news has drained, bytes and packets per node per
   second over a window (sizes are `messages.packet_size` estimates of the encoding).
3. Dissemination (a): one node hears it is suspected and refutes with a new
   incarnation, the only fresh news in a quiet fleet; every 10 ms we count the nodes
   holding it. Serf's convergence model gives 99.99 % of 1,000 nodes in 2.2 s with the
   same gossip interval (200 ms) and fan-out (3): the ratio is reported.
4. Detection (b): crash one node; time until the first and the last live node mark it
   dead.
5. False positives (d): FAILED events about live nodes over the whole run (must be 0),
   and SUSPECT events about live nodes (refuted; reported for information).

Run from the repository root:
    .venv/bin/python bench/membership_sim.py                    # quick: N = 100, 1,000
    .venv/bin/python bench/membership_sim.py --sizes 100,1000,10000 --runs 3
    .venv/bin/python bench/membership_sim.py --sizes 1000 --converged-from 1000  # shortcut check

The simulator models connections as the agent has them (early gossip rounds go only to
members on an open connection); `--all-connected` counts every pair as connected, which
shows what that rule costs where a cold hop would be free.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from membership_sim_phases import (
    EventTally,
    JoinPlan,
    build_fleet,
    detect_crash,
    disseminate_refutation,
    measure_traffic,
    node_names,
)

from skyfleet.config import MembershipConfig, membership_preset
from skyfleet.sim import SimCluster

ROOT = Path(__file__).resolve().parent.parent
SERF_MODEL = {"n": 1000, "fraction": 0.9999, "seconds": 2.2}
"""Serf's convergence simulator: 99.99 % of 1,000 nodes informed in 2.2 s (gossip
interval 200 ms, fan-out 3, no loss)."""
CONVERGED_TRAFFIC_WINDOW = 30.0
"""Virtual seconds of traffic counted for a converged start, whose push-pulls are spread
evenly over the period (at N = 10,000 the full 300 s period would cost an hour of CPU)."""
BYTES_PER_RECORD = {"join": 320, "converged": 45}
"""Peak memory per (node, known member) pair. Join: measured with tracemalloc at N =
10,000 (2.0 MB per node once drained, 3.2 MB with the queue), every node holding its own
entries. Converged start: measured 3.9 GiB RSS at N = 10,000, about 42 B per pair (shared
entries: each node owns only its dict slots and its two name lists)."""


@dataclass(slots=True)
class SizeRun:
    n: int
    seed: int
    join_s: float | None = None
    settle_s: float | None = None
    bytes_per_node_s: float = 0.0
    packets_per_node_s: float = 0.0
    t50_s: float | None = None
    t99_s: float | None = None
    t9999_s: float | None = None
    t_all_s: float | None = None
    first_dead_s: float | None = None
    all_dead_s: float | None = None
    false_failed: int = 0
    false_suspects: int = 0
    wall_s: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[float, float]] = field(default_factory=list)


def measure_size(
    n: int,
    seed: int,
    *,
    config: MembershipConfig | None = None,
    plan: JoinPlan | None = None,
    converged: bool = False,
    connections: bool = True,
) -> SizeRun:
    """One run at fleet size `n`: build (join, or a converged start), steady traffic,
    dissemination, detection. `connections` False: every pair counts as connected."""
    config = config or membership_preset("lan")
    plan = plan or JoinPlan()
    cluster = SimCluster(config, seed=seed, connections=connections)
    tally = EventTally()
    run = SizeRun(n, seed)
    clock, cpu = time.perf_counter(), time.process_time()

    def lap(phase: str) -> None:
        """Wall and CPU seconds of a phase: CPU is the figure to trust on a shared host."""
        nonlocal clock, cpu
        now, now_cpu = time.perf_counter(), time.process_time()
        run.wall_s[phase], run.cpu_s[phase] = round(now - clock, 3), round(now_cpu - cpu, 3)
        clock, cpu = now, now_cpu

    if converged:
        cluster.add_converged(node_names(n))
    else:
        run.join_s = build_fleet(cluster, tally, n, plan)
        if run.join_s is None:
            raise RuntimeError(f"N={n}: the fleet did not converge within {plan.timeout} s")
    # The member tables are long-lived: left to the collector, every collection of its
    # oldest generation walks all N^2 table references (at N = 10,000 it made a virtual
    # second cost 25 s of CPU instead of 5).
    gc.collect()
    gc.freeze()
    lap("join")
    traffic = measure_traffic(
        cluster,
        tally,
        settle_step=5.0,
        max_settle=300.0,
        window=CONVERGED_TRAFFIC_WINDOW if converged else None,
    )
    run.settle_s = traffic.settle_s
    run.bytes_per_node_s, run.packets_per_node_s = (
        traffic.bytes_per_node_s,
        traffic.packets_per_node_s,
    )
    lap("steady")
    names = node_names(n)
    spread = disseminate_refutation(cluster, tally, names[n // 2], step=0.01, timeout=60.0)
    run.t50_s, run.t99_s, run.t9999_s, run.t_all_s = (
        spread.t50,
        spread.t99,
        spread.t9999,
        spread.t_all,
    )
    run.curve = spread.curve
    lap("dissemination")
    detection = detect_crash(cluster, tally, names[-1])
    run.first_dead_s, run.all_dead_s = detection.first_dead_s, detection.all_dead_s
    lap("detection")
    gc.unfreeze()
    run.false_failed, run.false_suspects = len(tally.false_failed), tally.false_suspects
    run.wall_s["total"] = round(sum(run.wall_s.values()), 3)
    run.cpu_s["total"] = round(sum(run.cpu_s.values()), 3)
    return run


# ---------------------------------------------------------------------- summary


_MEDIAN_FIELDS = (
    "join_s",
    "settle_s",
    "bytes_per_node_s",
    "packets_per_node_s",
    "t50_s",
    "t99_s",
    "t9999_s",
    "t_all_s",
    "first_dead_s",
    "all_dead_s",
)


def summarize(runs: list[SizeRun]) -> dict[str, float | int | None]:
    """Medians over runs (None when any run missed the mark); false positives summed."""
    out: dict[str, float | int | None] = {"runs": len(runs)}
    for name in _MEDIAN_FIELDS:
        values = [getattr(r, name) for r in runs]
        out[name] = None if None in values else round(statistics.median(values), 4)
    out["false_failed"] = sum(r.false_failed for r in runs)
    out["false_suspects"] = sum(r.false_suspects for r in runs)
    out["wall_join_s"] = round(statistics.median(r.wall_s["join"] for r in runs), 2)
    out["wall_total_s"] = round(statistics.median(r.wall_s["total"] for r in runs), 2)
    out["cpu_total_s"] = round(statistics.median(r.cpu_s["total"] for r in runs), 2)
    t9999 = out["t9999_s"]
    if runs[0].n == SERF_MODEL["n"] and isinstance(t9999, float):
        out["ratio_vs_serf_model"] = round(t9999 / SERF_MODEL["seconds"], 3)
    return out


def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(summaries: dict[int, dict[str, float | int | None]]) -> str:
    head = (
        "| N | join (virt s) | 50 % (s) | 99.99 % (s) | all (s) | vs Serf model "
        "| first dead (s) | all dead (s) | B/node/s | pkt/node/s | false FAILED "
        "| false SUSPECT | wall join (s) | wall total (s) | CPU total (s) |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for n, s in sorted(summaries.items()):
        ratio = s.get("ratio_vs_serf_model")
        rows.append(
            "| "
            + " | ".join(
                [
                    f"{n:,}",
                    _fmt(s["join_s"], 1),
                    _fmt(s["t50_s"]),
                    _fmt(s["t9999_s"]),
                    _fmt(s["t_all_s"]),
                    "—" if ratio is None else f"{ratio:.2f}× (2.2 s)",
                    _fmt(s["first_dead_s"]),
                    _fmt(s["all_dead_s"]),
                    _fmt(s["bytes_per_node_s"], 0),
                    _fmt(s["packets_per_node_s"]),
                    _fmt(s["false_failed"]),
                    _fmt(s["false_suspects"]),
                    _fmt(s["wall_join_s"], 1),
                    _fmt(s["wall_total_s"], 1),
                    _fmt(s["cpu_total_s"], 1),
                ]
            )
            + " |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------------- CLI


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: not a list of integers: {text!r}") from None
    if not sizes or min(sizes) < 3:
        raise argparse.ArgumentTypeError(f"--sizes: each size must be >= 3, got {text!r}")
    return sizes


def check_memory(sizes: list[int], converged_from: int) -> None:
    """Refuse, before hours of work, a size whose N^2 tables cannot fit in free memory."""
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for n in sizes:
        build = "converged" if n >= converged_from else "join"
        need = n * n * BYTES_PER_RECORD[build]
        if need > 0.8 * free:
            raise SystemExit(
                f"--sizes: N={n:,} ({build}) needs about {need / 2**30:.1f} GiB for the "
                f"simulated member tables (N^2 x {BYTES_PER_RECORD[build]} B); "
                f"{free / 2**30:.1f} GiB is free"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[100, 1000], help="e.g. 100,1000,10000")
    parser.add_argument("--seed", type=int, default=1, help="run r uses seed + r")
    parser.add_argument("--runs", type=int, default=1, help="runs per size (medians reported)")
    parser.add_argument(
        "--converged-from",
        type=int,
        default=5000,
        help="sizes from this one on start converged instead of joining (memory)",
    )
    parser.add_argument(
        "--all-connected",
        action="store_true",
        help="count every pair of nodes as connected (early rounds to any member)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/membership_sim.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/img/membership_dissemination.png")
    args = parser.parse_args()
    check_memory(args.sizes, args.converged_from)
    config = membership_preset("lan")
    results: dict[int, list[SizeRun]] = {}
    for n in args.sizes:
        for r in range(args.runs):
            converged = n >= args.converged_from
            run = measure_size(
                n,
                args.seed + r,
                config=config,
                converged=converged,
                connections=not args.all_connected,
            )
            results.setdefault(n, []).append(run)
            print(f"N={n} seed={run.seed}: wall {run.wall_s} cpu {run.cpu_s}", flush=True)
    summaries = {n: summarize(runs) for n, runs in results.items()}
    print()
    print(markdown_table(summaries))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "config": asdict(config),
        "join_plan": asdict(JoinPlan()),
        "converged_from": args.converged_from,
        "serf_model": SERF_MODEL,
        "sizes": {
            str(n): {"summary": summaries[n], "runs": [asdict(r) for r in runs]}
            for n, runs in results.items()
        },
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    from membership_sim_plot import plot_dissemination  # matplotlib only when plotting

    plot_dissemination({n: runs[0].curve for n, runs in results.items()}, SERF_MODEL, args.plot)
    print(f"\nwrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
