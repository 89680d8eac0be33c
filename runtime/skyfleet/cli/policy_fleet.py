"""`skyfleet policy publish|status`: the policy commands that talk to a running fleet."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from skyfleet.cli.connection import Connection, add_connection_args
from skyfleet.cli.main import CliError
from skyfleet.cli.output import JSON, add_output_arg, print_json
from skyfleet.cli.table import print_table

STATUS_SHAPE = """\
  {"observer": NAME of the answering agent,
   "newest_version": the newest version a live member runs (0: none),
   "live_members", "on_newest" (live members on it), "share_on_newest" (0..1),
   "members": [{"name", "state", "version" (0: none yet), "hash",
                "status_age" (s since its status arrived, null: none yet)}, ...]}"""


def add_fleet_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="offer a signed policy to an agent (admin identity)")
    p.add_argument("file", type=Path, metavar="FILE", help="signed envelope (policy sign)")
    add_connection_args(p, timeout=10.0, role="admin")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("status", help="policy version per member, and convergence")
    add_connection_args(p, timeout=5.0)
    add_output_arg(p, shape=STATUS_SHAPE, json_alias=True)
    p.set_defaults(func=_cmd_status)


def _cmd_publish(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    try:
        envelope = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: cannot read ({exc.strerror})") from None
    reply = conn.call(lambda client: client.publish_policy(envelope, timeout=conn.timeout))
    print(f"{reply.outcome}: version {reply.version} hash {reply.hash[:12]} ({reply.reason})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    local, rows = conn.call(lambda client: client.list_members(timeout=conn.timeout))
    live = [r for r in rows if r.state in ("alive", "suspect")]
    newest = max((r.policy_version for r in live), default=0)
    on_newest = sum(1 for r in live if r.policy_version == newest and newest > 0)
    hashes = Counter(r.policy_hash for r in live if r.policy_version == newest)
    share = on_newest / len(live) if live else 0.0
    if args.output == JSON:
        print_json({
            "observer": local,
            "newest_version": newest,
            "live_members": len(live),
            "on_newest": on_newest,
            "share_on_newest": share,
            "members": [
                {
                    "name": r.name,
                    "state": r.state,
                    "version": r.policy_version,
                    "hash": r.policy_hash,
                    "status_age": r.status_age,
                }
                for r in rows
            ],
        })
        return 0
    print_table(("NAME", "STATE", "VERSION", "HASH"), [
        (r.name, r.state, str(r.policy_version) if r.policy_version else "-",
         r.policy_hash[:12] or "-")
        for r in rows
    ])
    print(
        f"\n{on_newest}/{len(live)} live members ({share:.0%}) on version {newest},"
        f" as seen by {local}"
    )
    if len(hashes) > 1:
        print(f"warning: {len(hashes)} different documents claim version {newest}")
    return 0
