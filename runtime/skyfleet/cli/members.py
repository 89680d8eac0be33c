"""`skyfleet members --agent ADDR`: an agent's member table, as a table or JSON;
`skyfleet join --agent ADDR SEED...`: have a running agent join a fleet."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from skyfleet.cli.main import CliError
from skyfleet.config.errors import ConfigError

if TYPE_CHECKING:
    from skyfleet.client import AgentClient

DEFAULT_TLS_DIR = Path(".skyfleet/local/tls")


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """--agent/--tls-dir/--identity, shared by every command that calls an agent."""
    parser.add_argument("--agent", required=True, metavar="HOST:PORT", help="agent address")
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=DEFAULT_TLS_DIR,
        help=f"folder with ca.pem and IDENTITY.pem/.key (default {DEFAULT_TLS_DIR})",
    )
    parser.add_argument("--identity", default="admin", help="certificate name to use (admin)")


def client_from_args(args: argparse.Namespace) -> AgentClient:
    """An AgentClient for `--agent` with the `--identity` certificate from `--tls-dir`."""
    from skyfleet.client import AgentClient, tls_files_in
    from skyfleet.transport.tls import TlsMaterial

    try:
        tls = TlsMaterial.load(tls_files_in(args.tls_dir, args.identity))
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return AgentClient(args.agent, tls)


def register(sub: argparse._SubParsersAction) -> None:
    members = sub.add_parser("members", help="list an agent's view of the fleet")
    add_connection_args(members)
    members.add_argument("--json", action="store_true", help="print JSON instead of a table")
    members.set_defaults(func=_members)
    join = sub.add_parser("join", help="have a running agent join a fleet through seeds")
    add_connection_args(join)
    join.add_argument("seeds", nargs="+", metavar="SEED", help="host:port of a fleet member")
    join.set_defaults(func=_join)


def _join(args: argparse.Namespace) -> int:
    from skyfleet.client import AgentError

    async def call() -> int:
        async with client_from_args(args) as client:
            return await client.join(args.seeds)

    try:
        up = asyncio.run(call())
    except AgentError as exc:
        raise CliError(str(exc)) from None
    print(f"joined: {args.agent} now knows {up} member(s) up")
    return 0


def _members(args: argparse.Namespace) -> int:
    from skyfleet.client import AgentError, MemberRow

    async def fetch() -> tuple[str, list[MemberRow]]:
        async with client_from_args(args) as client:
            return await client.list_members()

    try:
        local, rows = asyncio.run(fetch())
    except AgentError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({"local_node": local, "members": [asdict(r) for r in rows]}, indent=2))
        return 0
    headers = ("NAME", "CLOUD", "REGION", "ZONE", "ADDRESS", "STATE", "INCARNATION", "REFUSED")
    table = [headers] + [
        (r.name, r.cloud, r.region, r.zone, r.address, r.state, str(r.incarnation),
         str(r.refusals))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
