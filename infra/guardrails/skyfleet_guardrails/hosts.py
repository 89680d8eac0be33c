"""Rules on the agent hosts themselves: encrypted disks, IMDSv2, no public address; and
where each host sits (cloud, zone, environment) for the redundancy rule.

Every VM, NIC and instance a Skyfleet stack declares is an agent host, so the rules apply
to the resource types, not to tagged subsets (a host that lost its tags must not escape).
What is checkable per cloud:
- AWS: EBS encryption is off unless asked for (account-wide default encryption exists but
  a stack cannot see it), so `encrypted` must be true on every volume; IMDSv1 answers
  unless `httpTokens` is "required"; an instance gets a public IP from its subnet's
  default unless `associatePublicIpAddress` is explicitly false.
- Azure: managed disks are always encrypted at rest; what is off by default is
  encryption at host (temp disk, caches), and unmanaged VHD disks bypass managed-disk
  encryption, so both are checked. A public address comes from a NIC's ip configuration.
- GCP: persistent disks are always encrypted (Google-managed keys) and nothing in the
  API turns that off, so there is no GCP disk rule; a public address comes from an
  `accessConfigs` entry on a network interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skyfleet_guardrails import findings

AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_VOLUME = "aws:ebs/volume:Volume"
AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_NIC = "azure-native:network:NetworkInterface"
GCP_INSTANCE = "gcp:compute/instance:Instance"
LOCAL_AGENT = "pulumi-python:dynamic/skyfleet:LocalAgent"
"""The local stack's hosts (infra.components.local_hosts): agent processes."""

HOST_TYPES = frozenset({AWS_INSTANCE, AZURE_VM, GCP_INSTANCE, LOCAL_AGENT})

AWS_ENVIRONMENT_TAG = "skyfleet:environment"
AWS_ZONE_TAG = "skyfleet:zone"
AZURE_ENVIRONMENT_TAG = "skyfleet-environment"
GCP_ENVIRONMENT_LABEL = "skyfleet-environment"
"""Set by the host components; GCP labels and Azure tags cannot hold the AWS spelling."""


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str) else ()


def disk_encryption(resource_type: str, name: str, props: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if resource_type == AWS_INSTANCE:
        if _map(props.get("rootBlockDevice")).get("encrypted") is not True:
            problems.append("rootBlockDevice.encrypted is not true")
        for i, device in enumerate(_items(props.get("ebsBlockDevices"))):
            if _map(device).get("encrypted") is not True:
                problems.append(f"ebsBlockDevices[{i}].encrypted is not true")
    elif resource_type == AWS_VOLUME:
        if props.get("encrypted") is not True:
            problems.append("encrypted is not true")
    elif resource_type == AZURE_VM:
        if _map(props.get("securityProfile")).get("encryptionAtHost") is not True:
            problems.append("securityProfile.encryptionAtHost is not true")
        storage = _map(props.get("storageProfile"))
        disks = [("osDisk", storage.get("osDisk"))]
        disks += [(f"dataDisks[{i}]", d) for i, d in enumerate(_items(storage.get("dataDisks")))]
        for where, disk in disks:
            if _map(disk).get("vhd"):
                problems.append(f"storageProfile.{where} is an unmanaged VHD, not a managed disk")
    return _label(findings.DISK_ENCRYPTION, resource_type, name, problems)


def imdsv2(resource_type: str, name: str, props: Mapping[str, Any]) -> list[str]:
    """IMDSv1 lets any SSRF in a host read its role credentials; v2 needs a PUT first."""
    if resource_type != AWS_INSTANCE:
        return []
    options = _map(props.get("metadataOptions"))
    if options.get("httpTokens") == "required" or options.get("httpEndpoint") == "disabled":
        return []
    tokens = options.get("httpTokens", "unset")
    return _label(findings.IMDSV2, resource_type, name,
                  [f'metadataOptions.httpTokens is {tokens!r}, must be "required"'])


def public_ip(resource_type: str, name: str, props: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if resource_type == AWS_INSTANCE:
        if props.get("associatePublicIpAddress") is not False:
            problems.append("associatePublicIpAddress is not false (the subnet default "
                            "would decide)")
    elif resource_type == AZURE_NIC:
        for i, conf in enumerate(_items(props.get("ipConfigurations"))):
            if _map(conf).get("publicIPAddress"):
                problems.append(f"ipConfigurations[{i}] has a publicIPAddress")
    elif resource_type == AZURE_VM:
        nics = _items(_map(props.get("networkProfile")).get("networkInterfaceConfigurations"))
        for i, nic in enumerate(nics):
            for j, conf in enumerate(_items(_map(nic).get("ipConfigurations"))):
                if _map(conf).get("publicIPAddressConfiguration"):
                    problems.append(f"networkInterfaceConfigurations[{i}].ipConfigurations[{j}]"
                                    " has a publicIPAddressConfiguration")
    elif resource_type == GCP_INSTANCE:
        for i, nic in enumerate(_items(props.get("networkInterfaces"))):
            for field in ("accessConfigs", "ipv6AccessConfigs"):
                if _items(_map(nic).get(field)):
                    problems.append(f"networkInterfaces[{i}].{field} gives it a public address")
    return _label(findings.PUBLIC_IP, resource_type, name, problems)


def _label(rule: str, resource_type: str, name: str, problems: list[str]) -> list[str]:
    where = findings.resource_label(name, resource_type)
    return [findings.finding(rule, where, p) for p in problems]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an agent host runs; None where its properties do not say."""

    cloud: str
    zone: str | None
    environment: str | None


def placement(resource_type: str, props: Mapping[str, Any]) -> Placement | None:
    """The placement of an agent host, or None when the resource is not a host."""
    if resource_type == AWS_INSTANCE:
        tags = _map(props.get("tags"))
        zone = tags.get(AWS_ZONE_TAG) or props.get("availabilityZone")
        return Placement("aws", zone, tags.get(AWS_ENVIRONMENT_TAG))
    if resource_type == AZURE_VM:
        zones = _items(props.get("zones"))
        return Placement("azure", zones[0] if zones else None,
                         _map(props.get("tags")).get(AZURE_ENVIRONMENT_TAG))
    if resource_type == GCP_INSTANCE:
        return Placement("gcp", props.get("zone"),
                         _map(props.get("labels")).get(GCP_ENVIRONMENT_LABEL))
    if resource_type == LOCAL_AGENT:
        return Placement(str(props.get("cloud")), props.get("zone"), props.get("environment"))
    return None
