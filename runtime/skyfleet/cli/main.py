"""Entry point of the `skyfleet` console script.

Each command group lives in its own module exposing `register(subparsers)`; this module
only assembles them, so adding a command never touches another's code.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    "skyfleet.cli.task",
    "skyfleet.cli.top",
)


class CliError(Exception):
    """A runtime error the user can act on (a missing file, an agent that does not answer):
    printed as `skyfleet: <message>`, exit status 1. Usage errors are argparse's, status 2."""


class UsageError(Exception):
    """A usage error argparse cannot see (an option that falls back to an environment
    variable neither of which is set): reported as argparse reports its own, with the
    command's usage, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from skyfleet.cli.version import VersionAction

    parser = argparse.ArgumentParser(
        prog="skyfleet",
        description="Run fleets of AI agents redundantly across AWS, Azure and GCP.",
    )
    parser.add_argument("--version", action=VersionAction,
                        help="print the installed version and the wire API, then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _GROUPS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        command: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        command.error(str(exc))
    except CliError as exc:
        print(f"skyfleet: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`skyfleet members | head -1`): nothing left to tell it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        # A file a command did not expect to fail on still gets one line naming it.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"skyfleet: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
