"""`skyfleet local ...`: the `local` environment of Pulumi.local.yaml as real agent
processes on this machine (in network namespaces when root)."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from skyfleet.cli.main import CliError

if TYPE_CHECKING:
    from skyfleet.localfleet.layout import AgentSpec

DEFAULT_DIR = Path(".skyfleet/local")


def register(sub: argparse._SubParsersAction) -> None:
    local = sub.add_parser("local", help="the local environment: a real fleet on this machine")
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    demo = local_sub.add_parser(
        "demo", help="run the fleet end to end: load, policy rollout, a cloud lost and back"
    )
    demo.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder")
    demo.add_argument("--stack-root", type=Path, help="folder with Pulumi.local.yaml (found)")
    demo.add_argument("--quick", action="store_true", help="short phases (about a minute)")
    demo.add_argument(
        "--loopback", action="store_true", help="no network namespaces even when root"
    )
    demo.add_argument(
        "--loss",
        choices=("kill", "cut"),
        default="kill",
        help="how the cloud is lost: kill -9 its agents, or cut it off with iptables (netns)",
    )
    demo.set_defaults(func=_demo)

    up = local_sub.add_parser("up", help="start the local fleet and leave it running")
    up.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder")
    up.add_argument("--stack-root", type=Path, help="folder with Pulumi.local.yaml (found)")
    up.add_argument("--loopback", action="store_true", help="no network namespaces")
    up.set_defaults(func=_up)
    status = local_sub.add_parser("status", help="the running local fleet as a table")
    status.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder")
    status.set_defaults(func=_status)
    down = local_sub.add_parser("down", help="stop the local fleet; leaves nothing behind")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder")
    down.set_defaults(func=_down)


def find_stack_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "Pulumi.local.yaml").exists():
            return folder
    raise CliError(f"no Pulumi.local.yaml in {start} or above; pass --stack-root")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _specs(args: argparse.Namespace) -> tuple[Path, list[AgentSpec]]:
    from infra.config import StackConfigError
    from skyfleet.localfleet.stack import local_specs

    root = args.stack_root or find_stack_root(Path.cwd())
    try:
        return root, local_specs(root)
    except StackConfigError as exc:
        raise CliError(f"Pulumi.local.yaml: {exc}") from None


def _up(args: argparse.Namespace) -> int:
    import json

    from skyfleet.localfleet import ops

    root, specs = _specs(args)
    policy = json.loads((root / "policies" / "default.json").read_text())
    try:
        ops.up(specs, args.dir, policy, say, use_netns=not args.loopback)
    except (RuntimeError, AssertionError) as exc:
        ops.down(args.dir, say)
        raise CliError(str(exc)) from None
    say("see it with `skyfleet local status` or `skyfleet top`; stop with `skyfleet local down`")
    return 0


def _status(args: argparse.Namespace) -> int:
    from skyfleet.localfleet import ops
    from skyfleet.localfleet.view import fleet_table

    try:
        observer, rows = asyncio.run(ops.views(args.dir))
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    print("\n".join(fleet_table(observer, rows)))
    return 0


def _down(args: argparse.Namespace) -> int:
    from skyfleet.localfleet import ops

    left = ops.down(args.dir, say)
    if left:
        raise CliError("left behind: " + ", ".join(left))
    say("local fleet down: no agent process and no namespace left")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from infra.config import StackConfigError
    from skyfleet.localfleet import netns
    from skyfleet.localfleet.demo import Demo, DemoSettings
    from skyfleet.localfleet.procs import FleetTimeout, LocalFleet
    from skyfleet.localfleet.report import print_summary, write_chart
    from skyfleet.localfleet.stack import local_specs

    root = args.stack_root or find_stack_root(Path.cwd())
    try:
        specs = local_specs(root)
    except StackConfigError as exc:
        raise CliError(f"Pulumi.local.yaml: {exc}") from None
    settings = DemoSettings(phase_seconds=4.0, rate=25.0) if args.quick else DemoSettings()
    network = None
    why_not = "--loopback" if args.loopback else netns.unavailable_reason()
    if why_not is None:
        network = netns.FleetNetwork.create([(s.name, s.cloud) for s in specs])
        specs = network.place(specs)
        router = f"{network.plan.prefix}-router"
        say(f"each agent in its own network namespace; clouds joined by {router}")
    else:
        say(f"agents on loopback ({why_not})")
    fleet = LocalFleet(args.dir, specs)
    demo = Demo(
        fleet,
        root / "policies",
        settings,
        say,
        cut=network.cut if network and args.loss == "cut" else None,
        heal=network.heal if network and args.loss == "cut" else None,
    )
    try:
        report = asyncio.run(demo.run())
    except FleetTimeout as exc:
        raise CliError(str(exc)) from None
    finally:
        fleet.stop()
        if network is not None:
            network.teardown()
    report.chart = write_chart(demo.records, report.events, args.dir / "demo.png")
    print()
    print_summary(report, say)
    if report.lost:
        raise CliError(f"{report.lost} task(s) lost")
    return 0
