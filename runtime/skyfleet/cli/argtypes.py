"""Argparse types shared by the command groups: argparse turns their errors into one
usage line naming the flag (exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive_int(what: str) -> Callable[[str], int]:
    """An integer of 1 or more; `what` names the kind of number in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
        return value

    return parse
