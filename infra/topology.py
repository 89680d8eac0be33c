"""Which hosts exist, where, at which address, and whom each one dials first.

A pure function of the StackConfig, shared by every host component and by bootstrap, so a
host's identity (name = certificate CN), its static address and the seed list are decided
once. Seeds are the first host of every zone of every cloud: a new host can join through
any surviving zone of any surviving cloud, which is the point of the fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from infra import ipam
from infra.config import CloudConfig, HandlerValue, StackConfig

LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class HostSpec:
    name: str
    """Node name and certificate CN, unique across the fleet."""
    cloud: str
    region: str
    zone: str
    subnet: IPv4Network
    address: IPv4Address
    """Static private address (cloud) or 127.0.0.1 (local)."""
    port: int
    """Agent gRPC port; on the local stack every host gets its own."""
    metrics_port: int
    seed: bool
    """First host of its zone: listed in every other host's seeds."""
    handlers: tuple[str, ...] | None = None
    """Task handlers it serves, its cloud's (`CloudConfig.handlers`); None: every one
    installed (the agent's default)."""
    handler_settings: dict[str, dict[str, HandlerValue]] = field(default_factory=dict)
    """`[handlers.<name>]` tables of the handlers it serves (`StackConfig.handler_settings`):
    an agent refuses a table for a handler it does not serve."""

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


def _cloud_hosts(cfg: StackConfig, cloud: CloudConfig, first_index: int) -> list[HostSpec]:
    local = cfg.environment == "local"
    subnets = ipam.zone_subnets(cloud.cidr, len(cloud.zones))
    hosts: list[HostSpec] = []
    served = {name: table for name, table in cfg.handler_settings.items()
              if cloud.handlers is None or name in cloud.handlers}
    for zone, subnet in zip(cloud.zones, subnets, strict=True):
        for i in range(cloud.hosts_per_zone):
            n = first_index + len(hosts)
            hosts.append(
                HostSpec(
                    name=f"{cloud.cloud}-{zone}-{i}",
                    cloud=cloud.cloud,
                    region=cloud.region,
                    zone=zone,
                    subnet=subnet,
                    address=IPv4Address(LOCAL_HOST) if local else ipam.host_address(subnet, i),
                    port=cfg.agent_port + n if local else cfg.agent_port,
                    metrics_port=cfg.metrics_port + n if local else cfg.metrics_port,
                    seed=i == 0,
                    handlers=cloud.handlers,
                    handler_settings=served,
                )
            )
    return hosts


def plan_hosts(cfg: StackConfig) -> tuple[HostSpec, ...]:
    """Every host of the environment, grouped by cloud in CLOUDS order."""
    hosts: list[HostSpec] = []
    for cloud in cfg.clouds:
        hosts.extend(_cloud_hosts(cfg, cloud, len(hosts)))
    return tuple(hosts)


def seeds_for(host: HostSpec, hosts: tuple[HostSpec, ...]) -> tuple[str, ...]:
    """Seed endpoints for `host`: every zone's first host, itself excluded."""
    return tuple(h.endpoint for h in hosts if h.seed and h.name != host.name)
