"""`skyfleet top`: a live view of the fleet (members by cloud, state, load, latency,
policy version), refreshed in place until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from skyfleet.cli.main import CliError

CLEAR = "\x1b[H\x1b[2J"


def register(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser("top", help="live view of the local fleet")
    top.add_argument("--project", type=Path,
                     help="folder with Pulumi.yaml and Pulumi.local.yaml (found upward)")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.set_defaults(func=_top)


def _top(args: argparse.Namespace) -> int:
    from skyfleet.localfleet import ops
    from skyfleet.localfleet.stack import LocalStack, StackError, find_project
    from skyfleet.localfleet.view import fleet_table

    try:
        stack = LocalStack(args.project or find_project(Path.cwd()))
        outputs = stack.outputs()
    except StackError as exc:
        raise CliError(f"local stack: {exc}") from None

    async def frames() -> None:
        while True:
            observer, rows = await ops.views(outputs)
            frame = "\n".join(fleet_table(observer, rows))
            header = f"skyfleet top  {time.strftime('%H:%M:%S')}  ({stack.project})\n\n"
            print(("" if args.once else CLEAR) + header + frame, flush=True)
            if args.once:
                return
            await asyncio.sleep(args.interval)

    try:
        asyncio.run(frames())
    except StackError as exc:
        raise CliError(str(exc)) from None
    return 0
