"""Entry point of the `skyfleet` console script.

Each command group lives in its own module exposing `register(subparsers)`; this module
only assembles them, so adding a command never touches another's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Command-group modules, imported lazily so `skyfleet --help` stays fast and a group's
# heavy dependencies load only when it runs.
_GROUPS = (
    "skyfleet.cli.agent",
    "skyfleet.cli.members",
    "skyfleet.cli.certs",
    "skyfleet.cli.local",
    "skyfleet.cli.policy",
    "skyfleet.cli.top",
)


class CliError(Exception):
    """A runtime error the user can act on (a missing file, an agent that does not answer):
    printed as `skyfleet: <message>`, exit status 1. Usage errors are argparse's, status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyfleet",
        description="Run fleets of AI agents redundantly across AWS, Azure and GCP.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _GROUPS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"skyfleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
