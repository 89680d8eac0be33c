"""The fleet's address plan: one /16 per (environment, cloud), carved deterministically.

Why a fixed plan rather than free-form CIDRs per stack: the cross-cloud VPN routes every
cloud's range to every other cloud, and an operator may later peer two environments (a
staging canary talking to prod seeds). Both break silently on overlap, so ranges are a pure
function of (environment, cloud), disjoint by construction, and an explicit override is
checked against the whole plan.

Layout inside 10.0.0.0/8:

    environment block  10.(16 * env_index).0.0/12      local 10.0/12, dev 10.16/12, ...
    cloud range        10.(16 * env_index + cloud_index + 1).0.0/16
    zone subnet i      the i-th /20 of the cloud range (hosts)
    gateway subnet     the first /27 of the last /20 (Azure GatewaySubnet, GCP/AWS unused)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

ENVIRONMENTS = ("local", "dev", "staging", "prod")
CLOUDS = ("aws", "azure", "gcp")

ZONE_PREFIX = 20
"""Each zone subnet is a /20: 4,091 usable addresses after the clouds' reservations."""

HOST_OFFSET = 10
"""Hosts take static addresses from .10 of their subnet: every cloud reserves at most the
first four (AWS and Azure: network, router, DNS, future; GCP: network and gateway), and
static addresses let every bootstrap name its seeds before any host exists."""

MAX_ZONE_SUBNETS = 15
"""The 16th /20 of a cloud range is kept for gateway subnets."""


class AddressPlanError(ValueError):
    """Address ranges overlap or do not fit; the message starts with the config key."""


def cloud_cidr(environment: str, cloud: str) -> IPv4Network:
    """The planned /16 of one cloud in one environment."""
    env_index = ENVIRONMENTS.index(environment)
    cloud_index = CLOUDS.index(cloud)
    return IPv4Network(f"10.{16 * env_index + cloud_index + 1}.0.0/16")


def zone_subnets(cidr: IPv4Network, count: int) -> tuple[IPv4Network, ...]:
    """The first `count` /20 subnets of a cloud range, one per zone."""
    if count > MAX_ZONE_SUBNETS:
        raise AddressPlanError(f"{cidr}: at most {MAX_ZONE_SUBNETS} zone subnets fit")
    subnets = cidr.subnets(new_prefix=ZONE_PREFIX)
    return tuple(next(subnets) for _ in range(count))


def gateway_subnet(cidr: IPv4Network) -> IPv4Network:
    """A /27 reserved for VPN gateways (Azure requires a subnet named GatewaySubnet)."""
    last = list(cidr.subnets(new_prefix=ZONE_PREFIX))[-1]
    return next(last.subnets(new_prefix=27))


def host_address(subnet: IPv4Network, index: int) -> IPv4Address:
    """The static private address of the `index`-th host in a zone subnet."""
    address = subnet.network_address + HOST_OFFSET + index
    if address >= subnet.broadcast_address:
        raise AddressPlanError(f"{subnet}: no room for host {index}")
    return address


def check_disjoint(ranges: Mapping[str, IPv4Network]) -> None:
    """Raise AddressPlanError naming the first key whose range overlaps another's."""
    items = sorted(ranges.items())
    for i, (key, net) in enumerate(items):
        for other_key, other in items[i + 1 :]:
            if net.overlaps(other):
                raise AddressPlanError(f"{other_key}: {other} overlaps {key} ({net})")


def parse_cidr(value: str, key: str) -> IPv4Network:
    """Parse an IPv4 network, naming `key` on error."""
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise AddressPlanError(f"{key}: not an IPv4 network: {exc}") from None
