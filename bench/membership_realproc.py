"""Real-process membership benchmark: Skyfleet side by side with HashiCorp Serf.

    sudo .venv/bin/python bench/membership_realproc.py --sizes 5 10 20 --runs 3 \\
        --out bench/out/membership_realproc.json

For each N and run, both systems (order alternating between runs, so drift in the
machine's load hits both alike) start N real agents on 127.0.0.1 with the LAN profile and
are measured for: join convergence, failure detection after `kill -9`, bytes and CPU per
node in steady state, and false positives. See membership_run.py for the phases and
membership_recorder.py for the exact rules; bench/README.md for how to read the table.

Needs root (iptables byte accounting on `lo`), `serf` on PATH and the `msgpack` package.
Every agent and the iptables chain are removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from membership_iptables import LoopbackByteCounter
from membership_procs import PortAllocator
from membership_report import as_json, markdown_table, summaries
from membership_run import RunResult, RunSettings, run_once
from membership_systems import MembershipSystem

SYSTEMS = ("skyfleet", "serf")
_DEFAULTS = RunSettings()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20], metavar="N")
    parser.add_argument("--runs", type=int, default=3, help="runs per system and N")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--out", type=Path, help="write all runs and summaries as JSON here")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also run the agents of another checkout (e.g. a git worktree of an older "
        "commit) as Skyfleet-baseline, and compare Skyfleet with it",
    )
    parser.add_argument("--poll-interval", type=float, default=_DEFAULTS.poll_interval)
    parser.add_argument("--steady-window", type=float, default=_DEFAULTS.steady_window)
    parser.add_argument("--settle", type=float, default=_DEFAULTS.settle)
    parser.add_argument("--join-timeout", type=float, default=_DEFAULTS.join_timeout)
    parser.add_argument("--detect-timeout", type=float, default=_DEFAULTS.detect_timeout)
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep agent logs, configs and certs"
    )
    args = parser.parse_args(argv)
    if any(n < 3 for n in args.sizes):
        parser.error("--sizes: every N must be at least 3 (a seed, a victim, an observer)")
    if args.runs < 1:
        parser.error("--runs: at least 1")
    if min(args.poll_interval, args.steady_window) <= 0:
        parser.error("--poll-interval and --steady-window must be positive")
    return args


def build_systems(chosen: list[str], baseline: Path | None = None) -> list[MembershipSystem]:
    systems: list[MembershipSystem] = []
    if baseline is not None:
        from membership_skyfleet import SkyfleetSystem

        systems.append(SkyfleetSystem(runtime=baseline / "runtime"))
    for name in SYSTEMS:  # fixed order: Skyfleet first in the table
        if name not in chosen:
            continue
        if name == "skyfleet":
            from membership_skyfleet import SkyfleetSystem

            systems.append(SkyfleetSystem())
        else:
            from membership_serf import SerfSystem

            systems.append(SerfSystem())
    return systems


def _progress(result: RunResult) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "—" if value is None else fmt.format(value)

    text = (
        f"{result.system:8} N={result.n:<3} run {result.run + 1}: "
        f"join {num(result.join_s, '{:.2f}')} s, "
        f"detect all {num(result.detect_all_s, '{:.2f}')} s "
        f"(first {num(result.detect_first_s, '{:.2f}')} s), "
        f"{num(result.bytes_per_node_s, '{:.0f}')} B/node/s "
        f"(udp {num(result.bytes_per_node_s_by_proto.get('udp'), '{:.0f}')}, "
        f"tcp {num(result.bytes_per_node_s_by_proto.get('tcp'), '{:.0f}')}), "
        f"cpu {num(result.cpu_per_node_pct, '{:.1f}')} %/node, "
        f"false deaths {result.false_deaths}, "
        f"poll gap p95 {num(result.poll_gap_ms.get('p95'), '{:.0f}')} ms"
    )
    if result.slowest_pair and result.join_s is not None:
        observer, subject, at = result.slowest_pair
        text += f"\n    last to converge: {observer} saw {subject} alive at {at:.2f} s"
    return text + (f"\n    ERROR {result.error}" if result.error else "")


async def bench(args: argparse.Namespace, work_dir: Path) -> list[RunResult]:
    # SIGTERM ends the bench like Ctrl-C: cancellation runs every cleanup `finally`.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

    settings = RunSettings(
        poll_interval=args.poll_interval,
        steady_window=args.steady_window,
        settle=args.settle,
        join_timeout=args.join_timeout,
        detect_timeout=args.detect_timeout,
    )
    systems = build_systems(args.systems, args.baseline)
    names = {s.label: [f"{s.label.lower()}-{i}" for i in range(max(args.sizes))] for s in systems}
    for system in systems:
        system.prepare(names[system.label], work_dir / system.label.lower())
    ports = PortAllocator()
    results: list[RunResult] = []
    with LoopbackByteCounter() as counter:
        for n in args.sizes:
            for run in range(args.runs):
                order = systems if run % 2 == 0 else systems[::-1]
                for system in order:
                    run_dir = work_dir / system.label.lower() / f"n{n}-run{run + 1}"
                    result = await run_once(
                        system,
                        names[system.label][:n],
                        run,
                        settings=settings,
                        ports=ports,
                        counter=counter,
                        run_dir=run_dir,
                    )
                    print(_progress(result), file=sys.stderr, flush=True)
                    results.append(result)
    return results


def _machine() -> dict[str, object]:
    serf = shutil.which("serf")
    serf_version = ""
    if serf:
        out = subprocess.run([serf, "version"], capture_output=True, text=True, timeout=10)
        serf_version = out.stdout.splitlines()[0] if out.stdout else ""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "serf": serf_version,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("membership_realproc: needs root for iptables byte accounting", file=sys.stderr)
        return 2
    # Last line of defence (e.g. an exception while creating the chain): remove it at exit.
    atexit.register(LoopbackByteCounter.remove)
    work_dir = Path(tempfile.mkdtemp(prefix="skyfleet-bench-membership-"))
    try:
        results = asyncio.run(bench(args, work_dir))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(
            "membership_realproc: interrupted; agents and iptables rules removed", file=sys.stderr
        )
        return 130
    finally:
        if args.keep_workdir:
            print(f"membership_realproc: logs and configs kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    table = summaries(results)
    if args.baseline is not None:
        print(markdown_table(table, "Skyfleet", "Skyfleet-baseline"))
        if "Serf" in table:
            print()
    if args.baseline is None or "Serf" in table:
        print(markdown_table(table))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: v for k, v in vars(args).items() if k != "out"}
        settings["keep_workdir"] = bool(settings["keep_workdir"])
        doc = {
            "settings": settings,
            "machine": _machine(),
            "summary": table,
            "runs": as_json(results),
        }
        args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\nwrote {args.out}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
