"""Session affinity: what consistent hashing moves when a peer is lost, and how even it
spreads load, with and without the bound of bounded loads, side by side in one run.

Measured on the ring that ships (`skyfleet.balancing.affinity.HashRing`, 160 virtual
nodes per peer by default), for each fleet size N, with S sessions placed one task at a time in a
seeded order and every task held (no task ends during the placement):

- moved on losing one peer: the share of sessions whose peer differs once the same
  sessions are placed again without it, as a multiple of 1/N (1.0 = only the lost
  peer's share moved), averaged over a few lost peers;
- max/mean load when every session holds one task, and the bound's own ceiling,
  ceil(c x mean) / mean;
- max/mean load when sessions hold Zipf-distributed numbers of tasks (5 per session on
  average, the heaviest session a tenth of all: where a hot session overloads its owner
  unless bounded), and the share of tasks the bound sent past their session's owner
  (what the balance costs).

Run from the repository root (about 9 s on two cores; JSON to bench/out/):
    .venv/bin/python bench/session_affinity.py
    .venv/bin/python bench/session_affinity.py --peers 9 30 --factors 1.1 1.25 1.5 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skyfleet.balancing.affinity import HashRing
from skyfleet.config import policy_defaults as d

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "out" / "session_affinity.json"


def names(n: int) -> list[str]:
    return [f"host-{i}" for i in range(n)]


def ring(peers: Iterable[str], virtual_nodes: int) -> HashRing:
    return HashRing(dict.fromkeys(peers, 1.0), virtual_nodes)


def place(
    r: HashRing, peers: list[str], tasks: list[str], factor: float
) -> tuple[dict[str, int], list[str]]:
    """Place `tasks` (a session key per task) in order, each held; factor 0: plain hashing.
    The loads at the end, and the peer each task went to."""
    loads = dict.fromkeys(peers, 0)
    went = []
    for key in tasks:
        peer = r.pick(key, loads, factor)
        loads[peer] += 1
        went.append(peer)
    return loads, went


def max_over_mean(loads: dict[str, int]) -> float:
    return max(loads.values()) / (sum(loads.values()) / len(loads))


def zipf_tasks(sessions: list[str], exponent: float, rng: random.Random) -> list[str]:
    """One entry per task: session of rank r holds ~5 S / (H r^exponent) tasks (at least
    one), the ranks dealt to sessions at random; the list is shuffled, so the sessions'
    tasks arrive interleaved."""
    ranks = list(range(1, len(sessions) + 1))
    rng.shuffle(ranks)
    harmonic = sum(1 / r**exponent for r in ranks)
    tasks = [
        s
        for s, r in zip(sessions, ranks, strict=True)
        for _ in range(max(1, round(5 * len(sessions) / (harmonic * r**exponent))))
    ]
    rng.shuffle(tasks)
    return tasks


def measure(n: int, sessions: list[str], factors: list[float], args: argparse.Namespace,
            rng: random.Random) -> list[dict[str, Any]]:
    peers = names(n)
    full = ring(peers, args.virtual_nodes)
    lost = rng.sample(peers, min(n, args.lost))
    smaller = {p: ring([q for q in peers if q != p], args.virtual_nodes) for p in lost}

    def moved(factor: float) -> float:
        _, before = place(full, peers, sessions, factor)
        shares = []
        for p in lost:
            _, after = place(smaller[p], [q for q in peers if q != p], sessions, factor)
            shares.append(sum(a != b for a, b in zip(before, after, strict=True)) / len(sessions))
        return sum(shares) / len(shares) * n

    tasks = zipf_tasks(sessions, args.zipf, rng)
    heaviest = max(Counter(tasks).values()) / len(tasks)
    plain_moved = moved(0.0)
    plain_unit = max_over_mean(place(full, peers, sessions, 0.0)[0])
    plain_zipf, owners = place(full, peers, tasks, 0.0)
    rows = []
    for factor in factors:
        mean = len(sessions) / n
        bounded_zipf, went = place(full, peers, tasks, factor)
        off_owner = sum(a != b for a, b in zip(owners, went, strict=True))
        rows.append({
            "peers": n,
            "factor": factor,
            "moved_hash_x_1_over_n": plain_moved,
            "moved_bounded_x_1_over_n": moved(factor),
            "unit_max_over_mean_hash": plain_unit,
            "unit_max_over_mean_bounded": max_over_mean(place(full, peers, sessions, factor)[0]),
            "unit_bound_over_mean": math.ceil(factor * mean) / mean,
            "zipf_max_over_mean_hash": max_over_mean(plain_zipf),
            "zipf_max_over_mean_bounded": max_over_mean(bounded_zipf),
            "zipf_heaviest_session_share": heaviest,
            "zipf_tasks_off_owner_bounded": off_owner / len(tasks),
            "zipf_tasks": len(tasks),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| peers | c | moved on losing 1 peer, x 1/N: hash | bounded | "
        "max/mean, 1 task per session: hash | bounded | ceiling ceil(c·mean)/mean | "
        "max/mean, Zipf tasks: hash | bounded | Zipf tasks past their owner (bounded) |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['peers']} | {r['factor']:g} | {r['moved_hash_x_1_over_n']:.2f} | "
            f"{r['moved_bounded_x_1_over_n']:.2f} | {r['unit_max_over_mean_hash']:.2f} | "
            f"{r['unit_max_over_mean_bounded']:.2f} | {r['unit_bound_over_mean']:.2f} | "
            f"{r['zipf_max_over_mean_hash']:.2f} | {r['zipf_max_over_mean_bounded']:.2f} | "
            f"{100 * r['zipf_tasks_off_owner_bounded']:.1f} % |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[9, 30, 100])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--factors", type=float, nargs="+", default=[d.SESSION_LOAD_FACTOR, 1.5],
                        help="bounds c compared (the policy's sessions.load_factor)")
    parser.add_argument("--virtual-nodes", type=int, default=d.SESSION_VIRTUAL_NODES,
                        help="ring points per peer (the policy's sessions.virtual_nodes)")
    parser.add_argument("--zipf", type=float, default=1.0, help="exponent of the skewed case")
    parser.add_argument("--lost", type=int, default=5, help="lost peers averaged over per N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if min(args.peers) < 2 or min(args.sessions, args.virtual_nodes, args.lost) < 1:
        parser.error("--peers must be at least 2; --sessions, --virtual-nodes, --lost 1")
    if any(f <= 1 for f in args.factors):
        parser.error("--factors must be > 1 (sessions.load_factor)")

    started = time.perf_counter()
    rng = random.Random(args.seed)
    sessions = [f"session-{rng.getrandbits(64):016x}" for _ in range(args.sessions)]
    rows = [row for n in args.peers for row in measure(n, sessions, args.factors, args, rng)]
    seconds = time.perf_counter() - started

    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.sessions} sessions, {args.virtual_nodes} virtual nodes per peer, Zipf exponent "
          f"{args.zipf:g} ({rows[0]['zipf_tasks']} tasks, heaviest session "
          f"{100 * rows[0]['zipf_heaviest_session_share']:.1f} % of them), seed {args.seed}, "
          f"{seconds:.1f} s")
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "rows": rows,
        "seconds": seconds,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
