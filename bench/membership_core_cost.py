"""CPU cost of the membership core itself, this tree against a baseline checkout, in one
invocation: the same simulated workloads (fixed seeds, so both trees do the same
protocol work) run alternately in child processes, each importing `skyfleet` from its
own tree; the ratio of medians is the change's cost.

Workloads: a converged 300-node fleet for 20 virtual seconds, then a crash detected for
10 more (steady probing, gossip, suspicion); a 120-node join burst through 3 seeds, then
10 virtual seconds (news, catch-up, push-pull).

    git clone -q . /tmp/base && git -C /tmp/base checkout -q REV
    .venv/bin/python bench/membership_core_cost.py --baseline /tmp/base   # ~2 min
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKLOADS = {
    "converged 300, 30 virtual s": """
from membership_sim_phases import node_names
from skyfleet.config import membership_preset
from skyfleet.sim import SimCluster
cluster = SimCluster(membership_preset("lan"), seed=1)
cluster.add_converged(node_names(300))
cluster.run_for(20.0)
cluster.crash(node_names(300)[150])
cluster.run_for(10.0)
""",
    "join burst 120, +10 virtual s": """
from membership_sim_phases import EventTally, JoinPlan, build_fleet
from skyfleet.config import membership_preset
from skyfleet.sim import SimCluster
cluster = SimCluster(membership_preset("lan"), seed=1)
build_fleet(cluster, EventTally(), 120, JoinPlan(seeds=3, batch=40, gap=0.1, timeout=120.0))
cluster.run_for(10.0)
""",
}
_TIMED = "import time\n_t = time.process_time()\n{body}\nprint(time.process_time() - _t)\n"


def cpu_seconds(tree: Path, body: str) -> float:
    """One run's CPU seconds (imports excluded), `skyfleet` taken from `tree`."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'runtime'}{os.pathsep}{ROOT / 'bench'}"}
    done = subprocess.run([sys.executable, "-c", _TIMED.format(body=body)], env=env,
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", type=Path, required=True, metavar="CHECKOUT")
    ap.add_argument("--runs", type=int, default=5, help="runs per tree and workload")
    args = ap.parse_args()
    if not (args.baseline / "runtime" / "skyfleet").is_dir():
        ap.error(f"--baseline: {args.baseline} has no runtime/skyfleet")
    print("| workload | baseline CPU s (median) | this tree | ratio |")
    print("|---|---|---|---|")
    for name, body in WORKLOADS.items():
        base: list[float] = []
        here: list[float] = []
        for _ in range(args.runs):  # alternating, so drift in the machine hits both
            base.append(cpu_seconds(args.baseline, body))
            here.append(cpu_seconds(ROOT, body))
        b, h = statistics.median(base), statistics.median(here)
        print(f"| {name} | {b:.2f} ({min(base):.2f}–{max(base):.2f}) | "
              f"{h:.2f} ({min(here):.2f}–{max(here):.2f}) | {h / b:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
