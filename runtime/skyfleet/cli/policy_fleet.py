"""`skyfleet policy publish|status`: the policy commands that talk to a running fleet."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from skyfleet.cli.main import CliError
from skyfleet.cli.members import add_connection_args, client_from_args

if TYPE_CHECKING:
    from skyfleet._generated.skyfleet.v1.policy_pb2 import PublishPolicyResponse
    from skyfleet.client import MemberRow


def add_fleet_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="offer a signed policy to an agent (admin identity)")
    p.add_argument("file", type=Path, metavar="FILE", help="signed envelope (policy sign)")
    add_connection_args(p)
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("status", help="policy version per member, and convergence")
    add_connection_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_status)


def _cmd_publish(args: argparse.Namespace) -> int:
    from skyfleet.client import AgentError

    try:
        envelope = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror}") from None

    async def go() -> PublishPolicyResponse:
        async with client_from_args(args) as client:
            return await client.publish_policy(envelope)

    try:
        reply = asyncio.run(go())
    except AgentError as exc:
        raise CliError(str(exc)) from None
    print(f"{reply.outcome}: version {reply.version} hash {reply.hash[:12]} ({reply.reason})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from skyfleet.client import AgentError

    async def go() -> tuple[str, list[MemberRow]]:
        async with client_from_args(args) as client:
            return await client.list_members()

    try:
        local, rows = asyncio.run(go())
    except AgentError as exc:
        raise CliError(str(exc)) from None
    live = [r for r in rows if r.state in ("alive", "suspect")]
    newest = max((r.policy_version for r in live), default=0)
    on_newest = sum(1 for r in live if r.policy_version == newest and newest > 0)
    hashes = Counter(r.policy_hash for r in live if r.policy_version == newest)
    share = on_newest / len(live) if live else 0.0
    if args.json:
        out = {
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
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'NAME':<16}{'STATE':<9}{'VERSION':<9}HASH")
    for r in rows:
        version = str(r.policy_version) if r.policy_version else "-"
        print(f"{r.name:<16}{r.state:<9}{version:<9}{r.policy_hash[:12] or '-'}")
    print(
        f"\n{on_newest}/{len(live)} live members ({share:.0%}) on version {newest},"
        f" as seen by {local}"
    )
    if len(hashes) > 1:
        print(f"warning: {len(hashes)} different documents claim version {newest}")
    return 0
