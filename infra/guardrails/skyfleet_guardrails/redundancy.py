"""The stack rule: enough agent hosts per cloud and zone for the stack's environment.

The program's config loader already refuses a config below the environment's minimum;
this rule checks what the program actually declared, after every component and loop ran.
The minimums arrive as pack config (`python -m infra.pack_config` renders them from the
program's own table, so there is one table), and the environment comes from the hosts'
own tags, so a stack cannot pass as `dev` by mislabelling itself while its hosts say
`prod`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skyfleet_guardrails import findings
from skyfleet_guardrails.hosts import Placement

CLOUDS = ("aws", "azure", "gcp")


@dataclass(frozen=True, slots=True)
class Minimum:
    clouds: int
    zones: int
    """Per cloud."""
    hosts_per_zone: int


def minimums(config: Mapping[str, Any]) -> dict[str, Minimum]:
    """The pack config's `environments` table: {env: {minClouds, minZones,
    minHostsPerZone}}."""
    return {env: Minimum(int(m["minClouds"]), int(m["minZones"]), int(m["minHostsPerZone"]))
            for env, m in (config.get("environments") or {}).items()}


@dataclass(frozen=True, slots=True)
class StackHost:
    name: str
    resource_type: str
    urn: str
    placement: Placement


Finding = tuple[str, str | None]
"""(message, urn of the resource at fault or None for the stack as a whole)."""


def _finding(where: str, detail: str) -> str:
    return findings.finding(findings.REDUNDANCY, where, detail)


def minimum_redundancy(hosts: Sequence[StackHost],
                       table: Mapping[str, Minimum]) -> list[Finding]:
    if not hosts:
        return [(_finding("stack", "declares no agent hosts"), None)]
    unplaced = [h for h in hosts if not h.placement.environment or not h.placement.zone]
    found: list[Finding] = [
        (_finding(findings.resource_label(h.name, h.resource_type),
                  "has no environment tag or zone, so it cannot count toward redundancy"),
         h.urn)
        for h in unplaced
    ]
    placed = [h for h in hosts if h.placement.environment and h.placement.zone]
    environments = sorted({str(h.placement.environment) for h in placed})
    if len(environments) != 1:
        if environments:
            found.append((_finding("stack", f"mixes environments {', '.join(environments)}"),
                          None))
        return found
    env = environments[0]
    need = table.get(env)
    if need is None:
        return found + [(_finding("stack", f"hosts are tagged with environment {env!r}, which "
                                  "the pack config gives no minimum"), None)]
    zones: dict[str, dict[str, list[str]]] = {}
    for h in placed:
        zones.setdefault(h.placement.cloud, {}).setdefault(str(h.placement.zone), []).append(
            h.name)
    if len(zones) < need.clouds:
        missing = [c for c in CLOUDS if c not in zones]
        found.append((_finding(
            f"stack ({env})",
            f"agent hosts in {len(zones)} cloud(s) ({', '.join(sorted(zones))}; none in "
            f"{', '.join(missing)}), {env} needs at least {need.clouds}"), None))
    for cloud, by_zone in sorted(zones.items()):
        if len(by_zone) < need.zones:
            names = sorted(n for group in by_zone.values() for n in group)
            found.append((_finding(
                f"{cloud} hosts {', '.join(names)}",
                f"in {len(by_zone)} zone(s) ({', '.join(sorted(by_zone))}), {env} needs "
                f"at least {need.zones}"), None))
        for zone, names in sorted(by_zone.items()):
            if len(names) < need.hosts_per_zone:
                found.append((_finding(
                    f"{cloud} zone {zone} ({', '.join(sorted(names))})",
                    f"{len(names)} host(s), {env} needs at least {need.hosts_per_zone} "
                    "per zone"), None))
    return found
