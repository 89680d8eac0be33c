"""`skyfleet local demo`: the `local` environment of Pulumi.local.yaml as real agent
processes on this machine — join, a member table, a crash detected, a restart healed."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from skyfleet.cli.main import CliError

if TYPE_CHECKING:
    from skyfleet.localfleet.procs import LocalFleet

DEFAULT_DIR = Path(".skyfleet/local")


def register(sub: argparse._SubParsersAction) -> None:
    local = sub.add_parser("local", help="the local environment: a real fleet on this machine")
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    demo = local_sub.add_parser("demo", help="start the local fleet and walk through failures")
    demo.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder")
    demo.add_argument(
        "--stack-root", type=Path, default=None, help="folder with Pulumi.local.yaml (found)"
    )
    demo.set_defaults(func=_demo)


def find_stack_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "Pulumi.local.yaml").exists():
            return folder
    raise CliError(f"no Pulumi.local.yaml in {start} or above; pass --stack-root")


def _demo(args: argparse.Namespace) -> int:
    from infra.config import StackConfigError
    from skyfleet.localfleet.procs import FleetTimeout, LocalFleet
    from skyfleet.localfleet.stack import local_specs

    root = args.stack_root or find_stack_root(Path.cwd())
    try:
        specs = local_specs(root)
    except StackConfigError as exc:
        raise CliError(f"Pulumi.local.yaml: {exc}") from None
    fleet = LocalFleet(args.dir, specs)
    try:
        asyncio.run(_walkthrough(fleet))
    except FleetTimeout as exc:
        raise CliError(str(exc)) from None
    finally:
        fleet.stop()
    print("all agents left gracefully; logs in", args.dir / "logs")
    return 0


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def _walkthrough(fleet: LocalFleet) -> None:
    names = list(fleet.specs)
    clouds = sorted({s.cloud for s in fleet.specs.values()})
    _say(f"starting {len(names)} agents in {len(clouds)} clouds ({', '.join(clouds)}) with mTLS")
    fleet.start()
    took = await fleet.wait_converged(names, timeout=120)
    _say(f"every agent sees all {len(names)} alive after {took:.2f}s")
    await _print_table(fleet, names[0])

    victim = names[-1]
    others = [n for n in names if n != victim]
    _say(f"kill -9 {victim} ({fleet.specs[victim].cloud})")
    fleet.agents[victim].signal(signal.SIGKILL)
    took = await fleet.wait_states(victim, {"dead"}, others, timeout=120)
    _say(f"all {len(others)} other agents marked {victim} failed after {took:.2f}s")

    _say(f"restarting {victim} under the same name")
    fleet.start([victim])
    took = await fleet.wait_converged(names, timeout=120)
    _say(f"{victim} is alive again everywhere after {took:.2f}s (fresh incarnation wins)")
    await _print_table(fleet, names[0])
    _say("stopping: each agent announces a graceful leave")


async def _print_table(fleet: LocalFleet, observer: str) -> None:
    view = (await fleet.views([observer]))[observer]
    print(f"\n  members as seen by {observer}:")
    print(f"  {'NAME':<14}{'CLOUD':<8}{'ZONE':<8}{'ADDRESS':<18}{'STATE':<8}INCARNATION")
    for row in sorted(view.values(), key=lambda r: (r.cloud, r.zone, r.name)):
        print(
            f"  {row.name:<14}{row.cloud:<8}{row.zone:<8}{row.address:<18}{row.state:<8}"
            f"{row.incarnation}"
        )
    print()
