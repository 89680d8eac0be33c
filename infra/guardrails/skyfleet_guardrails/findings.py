"""Rule names and the shape of a finding, shared by the rules and the pack.

A finding starts with its rule and the resource at fault (`no-public-ssh: web
(gcp:compute/firewall:Firewall): ...`), so a refused preview says what broke and where
without reading the pack.
"""

from __future__ import annotations

WORLD_OPEN_PORTS = "no-world-open-agent-ports"
PUBLIC_SSH = "no-public-ssh"
DISK_ENCRYPTION = "disks-encrypted"
IMDSV2 = "imdsv2-required"
PUBLIC_IP = "no-public-ip-on-agent-hosts"
REDUNDANCY = "minimum-redundancy"


def finding(rule: str, resource: str, detail: str) -> str:
    return f"{rule}: {resource}: {detail}"


def resource_label(name: str, resource_type: str) -> str:
    return f"{name} ({resource_type})"
