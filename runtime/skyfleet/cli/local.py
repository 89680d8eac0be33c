"""`skyfleet local ...`: front ends over the project's `local` stack (Pulumi.local.yaml),
which the Pulumi engine provisions: real agent processes on this machine, in network
namespaces when root. Each command is a few engine calls and a look at the agents."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from skyfleet.cli.connection import AGENT_ENV, TLS_DIR_ENV, positive_seconds
from skyfleet.cli.main import CliError
from skyfleet.cli.members import MEMBERS_SHAPE, members_json
from skyfleet.cli.output import JSON, add_output_arg, print_json
from skyfleet.cli.table import print_table

if TYPE_CHECKING:
    from skyfleet.client import MemberRow
    from skyfleet.localfleet.ops import Answer
    from skyfleet.localfleet.stack import FleetOutputs, LocalStack

VIEW_TIMEOUT = 2.0
"""Seconds each agent of the stack gets to answer before the next is asked: short, so an
agent that died holds a view up for no longer than that."""


def add_project_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", type=Path,
                        help="folder with Pulumi.yaml and Pulumi.local.yaml (found upward)")


def add_fleet_output_arg(parser: argparse.ArgumentParser) -> None:
    add_output_arg(parser, shape=MEMBERS_SHAPE + "\n(the member table of the first agent "
                   "of the stack that answers)")


def add_view_timeout_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=positive_seconds, default=VIEW_TIMEOUT,
                        metavar="SECONDS", help="give up on each agent of the stack after "
                        "this long, then ask the next (default %(default)g)")


def register(sub: argparse._SubParsersAction) -> None:
    local = sub.add_parser("local", help="the local environment: a real fleet on this machine")
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser = local_sub.add_parser(name, help=help)
        add_project_arg(parser)
        return parser

    demo = action("demo", "the whole walk-through through the engine: pulumi up, load, a "
                  "rollout by stack config, a cloud lost and back, pulumi destroy")
    demo.add_argument("--quick", action="store_true", help="short phases (about a minute)")
    demo.add_argument("--loss", choices=("kill", "cut"), default="kill",
                      help="how the cloud is lost: kill -9 its agents, or cut it off with "
                      "iptables (netns)")
    demo.set_defaults(func=_demo)
    action("up", "pulumi up the local stack and wait until the fleet has settled").set_defaults(
        func=_up)
    status = action("status", "the running local fleet as a table")
    add_view_timeout_arg(status)
    add_fleet_output_arg(status)
    status.set_defaults(func=_status)
    action("down", "pulumi destroy the local stack; checks nothing is left").set_defaults(
        func=_down)
    env = action("env", "print the exports that point `pulumi` at the local stack, and "
                 f"every `skyfleet` command at its fleet (${AGENT_ENV}, ${TLS_DIR_ENV})")
    add_view_timeout_arg(env)
    env.set_defaults(func=_env)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def local_stack(args: argparse.Namespace, *, stream: bool = False) -> LocalStack:
    """The local stack of `--project`, else of the project found upward from here."""
    from skyfleet.localfleet.stack import LocalStack

    return LocalStack(_project(args.project),
                      on_output=(lambda line: print(line, flush=True)) if stream else None)


def _project(given: Path | None) -> Path:
    """A `--project` that is no project folder is refused here, before the engine
    creates its own folders in it."""
    from skyfleet.localfleet.stack import STACK, StackError, find_project

    if given is None:
        try:
            return find_project(Path.cwd())
        except StackError as exc:
            raise CliError(str(exc)) from None
    folder = given.absolute()
    try:
        if find_project(folder) == folder:
            return folder
    except StackError:
        pass
    raise CliError(f"--project {given}: no Pulumi.yaml with a Pulumi.{STACK}.yaml in this "
                   "folder")


async def fleet_view(outputs: FleetOutputs, timeout: float) -> Answer:
    """The member table of the first agent of the stack that answers; CliError if none
    does or the stack's admin certificate cannot be read."""
    from skyfleet.config.errors import ConfigError
    from skyfleet.localfleet import ops
    from skyfleet.localfleet.stack import StackError

    try:
        return await ops.first_answer(outputs, timeout)
    except (StackError, ConfigError) as exc:
        raise CliError(f"local stack: {exc}") from None


def print_fleet(observer: str, rows: list[MemberRow], output: str) -> None:
    from skyfleet.localfleet.view import fleet_table

    if output == JSON:
        print_json(members_json(observer, rows))
        return
    table = fleet_table(observer, rows)
    print_table(table.headers, table.rows, right=table.right)
    print(table.footnote)


