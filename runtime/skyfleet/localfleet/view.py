"""The fleet as a table: members by cloud with state, load, latency and policy version,
as one agent sees them (for `skyfleet local status` and `skyfleet top`). Cells only: the
CLI's one table renderer lays them out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from skyfleet.client import MemberRow

HEADERS = ("CLOUD", "ZONE", "NAME", "STATE", "LOAD", "LAT ms", "POLICY", "STATUS AGE")
NUMERIC = frozenset(HEADERS[4:])
"""Columns of numbers, right-aligned."""


@dataclass(frozen=True, slots=True)
class FleetTable:
    rows: list[tuple[str, ...]]
    footnote: str
    headers: tuple[str, ...] = HEADERS
    right: frozenset[str] = NUMERIC


def fleet_table(observer: str, rows: Iterable[MemberRow]) -> FleetTable:
    cells: list[tuple[str, ...]] = []
    for r in sorted(rows, key=lambda r: (r.cloud, r.zone, r.name)):
        load = f"{r.inflight}+{r.queued}/{r.capacity}" if r.capacity else "-"
        age = f"{r.status_age:.1f}s" if r.status_age is not None else "-"
        policy = f"v{r.policy_version}" if r.policy_version else "-"
        cells.append((r.cloud, r.zone, r.name, r.state, load, f"{r.latency_ms:.1f}", policy,
                      age))
    return FleetTable(cells, f"load = running+queued/capacity; as seen by {observer}")
