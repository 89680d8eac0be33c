"""The fleet as a table: members by cloud with state, load, latency and policy version,
as one agent sees them (for `skyfleet local status` and `skyfleet top`)."""

from __future__ import annotations

from collections.abc import Iterable

from skyfleet.client import MemberRow


def fleet_table(observer: str, rows: Iterable[MemberRow]) -> list[str]:
    lines = [
        f"{'CLOUD':<7}{'ZONE':<6}{'NAME':<12}{'STATE':<8}{'LOAD':>9}{'LAT ms':>8}"
        f"{'POLICY':>8}{'STATUS AGE':>12}",
    ]
    for r in sorted(rows, key=lambda r: (r.cloud, r.zone, r.name)):
        load = f"{r.inflight}+{r.queued}/{r.capacity}" if r.capacity else "-"
        age = f"{r.status_age:.1f}s" if r.status_age is not None else "-"
        policy = f"v{r.policy_version}" if r.policy_version else "-"
        lines.append(
            f"{r.cloud:<7}{r.zone:<6}{r.name:<12}{r.state:<8}{load:>9}{r.latency_ms:>8.1f}"
            f"{policy:>8}{age:>12}"
        )
    lines.append(f"load = running+queued/capacity; as seen by {observer}")
    return lines
