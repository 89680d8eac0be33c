"""Rules on what the internet may reach: never the agent's ports, never SSH.

The agent's gRPC port also serves the operator (admin) API, so "agent/admin" is one port;
the metrics port is the other. Both must only admit the fleet's private ranges and the
operators' `adminRanges` (see the host components). SSH is never opened at all: AWS hosts
are reached through SSM Session Manager, GCP through OS Login/IAP, Azure through Bastion or
the serial console.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skyfleet_guardrails import findings
from skyfleet_guardrails.ingress import PortRange, openings

SSH_PORT = 22


def world_open_ports(resource_type: str, name: str, props: Mapping[str, Any],
                     protected: Mapping[str, PortRange]) -> list[str]:
    """A finding per allow rule that lets the internet reach a protected port
    (`protected` maps a label such as "agent/admin" to its ports: one, or a range on a
    stack whose hosts share an address and take consecutive ports)."""
    found = []
    for opening in openings(resource_type, props):
        world = opening.world_sources()
        if not world:
            continue
        for label, ports in protected.items():
            if opening.overlaps(ports):
                shown = str(ports.low) if ports.low == ports.high else f"{ports.low}-{ports.high}"
                found.append(findings.finding(
                    findings.WORLD_OPEN_PORTS, findings.resource_label(name, resource_type),
                    f"{opening.rule} opens the {label} port {shown} to {', '.join(world)}",
                ))
    return found


def public_ssh(resource_type: str, name: str, props: Mapping[str, Any]) -> list[str]:
    """A finding per allow rule that lets the internet reach port 22 (IPv4 or IPv6)."""
    return [
        findings.finding(
            findings.PUBLIC_SSH, findings.resource_label(name, resource_type),
            f"{opening.rule} opens SSH (22) to {', '.join(opening.world_sources())}",
        )
        for opening in openings(resource_type, props)
        if opening.world_sources() and opening.covers(SSH_PORT)
    ]
