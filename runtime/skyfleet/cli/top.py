"""`skyfleet top`: a live view of the fleet (members by cloud, state, load, latency,
policy version), refreshed in place until Ctrl-C; `--once` or `-o json`: one frame."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from skyfleet.cli.connection import positive_seconds
from skyfleet.cli.local import (
    add_fleet_output_arg,
    add_project_arg,
    fleet_view,
    local_stack,
    print_fleet,
)
from skyfleet.cli.main import CliError
from skyfleet.cli.output import JSON

CLEAR = "\x1b[H\x1b[2J"


def register(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser("top", help="live view of the local fleet")
    add_project_arg(top)
    top.add_argument("--interval", type=positive_seconds, default=1.0,
                     help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    add_fleet_output_arg(top)
    top.epilog = f"{top.epilog}\n-o json prints one frame, as --once does."
    top.set_defaults(func=_top)


def _top(args: argparse.Namespace) -> int:
    from skyfleet.localfleet.stack import StackError

    stack = local_stack(args)
    try:
        outputs = stack.outputs()
    except StackError as exc:
        raise CliError(f"local stack: {exc}") from None
    once = args.once or args.output == JSON

    async def frames() -> None:
        while True:
            observer, rows = await fleet_view(outputs)
            if args.output != JSON:
                print(("" if once else CLEAR)
                      + f"skyfleet top  {time.strftime('%H:%M:%S')}  ({stack.project})\n")
            print_fleet(observer, rows, args.output)
            sys.stdout.flush()
            if once:
                return
            await asyncio.sleep(args.interval)

    asyncio.run(frames())
    return 0