def _up(args: argparse.Namespace) -> int:
    from skyfleet.localfleet import ops
    from skyfleet.localfleet.stack import StackError
    from skyfleet.localfleet.watch import FleetTimeout

    stack = local_stack(args, stream=True)
    try:
        ops.up(stack, say)
    except (StackError, FleetTimeout) as exc:
        raise CliError(f"local stack: {exc}") from None
    say("see it with `skyfleet local status` or `skyfleet top`; stop it with "
        "`skyfleet local down`")
    return 0


def _status(args: argparse.Namespace) -> int:
    from skyfleet.localfleet.stack import StackError

    try:
        outputs = local_stack(args).outputs()
    except StackError as exc:
        raise CliError(f"local stack: {exc}") from None
    view = asyncio.run(fleet_view(outputs, args.timeout))
    print_fleet(view.observer, view.rows, args.output)
    return 0


def _down(args: argparse.Namespace) -> int:
    from skyfleet.localfleet import ops
    from skyfleet.localfleet.stack import StackError

    try:
        left = ops.down(local_stack(args, stream=True), say)
    except StackError as exc:
        raise CliError(f"local stack: {exc}") from None
    if left:
        raise CliError("left behind: " + ", ".join(left))
    say("local fleet destroyed: no agent process and no namespace left")
    return 0


def _env(args: argparse.Namespace) -> int:
    from skyfleet.localfleet.stack import StackError, env_lines

    stack = local_stack(args)
    print("\n".join(env_lines(stack.project)))
    try:
        outputs = stack.outputs() if stack.exists() else None
    except StackError:
        outputs = None  # never brought up, or only half: there is no fleet to point at
    print("\n".join(asyncio.run(fleet_env(outputs, args.timeout))))
    print(f"# then, in {stack.project}: pulumi preview|up|refresh|destroy -s local")
    return 0


async def fleet_env(outputs: FleetOutputs | None, timeout: float) -> list[str]:
    """The lines that point every `skyfleet` command at the stack's fleet: one agent that
    answers now and the stack's TLS folder. Without a fleet (or no agent answering) they
    unset both instead, so a shell left pointing at a former fleet calls nothing and a
    command names the unset variable. Comments say which identity a command calls with,
    and never hold what an agent sent (a name with a newline would be a command to eval)."""
    from skyfleet.config.errors import ConfigError
    from skyfleet.config.fleet_files import FleetPaths
    from skyfleet.localfleet import ops
    from skyfleet.localfleet.stack import StackError, export_line

    unset = f"unset {AGENT_ENV} {TLS_DIR_ENV}"
    if outputs is None:
        return [unset, "# no local fleet: `skyfleet local up` first, then eval this again"]
    try:
        answer = await ops.first_answer(outputs, timeout)
    except (StackError, ConfigError) as exc:
        return [unset, "# " + " ".join(str(exc).split())]  # one line: eval runs the next
    tls = FleetPaths(outputs.state_dir).tls
    return [
        export_line(AGENT_ENV, answer.address),
        export_line(TLS_DIR_ENV, str(tls)),
        "# reads and admin calls use admin.pem there, the default --identity",
        f"# task submit calls with a client identity; issue one once: skyfleet certs issue "
        f'--dir "${TLS_DIR_ENV}" client --client',
    ]


def _demo(args: argparse.Namespace) -> int:
    from skyfleet.localfleet.demo import Demo, DemoSettings
    from skyfleet.localfleet.report import print_summary, write_chart
    from skyfleet.localfleet.stack import StackError
    from skyfleet.localfleet.watch import FleetTimeout

    stack = local_stack(args)
    settings = DemoSettings(loss=args.loss)
    if args.quick:
        settings = DemoSettings(phase_seconds=4.0, rate=25.0, loss=args.loss)
    demo = Demo(stack, settings, say)
    try:
        report = asyncio.run(demo.run())
    except (StackError, FleetTimeout, ValueError) as exc:
        raise CliError(f"demo: {exc}") from None
    report.chart = write_chart(demo.records, report.events,
                               stack.project / ".skyfleet" / "demo.png")
    print()
    print_summary(report, say)
    if report.lost:
        raise CliError(f"{report.lost} task(s) lost")
    if report.leftovers:
        raise CliError("left behind after pulumi destroy: " + ", ".join(report.leftovers))
    return 0
