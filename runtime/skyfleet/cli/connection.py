"""The options of every command that calls an agent, in one place: which agent
(`--agent`, else $SKYFLEET_AGENT, as Serf's `-rpc-addr` falls back to $SERF_RPC_ADDR),
which TLS folder (`--tls-dir`, else $SKYFLEET_TLS_DIR), whose certificate in it
(`--identity`) and how long to wait for the answer (`--timeout`).

There is no default agent or folder: a command that guessed one would call whatever
answers there with whatever certificate lies there. Leaving both unset is a usage error
naming the flag and the variable; the certificate is checked before anything is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from skyfleet.cli.main import CliError, UsageError

if TYPE_CHECKING:
    from skyfleet.client import AgentClient
    from skyfleet.transport.tls import TlsMaterial

T = TypeVar("T")

AGENT_ENV = "SKYFLEET_AGENT"
TLS_DIR_ENV = "SKYFLEET_TLS_DIR"


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above zero (a usage error otherwise)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return seconds


CallerRole = Literal["admin", "client"]


def add_connection_args(
    parser: argparse.ArgumentParser,
    *,
    timeout: float | None,
    role: CallerRole | None = None,
    timeout_help: str = "give up on the agent after this long (default %(default)g)",
) -> None:
    """--agent, --tls-dir, --identity, --timeout (default `timeout` seconds: the
    command's own, long enough for what the agent does before it answers). A command
    whose default depends on its other options (`policy status --wait`) passes None,
    resolves it before `Connection.of` and says so in `timeout_help`.

    `role` is the certificate role the command calls with (admin: calls that change the
    fleet; client: tasks), refused before any call if the certificate has another; None:
    any fleet certificate (reads). The default identity is named after it (reads: admin).
    """
    identity = role or "admin"
    parser.add_argument("--agent", metavar="HOST:PORT",
                        help=f"the agent to call (default: ${AGENT_ENV})")
    parser.add_argument("--tls-dir", type=Path, metavar="DIR",
                        help=f"folder with ca.pem and NAME.pem/.key (default: ${TLS_DIR_ENV})")
    parser.add_argument("--identity", default=identity, metavar="NAME",
                        help=f"the certificate in DIR to call with (default {identity})")
    parser.add_argument("--timeout", type=positive_seconds, default=timeout, metavar="SECONDS",
                        help=timeout_help)
    parser.set_defaults(command_parser=parser, caller_role=role)


def _setting(given: str | None, flag: str, env: str, what: str) -> tuple[str, str]:
    """(value, where it came from: the flag or $ENV); UsageError when neither is set."""
    if given:
        return given, flag
    from_env = os.environ.get(env, "")
    if from_env:
        return from_env, f"${env}"
    raise UsageError(f"{flag}: no {what} given; pass {flag} or set ${env}")


def _article(role: str) -> str:
    return "an" if role[0] in "aeiou" else "a"


@dataclass(frozen=True, slots=True)
class Connection:
    """A remote command's checked options: the agent, the caller's TLS material, the
    timeout of its call."""

    agent: str
    tls: TlsMaterial
    timeout: float

    @classmethod
    def of(cls, args: argparse.Namespace) -> Connection:
        """Check the options (UsageError) and load the certificate (CliError naming the
        file), refusing one of a role other than the command's (`add_connection_args`)."""
        from skyfleet.client import tls_files_in
        from skyfleet.config.agent import split_host_port
        from skyfleet.config.errors import ConfigError
        from skyfleet.transport.tls import TlsMaterial

        agent, agent_source = _setting(args.agent, "--agent", AGENT_ENV, "agent HOST:PORT")
        try:
            split_host_port(agent, agent_source)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        given_dir = str(args.tls_dir) if args.tls_dir else None
        folder, dir_source = _setting(given_dir, "--tls-dir", TLS_DIR_ENV, "TLS folder")
        tls_dir = Path(folder)
        if not tls_dir.is_dir():
            raise CliError(f"{dir_source}: {tls_dir}: not a folder")
        role: CallerRole | None = args.caller_role
        files = tls_files_in(tls_dir, args.identity)
        if not files.cert.exists():
            raise CliError(f"--identity {args.identity}: no {files.cert}; issue it with "
                           f"`skyfleet certs issue --dir {tls_dir} {args.identity} "
                           f"--{role or 'admin'}`")
        try:
            tls = TlsMaterial.load(files)
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        held = tls.identity.role
        if role is not None and held != role:
            raise CliError(f"--identity {args.identity}: {files.cert} is {_article(held)} "
                           f"{held} certificate; this command calls with {_article(role)} "
                           f"{role} one")
        return cls(agent=agent, tls=tls, timeout=args.timeout)

    def call(self, rpc: Callable[[AgentClient], Awaitable[T]]) -> T:
        """Run `rpc` on a client of the agent, in an event loop of its own (gRPC's channel
        belongs to the loop it is opened in); a failed call is a CliError naming the
        agent and why."""
        from skyfleet.client import AgentClient, AgentError

        async def run() -> T:
            async with AgentClient(self.agent, self.tls) as client:
                return await rpc(client)

        try:
            return asyncio.run(run())
        except AgentError as exc:
            raise CliError(str(exc)) from None
