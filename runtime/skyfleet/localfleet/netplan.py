"""The address and name plan of a namespaced local fleet: pure, so it is tested without root.

One fleet owns one /16 block and one short prefix. Inside the block:

    <block>.0.0/30      the link root namespace <-> router: root .1, router .2
    <block>.<c+1>.0/24  cloud number c (clouds in plan order): agents .1, .2, ...; router .254

Every interface and namespace name starts with the prefix, so parallel fleets never
collide and whatever a crashed run left behind is found by its prefix. Linux caps
interface names at 15 bytes (IFNAMSIZ - 1), which bounds the prefix and the agent count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from skyfleet.config.agent import NODE_NAME

MAX_AGENTS = 999
"""Agent numbers are at most three digits in interface names (`<prefix>-p<n>`)."""

AGENTS_PER_CLOUD = 253
"""A cloud's /24 holds agents at .1-.253; .254 is the router's leg, .255 broadcast."""

_PREFIX = re.compile(r"[a-z][a-z0-9]{0,9}")


class PlanError(ValueError):
    """The requested network cannot be laid out; the message names the bad value."""


def router_namespace(prefix: str) -> str:
    """The namespace holding the bridges; creating it is how a prefix is claimed."""
    return f"{prefix}-router"


def host_interface(prefix: str) -> str:
    """The root namespace's end of the root <-> router link (the only device we add there)."""
    return f"{prefix}-h"


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    prefix: str
    """Starts every namespace and interface name of this fleet, e.g. `sf3a9c`."""
    block: IPv4Network
    """The /16 this fleet's addresses come from; the root namespace routes it to the router."""
    clouds: tuple[str, ...]
    """Cloud labels; the position gives the subnet (first cloud -> <block>.1.0/24)."""
    agents: tuple[tuple[str, str], ...]
    """(agent name, cloud) in a fixed order; the order gives interface numbers."""

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise PlanError(f"prefix: {self.prefix!r} is not 1-10 lowercase letters/digits")
        if self.block.version != 4 or self.block.prefixlen != 16:
            raise PlanError(f"block: expected an IPv4 /16, got {self.block}")
        if not self.clouds:
            raise PlanError("clouds: at least one cloud is needed")
        if len(set(self.clouds)) != len(self.clouds):
            raise PlanError(f"clouds: listed twice in {self.clouds}")
        if len(self.clouds) > 254:
            raise PlanError(f"clouds: {len(self.clouds)} clouds do not fit a /16 (max 254)")
        if len(self.agents) > MAX_AGENTS:
            raise PlanError(f"agents: {len(self.agents)} agents, at most {MAX_AGENTS}")
        seen: set[str] = set()
        for name, cloud in self.agents:
            if not NODE_NAME.fullmatch(name):  # it becomes part of a namespace name
                raise PlanError(f"agents: {name!r} is not a node name")
            if name in seen:
                raise PlanError(f"agents: {name!r} is listed twice")
            seen.add(name)
            if cloud not in self.clouds:
                raise PlanError(f"agents: {name!r} is in cloud {cloud!r}, not one of {self.clouds}")
        for cloud in self.clouds:
            count = sum(1 for _, c in self.agents if c == cloud)
            if count > AGENTS_PER_CLOUD:
                raise PlanError(f"agents: cloud {cloud!r} has {count}, at most {AGENTS_PER_CLOUD}")

    @classmethod
    def for_agents(
        cls,
        prefix: str,
        block: IPv4Network,
        agents: Iterable[tuple[str, str]],
        clouds: Iterable[str] | None = None,
    ) -> NetworkPlan:
        """A plan for (name, cloud) pairs; clouds default to the sorted set of their clouds."""
        pairs = tuple(agents)
        order = tuple(clouds) if clouds is not None else tuple(sorted({c for _, c in pairs}))
        return cls(prefix=prefix, block=block, clouds=order, agents=pairs)

    @classmethod
    def of_record(cls, record: dict[str, object]) -> NetworkPlan:
        """The plan a record of it names (the `local` stack's `network` output:
        prefix, block, clouds, agents), e.g. to cut or heal a cloud of a running fleet."""
        agents = record["agents"]
        clouds = record["clouds"]
        assert isinstance(agents, list) and isinstance(clouds, list)
        return cls(prefix=str(record["prefix"]), block=IPv4Network(str(record["block"])),
                   clouds=tuple(str(c) for c in clouds),
                   agents=tuple((str(a), str(c)) for a, c in agents))

    # Names --------------------------------------------------------------------------------

    @property
    def router_namespace(self) -> str:
        return router_namespace(self.prefix)

    @property
    def host_interface(self) -> str:
        return host_interface(self.prefix)

    @property
    def router_uplink(self) -> str:
        """The router's end of the root <-> router link."""
        return self._ifname("r")

    def namespace(self, agent: str) -> str:
        self._index(agent)
        return f"{self.prefix}-agent-{agent}"

    def bridge(self, cloud: str) -> str:
        return self._ifname(f"b{self._cloud_index(cloud)}")

    def router_port(self, agent: str) -> str:
        """The router's end of the agent's veth, enslaved to its cloud's bridge."""
        return self._ifname(f"p{self._index(agent)}")

    def agent_interface(self, agent: str) -> str:
        """The agent's end of its veth, inside the agent's namespace."""
        return self._ifname(f"a{self._index(agent)}")

    # Addresses ----------------------------------------------------------------------------

    @property
    def host_address(self) -> IPv4Interface:
        return IPv4Interface(f"{self.block.network_address + 1}/30")

    @property
    def router_address(self) -> IPv4Interface:
        return IPv4Interface(f"{self.block.network_address + 2}/30")

    def subnet(self, cloud: str) -> IPv4Network:
        base = self.block.network_address + 256 * (self._cloud_index(cloud) + 1)
        return IPv4Network(f"{base}/24")

    def gateway(self, cloud: str) -> IPv4Interface:
        """The router's leg in the cloud: the bridge's address and the agents' default route."""
        return IPv4Interface(f"{self.subnet(cloud).network_address + 254}/24")

    def address(self, agent: str) -> IPv4Address:
        cloud = self.cloud_of(agent)
        position = [n for n, c in self.agents if c == cloud].index(agent)
        return self.subnet(cloud).network_address + position + 1

    def cloud_of(self, agent: str) -> str:
        return self.agents[self._index(agent)][1]

    def agents_in(self, cloud: str) -> list[str]:
        self._cloud_index(cloud)
        return [n for n, c in self.agents if c == cloud]

    # ---------------------------------------------------------------------------------------

    def _index(self, agent: str) -> int:
        for i, (name, _) in enumerate(self.agents):
            if name == agent:
                return i
        raise PlanError(f"agent: {agent!r} is not in this network")

    def _cloud_index(self, cloud: str) -> int:
        try:
            return self.clouds.index(cloud)
        except ValueError:
            raise PlanError(f"cloud: {cloud!r} is not one of {self.clouds}") from None

    def _ifname(self, suffix: str) -> str:
        # At most 10 (prefix) + 1 + 4 ("p999") = 15 bytes: the validation above keeps every
        # name within IFNAMSIZ.
        return f"{self.prefix}-{suffix}"
