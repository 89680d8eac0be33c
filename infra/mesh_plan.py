"""The cross-cloud VPN mesh as data: which tunnels exist, their inside /30s, BGP ASNs.

Every pair of enabled clouds gets redundant IPsec tunnels with BGP over them:

    aws <-> gcp     4 tunnels: 2 AWS VPN connections (2 tunnels each), one per interface
                    of the GCP HA VPN gateway (GCP's FOUR_IPS_REDUNDANCY).
    aws <-> azure   4 tunnels: 2 AWS VPN connections, one per instance of the
                    active-active Azure gateway.
    azure <-> gcp   2 tunnels: GCP interface i <-> Azure instance i (TWO_IPS_REDUNDANCY).

Inside ranges are /30s in 169.254.0.0/16; AWS takes the first host, the peer the second
(AWS's convention, applied to every pair). Any tunnel touching Azure must use Azure's APIPA
window 169.254.21.0-169.254.22.255. AWS rejects a few /30s outright (RESERVED_BY_AWS).
ASNs are distinct per cloud and per environment, so environments can be peered later.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from itertools import combinations

from infra.ipam import CLOUDS, ENVIRONMENTS

LINK_LOCAL = IPv4Network("169.254.0.0/16")
AZURE_APIPA = (IPv4Address("169.254.21.0"), IPv4Address("169.254.22.255"))
RESERVED_BY_AWS = frozenset(
    IPv4Network(n)
    for n in (
        "169.254.0.0/30", "169.254.1.0/30", "169.254.2.0/30", "169.254.3.0/30",
        "169.254.4.0/30", "169.254.5.0/30", "169.254.169.252/30",
    )
)
PAIR_BLOCKS = {
    ("aws", "gcp"): IPv4Network("169.254.10.0/24"),
    ("aws", "azure"): IPv4Network("169.254.21.0/24"),
    ("azure", "gcp"): IPv4Network("169.254.22.0/24"),
}
TUNNELS_PER_PAIR = {("aws", "gcp"): 4, ("aws", "azure"): 4, ("azure", "gcp"): 2}


class MeshPlanError(ValueError):
    """The mesh plan breaks a provider rule (overlap, APIPA window, reserved range)."""


def asn(environment: str, cloud: str) -> int:
    """Private ASN of a cloud's VPN gateway; 64600 + 10 x env + cloud, clear of Azure's
    reserved 65515-65520."""
    return 64600 + 10 * ENVIRONMENTS.index(environment) + CLOUDS.index(cloud)


@dataclass(frozen=True, slots=True)
class Tunnel:
    a: str
    """The first cloud of the pair in CLOUDS order; takes the first inside address."""
    b: str
    index: int
    a_interface: int
    """Which gateway instance/interface/VPN connection on side a."""
    b_interface: int
    inside: IPv4Network
    label: str
    """Stable name: resource names and the PSK derivation both use it."""

    @property
    def a_address(self) -> IPv4Address:
        return self.inside.network_address + 1

    @property
    def b_address(self) -> IPv4Address:
        return self.inside.network_address + 2

    @property
    def pair(self) -> tuple[str, str]:
        return (self.a, self.b)


def plan_mesh(environment: str, clouds: tuple[str, ...]) -> tuple[Tunnel, ...]:
    """All tunnels between every pair of enabled clouds, validated."""
    ordered = [c for c in CLOUDS if c in clouds]
    tunnels = []
    for a, b in combinations(ordered, 2):
        block = list(PAIR_BLOCKS[(a, b)].subnets(new_prefix=30))
        count = TUNNELS_PER_PAIR[(a, b)]
        for i in range(count):
            # Four tunnels: two per instance on both sides; two tunnels: one per instance.
            side = i // 2 if count == 4 else i
            tunnels.append(
                Tunnel(a=a, b=b, index=i, a_interface=side, b_interface=side,
                       inside=block[i], label=f"{environment}-{a}-{b}-{i}")
            )
    check_mesh(tuple(tunnels))
    return tuple(tunnels)


def check_mesh(tunnels: tuple[Tunnel, ...]) -> None:
    seen: dict[IPv4Network, str] = {}
    for t in tunnels:
        if t.inside.prefixlen != 30 or not t.inside.subnet_of(LINK_LOCAL):
            raise MeshPlanError(f"{t.label}: inside range {t.inside} is not a /30 in {LINK_LOCAL}")
        if t.inside in RESERVED_BY_AWS:
            raise MeshPlanError(f"{t.label}: {t.inside} is reserved by AWS")
        if "azure" in t.pair and not (
            AZURE_APIPA[0] <= t.inside.network_address
            and t.inside.broadcast_address <= AZURE_APIPA[1]
        ):
            raise MeshPlanError(f"{t.label}: {t.inside} is outside Azure's APIPA window")
        for other, label in seen.items():
            if other.overlaps(t.inside):
                raise MeshPlanError(f"{t.label}: {t.inside} overlaps {label}")
        seen[t.inside] = t.label


def azure_apipa(tunnels: tuple[Tunnel, ...], instance: int) -> list[str]:
    """Custom BGP addresses the Azure gateway instance must own: Azure's side of every
    tunnel that lands on it."""
    out = []
    for t in tunnels:
        if t.a == "azure" and t.a_interface == instance:
            out.append(str(t.a_address))
        elif t.b == "azure" and t.b_interface == instance:
            out.append(str(t.b_address))
    return out
