"""`skyfleet agent run`: one agent process until SIGTERM/SIGINT, then a graceful leave."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from skyfleet.cli.main import CliError
from skyfleet.config.agent import AgentConfig, load_agent_config
from skyfleet.config.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="run an agent")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    run = agent_sub.add_parser("run", help="run one agent in the foreground")
    run.add_argument("--config", type=Path, required=True, help="agent TOML config file")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # gRPC's C core writes its own plain-text lines to stderr; keep the agent's stream
    # pure JSON lines (our handlers log every refused peer themselves, by name).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from skyfleet import logs

    try:
        config = load_agent_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{args.config}: cannot read ({exc.strerror})") from None
    logs.configure(config.node.name, config.log_level)
    try:
        asyncio.run(_serve(config, args.config))
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return 0


async def _serve(config: AgentConfig, path: Path) -> None:
    from skyfleet.node import Agent

    agent = Agent(config, config_path=path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    async with agent:
        await agent.stopped()
    if agent.failure is not None:
        # It left the fleet gracefully all the same; its supervisor should restart it.
        raise CliError(f"agent {config.node.name} stopped: a loop failed: {agent.failure!r}")
