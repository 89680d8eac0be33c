"""The membership commands, as Serf names them: `skyfleet members` (an agent's member
table), `skyfleet join SEED...` (have a running agent join a fleet) and `skyfleet leave`
(have it leave gracefully and stop)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from skyfleet.cli.connection import Connection, add_connection_args
from skyfleet.cli.output import JSON, add_output_arg, print_json
from skyfleet.cli.table import print_table

if TYPE_CHECKING:
    from collections.abc import Iterable

    from skyfleet.client import MemberRow

MEMBERS_SHAPE = """\
  {"local_node": NAME of the answering agent,
   "members": [{"name", "cloud", "region", "zone", "address",
                "state": alive|suspect|dead|left, "incarnation", "state_age" (s),
                "policy_version" (0: none yet), "policy_hash",
                "status_age" (s since its status arrived, null: none yet),
                "inflight", "queued", "capacity", "latency_ms",
                "refusals" (its calls and claims this agent refused)}, ...]}"""
"""The JSON of a member table: `members`, and the fleet views of `local status`, `top`."""


def members_json(local: str, rows: Iterable[MemberRow]) -> dict[str, Any]:
    return {"local_node": local, "members": [asdict(r) for r in rows]}


def register(sub: argparse._SubParsersAction) -> None:
    members = sub.add_parser("members", help="list an agent's view of the fleet")
    add_connection_args(members, timeout=5.0)
    add_output_arg(members, shape=MEMBERS_SHAPE, json_alias=True)
    members.set_defaults(func=_members)

    join = sub.add_parser("join", help="have a running agent join a fleet through seeds "
                          "(admin identity)")
    join.add_argument("seeds", nargs="+", metavar="SEED", help="host:port of a fleet member")
    # The agent waits up to 10 s for a seed before it answers; wait a little longer.
    add_connection_args(join, timeout=15.0, role="admin")
    join.set_defaults(func=_join)

    leave = sub.add_parser("leave", help="have an agent leave the fleet gracefully, then "
                           "stop (admin identity)")
    add_connection_args(leave, timeout=5.0, role="admin")
    leave.set_defaults(func=_leave)


def _join(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    up = conn.call(lambda client: client.join(args.seeds, timeout=conn.timeout))
    print(f"joined: {conn.agent} now knows {up} member(s) up")
    return 0


def _leave(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    conn.call(lambda client: client.leave(timeout=conn.timeout))
    print(f"leaving: {conn.agent} tells the fleet it leaves, then stops")
    return 0


def _members(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    local, rows = conn.call(lambda client: client.list_members(timeout=conn.timeout))
    if args.output == JSON:
        print_json(members_json(local, rows))
        return 0
    print_table(
        ("NAME", "CLOUD", "REGION", "ZONE", "ADDRESS", "STATE", "INCARNATION", "REFUSED"),
        [(r.name, r.cloud, r.region, r.zone, r.address, r.state, str(r.incarnation),
          str(r.refusals)) for r in rows],
    )
    return 0
