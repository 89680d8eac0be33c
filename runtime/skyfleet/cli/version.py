"""`skyfleet --version`: the installed distribution's version and the wire API it speaks
(the protobuf package of `protos/`, which changes only when the wire contract breaks)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def version_line() -> str:
    from skyfleet._generated.skyfleet.v1 import admin_pb2

    try:
        installed = version("skyfleet")
    except PackageNotFoundError:
        installed = "(not installed: run from a checkout)"
    return f"skyfleet {installed} (wire API {admin_pb2.DESCRIPTOR.package})"


class VersionAction(argparse.Action):
    """argparse's own `version` action takes the text when the parser is built; this one
    reads it only when asked, so no other command pays for the protobuf import."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(version_line())
        parser.exit()
