"""`-o/--output FORMAT` of every command that prints data, as kubectl and the Pulumi CLI
spell it: the human form by default, `-o json` for scripts. Each command prints one JSON
shape, written out in its `--help` so that a script's author need not run it to know."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

JSON = "json"


def add_output_arg(
    parser: argparse.ArgumentParser,
    *,
    shape: str,
    human: str = "table",
    json_alias: bool = False,
) -> None:
    """Add `-o {human,json}` (default `human`) and put the JSON `shape` in the command's
    help; `json_alias` adds `--json` too, for the commands that had it before `-o`."""
    parser.add_argument("-o", "--output", choices=(human, JSON), default=human,
                        help=f"output format (default {human}); the JSON shape is below")
    if json_alias:
        parser.add_argument("--json", dest="output", action="store_const", const=JSON,
                            help="the same as -o json")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = f"-o json prints:\n{shape}"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def encoded(data: bytes) -> tuple[str, str]:
    """`data` as a JSON string and how it is encoded: "text" if it is UTF-8, else
    "base64", so that a task's binary output survives a JSON document."""
    try:
        return data.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def write_bytes(data: bytes) -> None:
    """Write `data` to stdout as they are (a task's output), after any text printed
    before it: a task's output is bytes, not text in the terminal's encoding."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
