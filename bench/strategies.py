"""Balancing strategies compared in the task simulator, against the pooled-queue limit.

Every run drives the real `skyfleet.balancing.Balancer` (one per simulated host, as in
the agent) through `skyfleet.sim.tasks.TaskSim`, whose hosts run the agent's membership
core: statuses reach the balancers by SWIM gossip, dated by their measurement, with the
router's own bookkeeping of sends since (`skyfleet.tasks.peer_views`). Besides response
times, the tables give the waiting time (response less service) against the pooled
queue's: the sojourn ratio hides it under the service time. References per scenario:

- pooled: one FIFO queue over every slot — exact Erlang C for exponential service
  without events, simulated otherwise (`skyfleet.sim.task_pooled`);
- jsq: least_loaded on fresh information (true load, tasks on the wire included).

Output: markdown tables on stdout, the issue's bars for p2c checked, every record in
bench/out/strategies.json, and plots in docs/img/.

Run from the repository root:
    .venv/bin/python bench/strategies.py --quick        # < 1 minute
    .venv/bin/python bench/strategies.py                # default grid, ~10 min on 2 cores
    .venv/bin/python bench/strategies.py --full         # the issue's whole grid (hours)
    .venv/bin/python bench/strategies.py --quick --seed 2   # the same cases, other draws
    .venv/bin/python bench/strategies.py --where fleet=3x3 --where gossip=10.0 --seed 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from strategies_grid import EVENT_END, EVENT_START, Case, default_grid, full_grid, quick_grid
from strategies_report import bars, tables, wins

from skyfleet.sim.task_pooled import simulate_pooled
from skyfleet.sim.task_reference import (
    mmc_mean_response,
    mmc_mean_wait,
    mmc_response_quantile,
    mmc_wait_quantile,
)
from skyfleet.sim.task_stats import series, summarise
from skyfleet.sim.tasks import TaskSim

ROOT = Path(__file__).resolve().parent.parent


def exact_pooled(case: Case) -> dict[str, Any]:
    """Erlang C figures for the pooled queue of the case's fleet."""
    sc = case.scenario
    c, lam = sc.total_slots, sc.arrival_rate
    p50, p99, p999 = (mmc_response_quantile(q, c, lam) for q in (0.5, 0.99, 0.999))
    mean = mmc_mean_response(c, lam)
    return {
        "tasks": 0, "mean": mean, "p50": p50, "p99": p99, "p999": p999,
        "wait_mean": mmc_mean_wait(c, lam), "wait_p99": mmc_wait_quantile(0.99, c, lam),
        "failed": 0, "unfinished": 0, "retries": 0, "drift": 1.0, "stable": True,
    }  # fmt: skip


def run_case(case: Case) -> dict[str, Any]:
    sc = case.scenario
    started = time.perf_counter()
    record: dict[str, Any] = {
        "group": case.group,
        "labels": dict(sc.labels),
        "strategy": case.strategy,
        "locality": case.locality,
        "window": None,
    }
    if case.strategy == "pooled" and sc.service == "exponential" and not sc.events:
        record["summary"] = exact_pooled(case)
        record["pooled_exact"] = True
    else:
        run = simulate_pooled(sc) if case.strategy == "pooled" else TaskSim(sc, case.policy()).run()
        record["summary"] = summarise(run).as_dict()
        if sc.events:
            record["window"] = summarise(run, (EVENT_START, EVENT_END)).as_dict()
            record["series"] = series(run, sc.series_bin, sc.duration)
    record["seconds"] = time.perf_counter() - started
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="under a minute")
    mode.add_argument("--full", action="store_true", help="the issue's whole grid (hours)")
    ap.add_argument("--scale", type=float, default=1.0, help="run length multiplier (default)")
    ap.add_argument("--seed", type=int, default=1, help="seed of every case (default 1)")
    ap.add_argument(
        "--where", action="append", default=[], metavar="LABEL=VALUE",
        help="only the cases whose scenario has this label (repeatable): fleet=3x3, gossip=10.0",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/strategies.json")
    ap.add_argument("--img", type=Path, default=ROOT / "docs/img")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    cases = quick_grid() if args.quick else full_grid() if args.full else default_grid(args.scale)
    cases = [replace(c, scenario=replace(c.scenario, seed=args.seed)) for c in cases]
    for condition in args.where:
        label, sep, value = condition.partition("=")
        if not sep:
            ap.error(f"--where {condition!r}: expected LABEL=VALUE")
        cases = [c for c in cases if c.scenario.labels.get(label) == value]
    if not cases:
        ap.error("--where: no case matches")
    # Longest first, so the pool does not end on one straggler.
    order = sorted(range(len(cases)), key=lambda i: -cases[i].scenario.arrival_rate)
    started = time.perf_counter()
    results: list[dict[str, Any] | None] = [None] * len(cases)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        done = pool.imap(run_case, [cases[i] for i in order])
        for n, (i, rec) in enumerate(zip(order, done, strict=True), 1):
            results[i] = rec
            print(f"[{n}/{len(cases)}] {rec['group']} {rec['strategy']} "
                  f"{rec['labels']} {rec['seconds']:.1f}s", file=sys.stderr)  # fmt: skip
    records = [r for r in results if r is not None]
    wall = time.perf_counter() - started
    print(tables(records))
    print("## Bars (p2c, the default)\n")
    checked = bars(records)
    for bar, met, figures in checked:
        print(f"- {'MET' if met else 'NOT MET'}: {bar} — {figures}")
    print("\n## Where adaptive is best (vs p2c, peak_ewma)\n")
    print("\n".join(wins(records, "adaptive", ("p2c", "peak_ewma"))) or "- nowhere")
    print(f"\n{len(records)} runs in {wall:.0f} s wall on {args.workers} workers")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "mode": "quick" if args.quick else "full" if args.full else "default",
        "seed": args.seed,
        "wall_seconds": wall,
        "bars": [{"bar": b, "met": m, "figures": f} for b, m, f in checked],
        "records": records,
    }
    args.out.write_text(json.dumps(payload, indent=1, allow_nan=True))
    if not args.no_plots:
        from strategies_plot import plot_all

        for path in plot_all(records, args.img):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
