"""Skyfleet's join and gossip refinements against memberlist's periodic rounds, on the
same simulated cores in one invocation.

1. Join burst: N nodes start alone; at one instant N-1 of them join through node 0 (the
   membership benchmark's "join on command"); virtual time until every node sees every
   node alive, over many seeds (median, p90, worst).
2. Dissemination: a converged fleet of `--dissemination-n` nodes; one node refutes a
   suspicion; time until 99.99 % of the nodes hold it (`membership_sim_phases`).

All with the LAN preset. "memberlist" sets `gossip_eager_gap = gossip_interval` (periodic
rounds only) and `join_catch_up_window = 0` (a seed does not complete the tables it
handed out); the middle row adds the early round alone, the last is Skyfleet's default.
The simulator models connections as the agent has them, so early rounds go only to
members a node has already exchanged packets with. Run from the repository root:
    .venv/bin/python bench/membership_sim_join.py          # ~1 min
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

from membership_sim_phases import EventTally, disseminate_refutation, node_names

from skyfleet.config import MembershipConfig, membership_preset
from skyfleet.sim import SimCluster

STEP = 0.01
"""Virtual seconds between convergence checks: every time is late by at most this."""


def join_burst(config: MembershipConfig, n: int, seed: int) -> float:
    cluster = SimCluster(config, seed=seed)
    names = node_names(n)
    cluster.add_node(names[0])
    cluster.run_for(0.5)
    for name in names[1:]:
        cluster.add_node(name, seeds=(cluster.address(names[0]),))
    took = cluster.run_until_true(cluster.converged, timeout=60.0, step=STEP)
    if took is None:
        raise RuntimeError(f"N={n} seed={seed}: no convergence within 60 virtual s")
    return took


def dissemination(config: MembershipConfig, n: int, seed: int) -> float | None:
    cluster = SimCluster(config, seed=seed)
    cluster.add_converged(node_names(n))
    cluster.run_for(5.0)
    spread = disseminate_refutation(
        cluster, EventTally(), node_names(n)[n // 2], step=STEP, timeout=30.0
    )
    return spread.t9999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--dissemination-n", type=int, default=1000)
    args = parser.parse_args()
    lan = membership_preset("lan")
    no_catch_up = replace(lan, join_catch_up_window=0.0)
    configs = {
        "periodic rounds (memberlist)": replace(no_catch_up, gossip_eager_gap=lan.gossip_interval),
        "+ early rounds": no_catch_up,
        "+ join catch-up (Skyfleet)": lan,
    }
    print("| N | gossip | join median (s) | p90 (s) | worst (s) |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        for label, config in configs.items():
            times = sorted(join_burst(config, n, seed) for seed in range(args.seeds))
            p90 = times[int(0.9 * len(times))]
            print(
                f"| {n} | {label} | {statistics.median(times):.2f} | {p90:.2f} | {times[-1]:.2f} |",
                flush=True,
            )
    n = args.dissemination_n
    print("\n| N | gossip | 99.99 % informed (s) |\n|---|---|---|")
    for label, config in configs.items():
        t = dissemination(config, n, seed=1)
        print(f"| {n:,} | {label} | {'—' if t is None else f'{t:.2f}'} |", flush=True)


if __name__ == "__main__":
    main()
