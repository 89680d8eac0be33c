"""What every cloud's host component is given: the same plan, seen per cloud."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import TypedDict

from infra.components.bootstrap import FleetBootstrap
from infra.components.zone_rollout import RolloutChain
from infra.config import CloudConfig
from infra.topology import HostSpec


class SharedHostsArgs(TypedDict):
    """The HostsArgs fields that are the same for every cloud: typed key by key so the
    composition can build them once and pass them to each cloud's args with `**`."""

    environment: str
    boot: FleetBootstrap
    fleet_ranges: tuple[IPv4Network, ...]
    admin_ranges: tuple[IPv4Network, ...]
    agent_port: int
    metrics_port: int
    rollout: RolloutChain


@dataclass(frozen=True)
class HostsArgs:
    environment: str
    cloud: CloudConfig
    hosts: tuple[HostSpec, ...]
    """This cloud's share of `infra.topology.plan_hosts`."""
    boot: FleetBootstrap
    fleet_ranges: tuple[IPv4Network, ...]
    """Every cloud's range: the only sources allowed to reach the agent port."""
    admin_ranges: tuple[IPv4Network, ...]
    """Operator ranges allowed to reach the metrics port (never the world)."""
    agent_port: int
    metrics_port: int
    rollout: RolloutChain
    """The fleet-wide chain of zones a new runtime is rolled through, one at a time."""

    def by_zone(self) -> list[tuple[str, list[HostSpec]]]:
        """This cloud's hosts, zone by zone in config order (the rollout's order)."""
        return [(z, [h for h in self.hosts if h.zone == z]) for z in self.cloud.zones]
