"""Policy propagation: time from an admin's Publish to 100 % of live agents on the new
version, against the bar "membership dissemination time at the same N plus one pull
round trip", both measured in the same invocation.

- Real agents (`--real-sizes`, default 10 20): a `LocalFleet` on 127.0.0.1 with the LAN
  membership profile; see `policy_realproc_run.py` for what one run does.
- Simulator (`--sim-sizes`, default 1000): the agents' own cores on virtual time; see
  `policy_sim_run.py`. Times are virtual seconds; the wall time is printed.

Run from the repository root:
    .venv/bin/python bench/policy_propagation.py --quick     # real N=5, sim N=200: ~30 s
    .venv/bin/python bench/policy_propagation.py --sim-sizes  # real 10, 20 x 3: ~5-8 min
    .venv/bin/python bench/policy_propagation.py --real-sizes --sim-sizes 400 1000

Simulator wall time grows steeply: N=400 takes about 1.5 min, N=1,000 about 20 min of
CPU (the join, and the fresh-status phase, whose news crawls: see the table). N = 10,000
needs about N^2 x 320 B of member tables (30 GiB) and, extrapolating the join, a day of
CPU; the size check refuses it up front when memory is short.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from membership_sim import check_memory
from membership_sim_phases import JoinPlan
from policy_sim_run import SimRun, run_size, signed_pair, verify_cost

from skyfleet.config import membership_preset
from skyfleet.policy.signing import TrustedKeys, generate_signing_key

ROOT = Path(__file__).resolve().parent.parent


def _median(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return round(statistics.median(clean), 4) if len(clean) == len(values) and clean else None


def _spread(values: list[float | None]) -> str:
    clean = [v for v in values if v is not None]
    if not clean:
        return "—"
    med = statistics.median(clean)
    missing = "" if len(clean) == len(values) else f" [{len(clean)}/{len(values)}]"
    if len(clean) == 1:
        return f"{med:.2f}{missing}"
    return f"{med:.2f} ({min(clean):.2f}–{max(clean):.2f}){missing}"


def ratio(policy: float | None, dissemination: float | None, rtt: float | None) -> float | None:
    """Policy time over the bar; at most 1 meets it."""
    if policy is None or dissemination is None or rtt is None:
        return None
    return policy / (dissemination + rtt)


def sim_rows(runs: dict[int, list[SimRun]]) -> list[str]:
    rows = []
    for n, rs in sorted(runs.items()):
        by_status = [ratio(r.policy_all_s, r.status_all_s, r.pull_rtt_s) for r in rs]
        by_alive = [ratio(r.policy_all_s, r.alive_all_s, r.pull_rtt_s) for r in rs]
        rtt = [None if r.pull_rtt_s is None else r.pull_rtt_s * 1000 for r in rs]
        rows.append(
            f"| sim | {n:,} | {len(rs)} | {_spread([r.policy_half_s for r in rs])} "
            f"| {_spread([r.policy_all_s for r in rs])} | {_spread([r.alive_all_s for r in rs])} "
            f"| {_spread([r.status_all_s for r in rs])} | {_spread(rtt)} ms "
            f"| {_spread(by_alive)} | {_spread(by_status)} "
            f"| {statistics.median(sum(r.wall_s.values()) for r in rs):.0f} |"
        )
    return rows


def real_rows(runs: dict[int, list[Any]]) -> list[str]:
    rows = []
    for n, rs in sorted(runs.items()):
        by_join = [ratio(r.policy_all_s, r.join_all_s, r.fetch_rtt_s) for r in rs]
        rtt = [None if r.fetch_rtt_s is None else r.fetch_rtt_s * 1000 for r in rs]
        rows.append(
            f"| real | {n} | {len(rs)} | {_spread([r.policy_half_s for r in rs])} "
            f"| {_spread([r.policy_all_s for r in rs])} | {_spread([r.join_all_s for r in rs])} "
            f"| — | {_spread(rtt)} ms | {_spread(by_join)} | — "
            f"| {statistics.median(r.wall_s for r in rs):.0f} |"
        )
    return rows


HEAD = (
    "| where | N | runs | 50 % on v2 (s) | 100 % on v2 (s) | fresh alive to all (s) "
    "| fresh status to all (s) | pull RTT | ratio vs alive + RTT | ratio vs status + RTT "
    "| wall (s) |"
)


def markdown(sim: dict[int, list[SimRun]], real: dict[int, list[Any]]) -> str:
    lines = [HEAD, "|" + "---|" * (HEAD.count("|") - 1)]
    return "\n".join(lines + real_rows(real) + sim_rows(sim))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-sizes", type=int, nargs="*", default=[10, 20])
    parser.add_argument("--sim-sizes", type=int, nargs="*", default=[1000])
    parser.add_argument("--runs", type=int, default=3, help="real runs per size (medians)")
    parser.add_argument("--sim-runs", type=int, default=1, help="simulated runs per size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--converged-from",
        type=int,
        default=5000,
        help="simulated sizes from this one on start converged instead of joining (memory)",
    )
    parser.add_argument("--quick", action="store_true", help="real N=5, sim N=200, 1 run each")
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/policy_propagation.json")
    args = parser.parse_args()
    if args.quick:
        args.real_sizes, args.sim_sizes, args.runs, args.sim_runs = [5], [200], 1, 1
    check_memory(args.sim_sizes, args.converged_from)
    config = membership_preset("lan")

    real: dict[int, list[Any]] = {}
    if args.real_sizes:
        from policy_realproc_run import run_real_sizes  # starts processes: only if asked

        real = asyncio.run(run_real_sizes(args.real_sizes, args.runs, args.keep_workdir))
    sim: dict[int, list[SimRun]] = {}
    for n in args.sim_sizes:
        for r in range(args.sim_runs):
            converged = n >= args.converged_from
            run = run_size(n, args.seed + r, config, plan=JoinPlan(), converged=converged)
            sim.setdefault(n, []).append(run)
            print(f"sim N={n} seed={run.seed}: {asdict(run)}", flush=True)

    key, public = generate_signing_key()
    per_offer = verify_cost(signed_pair(key)[1], TrustedKeys.from_pems([public]))
    print()
    print(markdown(sim, real))
    print(
        f"\nparse + verify one envelope: {per_offer * 1e3:.2f} ms of CPU per node "
        f"({per_offer * 10_000:.1f} s for 10,000 nodes); every simulated node verifies."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "membership_config": asdict(config),
        "verify_seconds_per_node": per_offer,
        "real": {str(n): [asdict(r) for r in rs] for n, rs in real.items()},
        "sim": {str(n): [asdict(r) for r in rs] for n, rs in sim.items()},
        "summary": {
            "sim": {
                str(n): {
                    "policy_all_s": _median([r.policy_all_s for r in rs]),
                    "alive_all_s": _median([r.alive_all_s for r in rs]),
                    "status_all_s": _median([r.status_all_s for r in rs]),
                    "pull_rtt_s": _median([r.pull_rtt_s for r in rs]),
                }
                for n, rs in sim.items()
            },
            "real": {
                str(n): {
                    "policy_all_s": _median([r.policy_all_s for r in rs]),
                    "join_all_s": _median([r.join_all_s for r in rs]),
                    "fetch_rtt_s": _median([r.fetch_rtt_s for r in rs]),
                }
                for n, rs in real.items()
            },
        },
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
