"""The one way the CLI prints a table (members, policy status, the fleet view of `local
status` and `top`): rich lays it out, kubectl-style, with columns apart and no borders.

Rich measures cells as a terminal shows them and never reads them as markup here (they
are `Text`), so a member name sent by a remote agent cannot restyle the table. The width
is never limited: a piped table is cut by nobody and a line is one row, for grep and awk.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Collection, Iterable, Sequence

UNLIMITED = 1 << 20
"""Console width: wide enough that rich never wraps or squeezes a column."""


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, right: Collection[str] = ()
) -> None:
    """Print one line per row under a header line; columns named in `right` are
    right-aligned (numbers). Headers are bold when stdout is a terminal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1),
                  header_style="bold")
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out = io.StringIO()
    terminal = sys.stdout.isatty()
    console = Console(file=out, width=UNLIMITED, force_terminal=terminal,
                      color_system="standard" if terminal else None, highlight=False)
    console.print(table)
    print("\n".join(line.rstrip() for line in out.getvalue().splitlines()))
