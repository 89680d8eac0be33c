"""Inbound allow rules of the three clouds and the local stack, reduced to one shape: who
may reach which ports.

AWS security groups (inline `ingress`, `SecurityGroupRule`, `SecurityGroupIngressRule`),
Azure NSGs (inline `securityRules`, `SecurityRule`), GCP firewalls and the local stack's
network (`ingress`) say the same thing in four dialects; the guardrails reason about
`Opening`s only. Deny rules and egress are not openings: an NSG deny cannot be relied on
to cancel an allow (priorities decide), so every allow is judged on its own.

Properties arrive as the engine sends them (camelCase keys; `Mapping`/`Sequence` proxies
under CrossGuard), so readers use `.get` and the abstract collection types only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

WORLD_PREFIX = 8
"""A public range wider than /8 counts as the internet: splitting 0.0.0.0/0 into 0.0.0.0/1
and 128.0.0.0/1 must not get past the rules."""

WORLD_TAGS = frozenset({"*", "any", "internet"})
"""Azure source tags that mean everyone."""

GCP_DEFAULT_SOURCE = "0.0.0.0/0"
"""An INGRESS firewall with no source ranges, tags or service accounts admits everyone."""


@dataclass(frozen=True, slots=True)
class PortRange:
    low: int
    high: int

    def covers(self, port: int) -> bool:
        return self.low <= port <= self.high

    def overlaps(self, other: PortRange) -> bool:
        return self.low <= other.high and other.low <= self.high


ALL_PORTS = PortRange(0, 65535)
PORTED_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "6", "17", "132"})
"""Protocols whose rules carry ports; ICMP and the like reach no service port."""
ANY_PROTOCOL = frozenset({"-1", "all", "*"})


@dataclass(frozen=True, slots=True)
class Opening:
    """One allow rule: `rule` says where it sits in the resource (for the message)."""

    rule: str
    sources: tuple[str, ...]
    ports: tuple[PortRange, ...]

    def world_sources(self) -> tuple[str, ...]:
        return tuple(s for s in self.sources if is_world(s))

    def covers(self, port: int) -> bool:
        return any(r.covers(port) for r in self.ports)

    def overlaps(self, ports: PortRange) -> bool:
        return any(r.overlaps(ports) for r in self.ports)


def is_world(source: str) -> bool:
    """Whether a rule source admits the internet (see WORLD_PREFIX, WORLD_TAGS)."""
    if source.strip().lower() in WORLD_TAGS:
        return True
    try:
        net = ip_network(source.strip(), strict=False)
    except ValueError:
        return False  # a service tag (VirtualNetwork) or a security-group reference
    return net.prefixlen < WORLD_PREFIX and not net.is_private


def _ports(protocol: Any, low: Any, high: Any) -> tuple[PortRange, ...]:
    name = str(protocol).lower()
    if name in ANY_PROTOCOL:
        return (ALL_PORTS,)
    if name in PORTED_PROTOCOLS:
        return (PortRange(int(low), int(high)),)
    return ()


def _strings(*values: Any) -> tuple[str, ...]:
    """Flatten optional strings and string lists into one tuple."""
    found: list[str] = []
    for value in values:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Sequence):
            found.extend(str(v) for v in value)
    return tuple(found)


def _aws_group(props: Mapping[str, Any]) -> list[Opening]:
    return [
        Opening(f"ingress[{i}]", _strings(r.get("cidrBlocks"), r.get("ipv6CidrBlocks")),
                _ports(r.get("protocol"), r.get("fromPort", 0), r.get("toPort", 0)))
        for i, r in enumerate(props.get("ingress") or ())
    ]


def _aws_rule(props: Mapping[str, Any]) -> list[Opening]:
    if props.get("type") != "ingress":
        return []
    return [Opening("rule", _strings(props.get("cidrBlocks"), props.get("ipv6CidrBlocks")),
                    _ports(props.get("protocol"), props.get("fromPort", 0),
                           props.get("toPort", 0)))]


def _aws_ingress_rule(props: Mapping[str, Any]) -> list[Opening]:
    return [Opening("rule", _strings(props.get("cidrIpv4"), props.get("cidrIpv6")),
                    _ports(props.get("ipProtocol"), props.get("fromPort", 0),
                           props.get("toPort", 0)))]


def _port_range(text: str) -> PortRange:
    text = text.strip()
    if text == "*":
        return ALL_PORTS
    low, _, high = text.partition("-")
    return PortRange(int(low), int(high or low))


def _azure_opening(label: str, rule: Mapping[str, Any]) -> list[Opening]:
    if str(rule.get("direction", "")).lower() != "inbound":
        return []
    if str(rule.get("access", "")).lower() != "allow":
        return []
    protocol = str(rule.get("protocol", "*")).lower()
    ranges = _strings(rule.get("destinationPortRange"), rule.get("destinationPortRanges"))
    ports = (() if protocol not in PORTED_PROTOCOLS | ANY_PROTOCOL
             else tuple(_port_range(r) for r in ranges))
    sources = _strings(rule.get("sourceAddressPrefix"), rule.get("sourceAddressPrefixes"))
    return [Opening(label, sources, ports)]


def _azure_group(props: Mapping[str, Any]) -> list[Opening]:
    found: list[Opening] = []
    for i, rule in enumerate(props.get("securityRules") or ()):
        found += _azure_opening(f"securityRules[{rule.get('name', i)}]", rule)
    return found


def _azure_rule(props: Mapping[str, Any]) -> list[Opening]:
    return _azure_opening(f"rule {props.get('securityRuleName', '')}".strip(), props)


def _gcp_firewall(props: Mapping[str, Any]) -> list[Opening]:
    if str(props.get("direction") or "INGRESS").upper() != "INGRESS":
        return []
    sources = _strings(props.get("sourceRanges"))
    if not sources and not props.get("sourceTags") and not props.get("sourceServiceAccounts"):
        sources = (GCP_DEFAULT_SOURCE,)
    found = []
    for i, allow in enumerate(props.get("allows") or ()):
        protocol = str(allow.get("protocol", "")).lower()
        ports: tuple[PortRange, ...] = ()
        if protocol in PORTED_PROTOCOLS | ANY_PROTOCOL:
            ranges = _strings(allow.get("ports"))
            ports = tuple(_port_range(r) for r in ranges) if ranges else (ALL_PORTS,)
        found.append(Opening(f"allows[{i}]", sources, ports))
    return found


def _local_network(props: Mapping[str, Any]) -> list[Opening]:
    """The local stack's network (infra/components/local_network.py): TCP rules whose
    sources are CIDRs or the private names `fleet` and `host`."""
    return [Opening(f"ingress[{i}]", _strings(r.get("sources")),
                    (PortRange(int(r["ports"][0]), int(r["ports"][1])),))
            for i, r in enumerate(props.get("ingress") or ())]


LOCAL_NETWORK = "pulumi-python:dynamic/skyfleet:LocalNetwork"

READERS: dict[str, Callable[[Mapping[str, Any]], list[Opening]]] = {
    "aws:ec2/securityGroup:SecurityGroup": _aws_group,
    "aws:ec2/securityGroupRule:SecurityGroupRule": _aws_rule,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _aws_ingress_rule,
    "azure-native:network:NetworkSecurityGroup": _azure_group,
    "azure-native:network:SecurityRule": _azure_rule,
    "gcp:compute/firewall:Firewall": _gcp_firewall,
    LOCAL_NETWORK: _local_network,
}
"""Resource types that admit traffic, and how to read their allow rules."""


def openings(resource_type: str, props: Mapping[str, Any]) -> list[Opening]:
    """The allow rules of a firewall-like resource; [] for every other type."""
    reader = READERS.get(resource_type)
    return reader(props) if reader else []
