"""The guardrail rules as CrossGuard policies; `__main__` serves them as a policy pack.

Every policy is mandatory: a violation fails `pulumi preview` and `pulumi up`. Two take
config, required (the engine refuses to run the pack without it, rather than the pack
guessing the stack's ports or minimums): the network rule the protected port ranges, the
redundancy rule the minimums per environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from skyfleet_guardrails import findings, hosts, network
from skyfleet_guardrails.ingress import PortRange
from skyfleet_guardrails.redundancy import StackHost, minimum_redundancy, minimums

PACK_NAME = "skyfleet-guardrails"

Rule = Callable[[str, str, Mapping[str, Any]], list[str]]
"""(resource type, resource name, properties) -> findings."""


def _resource_policy(name: str, description: str, rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in rule(args.resource_type, args.name, args.props):
            report(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY)


def protected_ports(config: Mapping[str, Any]) -> dict[str, PortRange]:
    """`ports`: {label: [low, high]}; the agent port also serves the admin API, hence one
    "agent/admin" label."""
    return {label: PortRange(int(r[0]), int(r[1])) for label, r in config["ports"].items()}


def _validate_world_open(args: ResourceValidationArgs, report: ReportViolation) -> None:
    ports = protected_ports(args.get_config())
    for message in network.world_open_ports(args.resource_type, args.name, args.props, ports):
        report(message, None)


def _validate_redundancy(args: StackValidationArgs, report: ReportViolation) -> None:
    stack_hosts = []
    for resource in args.resources:
        where = hosts.placement(resource.resource_type, resource.props)
        if where is not None:
            stack_hosts.append(
                StackHost(resource.name, resource.resource_type, resource.urn, where)
            )
    for message, urn in minimum_redundancy(stack_hosts, minimums(args.get_config())):
        report(message, urn)


WORLD_OPEN_PORTS = ResourceValidationPolicy(
    name=findings.WORLD_OPEN_PORTS,
    description="No security group, NSG or firewall admits the internet to the agent/admin "
    "or metrics port.",
    validate=_validate_world_open,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "ports": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}},
    }, required=["ports"]),
)
PUBLIC_SSH = _resource_policy(
    findings.PUBLIC_SSH, "No security group, NSG or firewall admits the internet to SSH (22).",
    network.public_ssh)
DISK_ENCRYPTION = _resource_policy(
    findings.DISK_ENCRYPTION, "Agent host disks are encrypted (EBS encrypted; Azure "
    "encryption at host on managed disks).", hosts.disk_encryption)
IMDSV2 = _resource_policy(
    findings.IMDSV2, "EC2 instances require IMDSv2 session tokens.", hosts.imdsv2)
PUBLIC_IP = _resource_policy(
    findings.PUBLIC_IP, "Agent hosts have no public IP address; egress goes through NAT.",
    hosts.public_ip)
REDUNDANCY = StackValidationPolicy(
    name=findings.REDUNDANCY,
    description="Each environment keeps its minimum of clouds, zones per cloud and hosts "
    "per zone.",
    validate=_validate_redundancy,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "environments": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["minClouds", "minZones", "minHostsPerZone"],
            "properties": {k: {"type": "integer", "minimum": 0}
                           for k in ("minClouds", "minZones", "minHostsPerZone")}}},
    }, required=["environments"]),
)

POLICIES = [WORLD_OPEN_PORTS, PUBLIC_SSH, DISK_ENCRYPTION, IMDSV2, PUBLIC_IP, REDUNDANCY]
