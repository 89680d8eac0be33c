"""How old is the status a balancer picks on? Status gossip's delivery, measured in the
task simulator (every host runs the agent's membership core), with each holder sending a
load status at least once (`membership.status_min_transmits` 1, the rule before) and at
least three times (the default), side by side in one invocation.

Per fleet (3 clouds x H hosts, p2c, load 0.9, 1 s tasks, the shipped membership
settings otherwise): the age of the status behind every remote pick (from its
measurement to the pick), membership bytes sent per node per second, and p2c's mean
response and mean wait against the pooled queue's (Erlang C).

Run from the repository root:
    .venv/bin/python bench/status_age.py                       # ~2 min on one core
    .venv/bin/python bench/status_age.py --hosts 3 10 30 --scale 0.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from strategies_grid import Case, scenario

from skyfleet.config.membership import MembershipConfig
from skyfleet.sim.task_reference import mmc_mean_response, mmc_mean_wait
from skyfleet.sim.task_stats import summarise
from skyfleet.sim.tasks import TaskSim

ROOT = Path(__file__).resolve().parent.parent
RULES = {"at least 1 (before)": 1, "at least 3 (default)": MembershipConfig().status_min_transmits}


def measure(hosts: int, least: int, scale: float, seed: int) -> dict[str, Any]:
    sc = scenario(hosts=hosts, load=0.9, scale=scale, seed=seed)
    sc = replace(sc, membership=replace(sc.membership, status_min_transmits=least))
    sim = TaskSim(sc, Case("age", sc, "p2c").policy())
    started = time.perf_counter()
    run = sim.run()
    seconds = time.perf_counter() - started
    s = summarise(run)
    ages = run.pick_age
    nodes = sim.fleet.nodes.values()
    span = sc.duration * sim.unit
    return {
        "hosts": 3 * hosts,
        "least": least,
        "age_mean": float(ages.mean()),
        "age_p50": float(np.quantile(ages, 0.5)),
        "age_p99": float(np.quantile(ages, 0.99)),
        "bytes_per_node_s": sum(n.bytes_sent for n in nodes) / len(nodes) / span,
        "mean_x_pooled": s.mean / mmc_mean_response(sc.total_slots, sc.arrival_rate),
        "wait_x_pooled": s.wait_mean / mmc_mean_wait(sc.total_slots, sc.arrival_rate),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", type=int, nargs="+", default=[3, 10], help="hosts per cloud")
    ap.add_argument("--scale", type=float, default=1.0, help="run length (the grid's scale)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/status_age.json")
    args = ap.parse_args(argv)
    rows = []
    print("| fleet | status sent by each holder | pick age mean / p50 / p99 (s) "
          "| membership kB/s per node | p2c mean × pooled | wait × pooled |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|")
    for hosts in args.hosts:
        for rule, least in RULES.items():
            r = measure(hosts, least, args.scale, args.seed)
            rows.append(r)
            print(
                f"| 3×{hosts} | {rule} | {r['age_mean']:.2f} / {r['age_p50']:.2f} / "
                f"{r['age_p99']:.2f} | {r['bytes_per_node_s'] / 1000:.1f} "
                f"| {r['mean_x_pooled']:.2f} | {r['wait_x_pooled']:.1f} |",
                flush=True,
            )
            print(f"  ({r['seconds']:.0f} s)", file=sys.stderr)
        before, after = rows[-2], rows[-1]
        print(
            f"|  | ratio default / before | {after['age_mean'] / before['age_mean']:.2f} "
            f"| {after['bytes_per_node_s'] / before['bytes_per_node_s']:.2f} "
            f"| {after['mean_x_pooled'] / before['mean_x_pooled']:.2f} "
            f"| {after['wait_x_pooled'] / before['wait_x_pooled']:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"scale": args.scale, "seed": args.seed, "rows": rows}
    args.out.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
