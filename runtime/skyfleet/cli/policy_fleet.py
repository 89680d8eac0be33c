"""`skyfleet policy publish|status`: the policy commands that talk to a running fleet.

`policy status --wait` is `kubectl rollout status` for a policy: it looks at the agent's
member table until every live member runs the version, printing a line each time the
count changes; a member's version is what its latest gossiped status says, so the wait
sees what the fleet's balancers see.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyfleet.cli.argtypes import positive_int
from skyfleet.cli.connection import Connection, add_connection_args
from skyfleet.cli.main import CliError, UsageError
from skyfleet.cli.output import JSON, add_output_arg, print_json
from skyfleet.cli.table import print_table

if TYPE_CHECKING:
    from skyfleet.client import AgentClient, MemberRow

STATUS_SHAPE = """\
  {"observer": NAME of the answering agent,
   "newest_version": the newest version a live member runs (0: none),
   "live_members", "on_newest" (live members on it), "share_on_newest" (0..1),
   "members": [{"name", "state", "version" (0: none yet), "hash",
                "status_age" (s since its status arrived, null: none yet)}, ...]}
with --wait, one object when the wait ends, with three more keys:
   "version" (waited for; 0: no live member runs any), "done" (true: every live member
   runs it or a newer one), "lagging": [NAME of each live member that does not]"""

READ_TIMEOUT = 5.0
WAIT_TIMEOUT = 60.0
POLL_INTERVAL = 0.5
"""Seconds between two looks while waiting: one small call each, and a status travels the
fleet in about a gossip interval, so a faster look would see nothing new."""


def add_fleet_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="offer a signed policy to an agent (admin identity)")
    p.add_argument("file", type=Path, metavar="FILE", help="signed envelope (policy sign)")
    add_connection_args(p, timeout=10.0, role="admin")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("status", help="policy version per member, and convergence; --wait: "
                       "until every live member runs it")
    p.add_argument("--wait", action="store_true",
                   help="look again until every live member runs the version, printing "
                   "progress as it changes; exit 1 naming the members that lag if "
                   "--timeout passes first")
    p.add_argument("--version", type=positive_int("a version number"), metavar="N",
                   help="with --wait: the version to wait for (or a newer one; default: "
                   "the newest any live member runs)")
    add_connection_args(
        p, timeout=None,
        timeout_help=f"give up on the agent after this long (default {READ_TIMEOUT:g}); "
        f"with --wait, on the whole wait (default {WAIT_TIMEOUT:g})")
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


@dataclass(frozen=True, slots=True)
class Rollout:
    """One look at an agent's member table, against the version waited for."""

    observer: str
    rows: list[MemberRow]
    version: int
    """The version waited for: --version, else the newest a live member runs (0: none)."""

    @classmethod
    def of(cls, observer: str, rows: list[MemberRow], wanted: int | None) -> Rollout:
        return cls(observer, rows, wanted or _newest(rows))

    @property
    def live(self) -> list[MemberRow]:
        return [r for r in self.rows if r.is_up]

    @property
    def lagging(self) -> list[MemberRow]:
        """Live members on an older version (a newer one has superseded the wanted)."""
        return [r for r in self.live if r.policy_version < self.version]

    @property
    def done(self) -> bool:
        return self.version > 0 and not self.lagging

    def progress(self) -> str:
        if not self.version:
            return f"no live member runs a policy yet, as seen by {self.observer}"
        on = len(self.live) - len(self.lagging)
        return f"{on} of {len(self.live)} live members on v{self.version}"

    def lag(self) -> str:
        """Who lags, for the line that ends a wait that timed out."""
        if not self.version:
            return self.progress()
        names = ", ".join(f"{r.name} (v{r.policy_version})" if r.policy_version
                          else f"{r.name} (none)" for r in self.lagging)
        return f"{len(self.lagging)} of {len(self.live)} live members not on " \
               f"v{self.version}: {names}"


def _newest(rows: list[MemberRow]) -> int:
    """The newest version a live member runs (0: none runs any)."""
    return max((r.policy_version for r in rows if r.is_up), default=0)


def _status_json(observer: str, rows: list[MemberRow]) -> dict[str, Any]:
    live = [r for r in rows if r.is_up]
    newest = _newest(rows)
    on_newest = sum(1 for r in live if r.policy_version == newest and newest > 0)
    return {
        "observer": observer,
        "newest_version": newest,
        "live_members": len(live),
        "on_newest": on_newest,
        "share_on_newest": on_newest / len(live) if live else 0.0,
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


def _cmd_status(args: argparse.Namespace) -> int:
    if args.version is not None and not args.wait:
        raise UsageError("--version: only with --wait")
    if args.timeout is None:
        args.timeout = WAIT_TIMEOUT if args.wait else READ_TIMEOUT
    conn = Connection.of(args)
    if args.wait:
        return _wait_status(conn, args.version, args.output)
    local, rows = conn.call(lambda client: client.list_members(timeout=conn.timeout))
    doc = _status_json(local, rows)
    if args.output == JSON:
        print_json(doc)
        return 0
    newest = doc["newest_version"]
    hashes = Counter(r.policy_hash for r in rows
                     if r.is_up and r.policy_version == newest)
    print_table(("NAME", "STATE", "VERSION", "HASH"), [
        (r.name, r.state, str(r.policy_version) if r.policy_version else "-",
         r.policy_hash[:12] or "-")
        for r in rows
    ])
    print(
        f"\n{doc['on_newest']}/{doc['live_members']} live members "
        f"({doc['share_on_newest']:.0%}) on version {newest}, as seen by {local}"
    )
    if len(hashes) > 1:
        print(f"warning: {len(hashes)} different documents claim version {newest}")
    return 0


def _wait_status(conn: Connection, wanted: int | None, output: str) -> int:
    """Look until done or `conn.timeout` has passed; exit 1 naming who lags then."""

    async def wait(client: AgentClient) -> Rollout:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + conn.timeout
        shown = ""
        while True:
            # The last look may end up to one interval past the deadline, rather than
            # fail as a call with no time left would.
            left = deadline - loop.time()
            look = Rollout.of(*await client.list_members(timeout=max(left, POLL_INTERVAL)),
                              wanted)
            if output != JSON and look.progress() != shown:
                shown = look.progress()
                print(shown, flush=True)
            left = deadline - loop.time()
            if look.done or left <= 0:
                return look
            await asyncio.sleep(min(POLL_INTERVAL, left))

    look = conn.call(wait)
    if output == JSON:
        print_json(_status_json(look.observer, look.rows) | {
            "version": look.version,
            "done": look.done,
            "lagging": [r.name for r in look.lagging],
        })
    if not look.done:
        raise CliError(f"timed out after {conn.timeout:g}s: {look.lag()}")
    if output != JSON:
        print(f"policy v{look.version} runs on every live member, as seen by "
              f"{look.observer}")
    return 0
