"""What every cloud's host component is given: the same plan, seen per cloud."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from infra.components.bootstrap import FleetBootstrap
from infra.config import CloudConfig
from infra.topology import HostSpec


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
