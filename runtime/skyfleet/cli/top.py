"""`skyfleet top`: a live view of a fleet (members by cloud, state, load, latency, policy
version), refreshed in place until Ctrl-C; `--once` or `-o json`: one frame.

The fleet is the agent's given by `--agent` (else $SKYFLEET_AGENT), through the shared
connection options, as every remote command; with neither, or with `--project`, the local
stack's, seen through the first of its agents that answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from skyfleet.cli.connection import AGENT_ENV, Connection, add_connection_args, positive_seconds
from skyfleet.cli.local import (
    VIEW_TIMEOUT,
    add_fleet_output_arg,
    add_project_arg,
    fleet_view,
    local_stack,
    print_fleet,
)
from skyfleet.cli.main import CliError, UsageError
from skyfleet.cli.output import JSON

if TYPE_CHECKING:
    from skyfleet.client import AgentClient, MemberRow

CLEAR = "\x1b[H\x1b[2J"

View = Callable[[], Awaitable[tuple[str, list["MemberRow"]]]]
"""One frame's member table: (the answering agent's name, its rows)."""


def register(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser("top", help="live view of a fleet: an agent's (--agent), else the "
                         "local stack's")
    add_project_arg(top)
    add_connection_args(top, timeout=VIEW_TIMEOUT)
    top.add_argument("--interval", type=positive_seconds, default=1.0,
                     help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    add_fleet_output_arg(top)
    top.epilog = (f"{top.epilog} (with --agent: of that agent)\n"
                  "-o json prints one frame, as --once does.")
    top.set_defaults(func=_top)


def _top(args: argparse.Namespace) -> int:
    if args.agent and args.project:
        raise UsageError("--agent and --project: pick one (a remote agent, or the local stack)")
    if args.agent or (os.environ.get(AGENT_ENV) and not args.project):
        conn = Connection.of(args)
        return conn.call(lambda client: _frames(args, conn.agent, _remote(client, conn)))
    return _local(args)


def _remote(client: AgentClient, conn: Connection) -> View:
    return lambda: client.list_members(timeout=conn.timeout)


def _local(args: argparse.Namespace) -> int:
    from skyfleet.localfleet.stack import StackError

    stack = local_stack(args)
    try:
        outputs = stack.outputs()
    except StackError as exc:
        raise CliError(f"local stack: {exc}") from None

    async def view() -> tuple[str, list[MemberRow]]:
        answer = await fleet_view(outputs, args.timeout)
        return answer.observer, answer.rows

    return asyncio.run(_frames(args, str(stack.project), view))


async def _frames(args: argparse.Namespace, source: str, view: View) -> int:
    """Print frames of `view` titled with `source` until Ctrl-C, or one."""
    once = args.once or args.output == JSON
    while True:
        observer, rows = await view()
        if args.output != JSON:
            print(("" if once else CLEAR)
                  + f"skyfleet top  {time.strftime('%H:%M:%S')}  ({source})\n")
        print_fleet(observer, rows, args.output)
        sys.stdout.flush()
        if once:
            return 0
        await asyncio.sleep(args.interval)
