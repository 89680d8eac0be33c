"""The CrossGuard pack, called the way the engine calls it: each policy's `validate` with
ResourceValidationArgs / StackValidationArgs built from resource properties (engine
spelling: camelCase) and the pack config `python -m infra.pack_config` renders. Every
failing case must name the rule and the resource at fault. Runs in the pack's own
virtualenv (scripts/test.sh); the committed stacks against the served pack are
tests/infra/test_infra_guardrails_pack.py."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from skyfleet_guardrails import pack
from skyfleet_guardrails.ingress import is_world

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
NSG = "azure-native:network:NetworkSecurityGroup"
NSG_RULE = "azure-native:network:SecurityRule"
FIREWALL = "gcp:compute/firewall:Firewall"
EC2 = "aws:ec2/instance:Instance"
EBS = "aws:ebs/volume:Volume"
AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_NIC = "azure-native:network:NetworkInterface"
GCE = "gcp:compute/instance:Instance"
LOCAL = "pulumi-python:dynamic/skyfleet:LocalAgent"
LOCAL_NETWORK = "pulumi-python:dynamic/skyfleet:LocalNetwork"

PORTS = {"ports": {"agent/admin": [7470, 7470], "metrics": [9470, 9470]}}
"""A cloud stack's pack config: every host on the default ports."""
MINIMUMS = {"environments": {
    "local": {"minClouds": 1, "minZones": 1, "minHostsPerZone": 1},
    "dev": {"minClouds": 1, "minZones": 2, "minHostsPerZone": 1},
    "staging": {"minClouds": 2, "minZones": 2, "minHostsPerZone": 1},
    "prod": {"minClouds": 3, "minZones": 3, "minHostsPerZone": 2},
}}
"""The shape infra.pack_config renders (tests/infra checks the real rendering)."""


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def violations(policy: ResourceValidationPolicy, resource_type: str, props: dict[str, Any],
               name: str = "subject", config: dict[str, Any] | None = None) -> list[str]:
    config = PORTS if config is None and policy is pack.WORLD_OPEN_PORTS else config
    args = ResourceValidationArgs(resource_type, props, f"urn:pulumi:t::skyfleet::{resource_type}"
                                  f"::{name}", name, _opts(), None, config)
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def sg(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"ingress": list(rules)}


def tcp(port: int | tuple[int, int], *cidrs: str, v6: tuple[str, ...] = ()) -> dict[str, Any]:
    low, high = port if isinstance(port, tuple) else (port, port)
    return {"protocol": "tcp", "fromPort": low, "toPort": high, "cidrBlocks": list(cidrs),
            "ipv6CidrBlocks": list(v6)}


def nsg_rule(port: str, *sources: str, access: str = "Allow", name: str = "r") -> dict[str, Any]:
    return {"name": name, "direction": "Inbound", "access": access, "protocol": "Tcp",
            "sourcePortRange": "*", "destinationPortRange": port,
            "sourceAddressPrefixes": list(sources), "destinationAddressPrefix": "*"}


def firewall(*ports: str, sources: tuple[str, ...] = ("0.0.0.0/0",), protocol: str = "tcp",
             **extra: Any) -> dict[str, Any]:
    allow: dict[str, Any] = {"protocol": protocol}
    if ports:
        allow["ports"] = list(ports)
    return {"network": "vpc", "sourceRanges": list(sources), "allows": [allow], **extra}


FLEET = "10.16.0.0/16"

FAILING = [
    # (policy, resource type, props, detail the message must carry)
    (pack.WORLD_OPEN_PORTS, SG, sg(tcp(7470, FLEET, "0.0.0.0/0")), "agent/admin port 7470"),
    (pack.WORLD_OPEN_PORTS, SG, sg(tcp(9470, "0.0.0.0/1", "128.0.0.0/1")), "metrics port 9470"),
    (pack.WORLD_OPEN_PORTS, SG, sg({"protocol": "-1", "fromPort": 0, "toPort": 0,
                                    "ipv6CidrBlocks": ["::/0"]}), "::/0"),
    (pack.WORLD_OPEN_PORTS, SG_RULE, {"type": "ingress", **tcp((7000, 8000), "0.0.0.0/0")},
     "agent/admin port 7470"),
    (pack.WORLD_OPEN_PORTS, SG_INGRESS, {"ipProtocol": "tcp", "fromPort": 9470,
                                         "toPort": 9470, "cidrIpv4": "0.0.0.0/0"}, "9470"),
    (pack.WORLD_OPEN_PORTS, NSG, {"securityRules": [nsg_rule("7470", "*", name="agent")]},
     "securityRules[agent]"),
    (pack.WORLD_OPEN_PORTS, NSG_RULE, nsg_rule("7000-9999", "Internet"), "Internet"),
    (pack.WORLD_OPEN_PORTS, FIREWALL, firewall(), "allows[0] opens the agent/admin port"),
    (pack.WORLD_OPEN_PORTS, FIREWALL, firewall("7470", sources=()), "0.0.0.0/0"),
    (pack.PUBLIC_SSH, SG, sg(tcp(22, "0.0.0.0/0")), "ingress[0] opens SSH (22)"),
    (pack.PUBLIC_SSH, SG, sg(tcp((20, 25), v6=("::/0",))), "::/0"),
    (pack.PUBLIC_SSH, NSG, {"securityRules": [nsg_rule("22", "Internet", name="ssh")]},
     "securityRules[ssh]"),
    (pack.PUBLIC_SSH, NSG_RULE, {**nsg_rule("*", "0.0.0.0/0"), "securityRuleName": "any"},
     "rule any"),
    (pack.PUBLIC_SSH, FIREWALL, firewall("22"), "allows[0] opens SSH"),
    (pack.DISK_ENCRYPTION, EC2, {"rootBlockDevice": {"volumeSize": 20}},
     "rootBlockDevice.encrypted"),
    (pack.DISK_ENCRYPTION, EC2, {"rootBlockDevice": {"encrypted": True},
                                 "ebsBlockDevices": [{"encrypted": False}]},
     "ebsBlockDevices[0].encrypted"),
    (pack.DISK_ENCRYPTION, EBS, {"size": 10}, "encrypted is not true"),
    (pack.DISK_ENCRYPTION, AZURE_VM, {"securityProfile": {"securityType": "TrustedLaunch"}},
     "encryptionAtHost"),
    (pack.DISK_ENCRYPTION, AZURE_VM, {
        "securityProfile": {"encryptionAtHost": True},
        "storageProfile": {"osDisk": {"vhd": {"uri": "https://x.blob/vhds/os.vhd"}}},
    }, "osDisk is an unmanaged VHD"),
    (pack.IMDSV2, EC2, {"metadataOptions": {"httpTokens": "optional"}}, "'optional'"),
    (pack.IMDSV2, EC2, {}, "'unset'"),
    (pack.PUBLIC_IP, EC2, {"associatePublicIpAddress": True}, "associatePublicIpAddress"),
    (pack.PUBLIC_IP, EC2, {}, "associatePublicIpAddress"),
    (pack.PUBLIC_IP, AZURE_NIC, {"ipConfigurations": [{"name": "p",
                                                       "publicIPAddress": {"id": "pip"}}]},
     "ipConfigurations[0] has a publicIPAddress"),
    (pack.PUBLIC_IP, AZURE_VM, {"networkProfile": {"networkInterfaceConfigurations": [
        {"ipConfigurations": [{"publicIPAddressConfiguration": {"name": "pip"}}]}]}},
     "publicIPAddressConfiguration"),
    (pack.PUBLIC_IP, GCE, {"networkInterfaces": [{"subnetwork": "s", "accessConfigs": [{}]}]},
     "networkInterfaces[0].accessConfigs"),
]

PASSING = [
    (pack.WORLD_OPEN_PORTS, SG, sg(tcp(7470, FLEET, "203.0.113.0/24"), tcp(443, "0.0.0.0/0"))),
    (pack.WORLD_OPEN_PORTS, SG, sg({"protocol": "icmp", "fromPort": -1, "toPort": -1,
                                    "cidrBlocks": ["0.0.0.0/0"]})),
    (pack.WORLD_OPEN_PORTS, SG_RULE, {"type": "egress", **tcp((0, 65535), "0.0.0.0/0")}),
    (pack.WORLD_OPEN_PORTS, NSG, {"securityRules": [
        nsg_rule("7470", FLEET), nsg_rule("*", "VirtualNetwork", access="Deny"),
        nsg_rule("*", "*", access="Deny")]}),
    (pack.WORLD_OPEN_PORTS, FIREWALL, firewall("7470", sources=(FLEET,))),
    (pack.WORLD_OPEN_PORTS, FIREWALL, firewall(sources=("0.0.0.0/0",), protocol="icmp")),
    (pack.WORLD_OPEN_PORTS, FIREWALL, firewall(direction="EGRESS")),
    (pack.PUBLIC_SSH, SG, sg(tcp(22, FLEET))),
    (pack.PUBLIC_SSH, FIREWALL, firewall("22", sources=(), sourceTags=["bastion"])),
    (pack.DISK_ENCRYPTION, EC2, {"rootBlockDevice": {"encrypted": True},
                                 "ebsBlockDevices": [{"encrypted": True}]}),
    (pack.DISK_ENCRYPTION, AZURE_VM, {"securityProfile": {"encryptionAtHost": True},
                                      "storageProfile": {"osDisk": {"managedDisk": {}}}}),
    (pack.DISK_ENCRYPTION, GCE, {"bootDisk": {"initializeParams": {"size": 20}}}),
    (pack.IMDSV2, EC2, {"metadataOptions": {"httpTokens": "required"}}),
    (pack.IMDSV2, EC2, {"metadataOptions": {"httpEndpoint": "disabled"}}),
    (pack.PUBLIC_IP, EC2, {"associatePublicIpAddress": False}),
    (pack.PUBLIC_IP, AZURE_NIC, {"ipConfigurations": [{"privateIPAddress": "10.0.0.4"}]}),
    (pack.PUBLIC_IP, GCE, {"networkInterfaces": [{"subnetwork": "s", "networkIp": "10.0.0.4"}]}),
]


@pytest.mark.parametrize(("policy", "resource_type", "props", "detail"), FAILING)
def test_each_rule_refuses_naming_itself_and_the_resource(policy, resource_type, props, detail):
    found = violations(policy, resource_type, props, name="offender")
    assert found, f"{policy.name} let {props} pass"
    assert any(detail in m for m in found), found
    for message in found:
        assert message.startswith(f"{policy.name}: offender ({resource_type}): ")


@pytest.mark.parametrize(("policy", "resource_type", "props"), PASSING)
def test_each_rule_passes_what_it_must_not_refuse(policy, resource_type, props):
    assert violations(policy, resource_type, props) == []


def test_world_open_ports_follow_the_pack_config():
    moved = {"ports": {"agent/admin": [8000, 8000], "metrics": [9100, 9100]}}
    assert violations(pack.WORLD_OPEN_PORTS, SG, sg(tcp(7470, "0.0.0.0/0")), config=moved) == []
    found = violations(pack.WORLD_OPEN_PORTS, SG, sg(tcp((8000, 9100), "0.0.0.0/0")),
                       config=moved)
    assert [m.rsplit(": ", 1)[1] for m in found] == [
        "ingress[0] opens the agent/admin port 8000 to 0.0.0.0/0",
        "ingress[0] opens the metrics port 9100 to 0.0.0.0/0",
    ]


@pytest.mark.parametrize(
    ("source", "world"),
    [("0.0.0.0/0", True), ("::/0", True), ("128.0.0.0/1", True), ("2000::/3", True),
     ("*", True), ("Internet", True), ("10.0.0.0/8", False), ("203.0.113.0/24", False),
     ("VirtualNetwork", False), ("sg-0123", False)],
)
def test_what_counts_as_the_internet(source, world):
    assert is_world(source) is world


# --- minimum redundancy (stack policy) ---------------------------------------------------

def host(cloud: str, zone: str, env: str | None, index: int = 0) -> PolicyResource:
    name = f"{cloud}-{zone}-{index}"
    if cloud == "aws":
        typ, props = EC2, {"tags": {"skyfleet:zone": zone, **_env("skyfleet:environment", env)}}
    elif cloud == "azure":
        typ, props = AZURE_VM, {"zones": [zone], "tags": _env("skyfleet-environment", env)}
    elif cloud == "gcp":
        typ, props = GCE, {"zone": zone, "labels": _env("skyfleet-environment", env)}
    else:
        typ, props = LOCAL, {"cloud": cloud, "zone": zone, **_env("environment", env)}
    return PolicyResource(typ, props, f"urn:pulumi:t::skyfleet::{typ}::{name}", name, _opts(),
                          None, None, [], {})


def _env(key: str, env: str | None) -> dict[str, str]:
    return {key: env} if env else {}


def fleet(env: str, clouds=("aws", "azure", "gcp"), zones=("1", "2", "3"),
          per_zone: int = 2) -> list[PolicyResource]:
    return [host(c, z, env, i) for c in clouds for z in zones for i in range(per_zone)]


def stack_violations(resources: list[PolicyResource]) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    pack.REDUNDANCY.validate(StackValidationArgs(resources, MINIMUMS),
                             lambda message, urn=None: found.append((message, urn)))
    return found


def test_redundancy_passes_each_environment_at_its_minimum():
    assert stack_violations(fleet("prod")) == []
    assert stack_violations(fleet("staging", clouds=("aws", "gcp"), zones=("1", "2"),
                                  per_zone=1)) == []
    assert stack_violations(fleet("dev", clouds=("gcp",), zones=("1", "2"), per_zone=1)) == []
    assert stack_violations([host("aws", "a", "local")]) == []


@pytest.mark.parametrize(
    ("resources", "where", "detail"),
    [
        (fleet("prod", clouds=("aws", "gcp")), "stack (prod)",
         "2 cloud(s) (aws, gcp; none in azure), prod needs at least 3"),
        ([h for h in fleet("prod") if not (h.name.startswith("azure-3"))],
         "azure hosts azure-1-0, azure-1-1, azure-2-0, azure-2-1", "prod needs at least 3"),
        ([h for h in fleet("prod") if h.name != "gcp-2-1"], "gcp zone 2 (gcp-2-0)",
         "1 host(s), prod needs at least 2 per zone"),
        (fleet("dev", clouds=("aws",), zones=("1",), per_zone=3), "aws hosts aws-1-0",
         "dev needs at least 2"),
        (fleet("prod") + fleet("dev", clouds=("aws",), zones=("4", "5"), per_zone=1), "stack",
         "mixes environments dev, prod"),
        (fleet("prod") + [host("gcp", "9", None)], "gcp-9-0 (gcp:compute/instance:Instance)",
         "no environment tag"),
        ([], "stack", "declares no agent hosts"),
        (fleet("qa"), "stack", "environment 'qa', which the pack config gives no minimum"),
    ],
)
def test_redundancy_refuses_naming_the_rule_and_what_is_short(resources, where, detail):
    found = stack_violations(resources)
    assert any(m.startswith(f"minimum-redundancy: {where}") and detail in m
               for m, _ in found), found


def test_an_untagged_host_is_reported_against_its_own_urn():
    stray = host("aws", "b", None)
    (message, urn), = stack_violations(fleet("prod") + [stray])
    assert urn == stray.urn and stray.name in message


# --- the local stack's network ----------------------------------------------------------

def local_network(*sources: str) -> dict[str, Any]:
    return {"mode": "netns", "ingress": [{"ports": [7470, 7478], "sources": list(sources)},
                                         {"ports": [9470, 9478], "sources": list(sources)}]}


def test_the_local_network_is_judged_like_a_security_group():
    local = {"ports": {"agent/admin": [7470, 7478], "metrics": [9470, 9478]}}
    assert violations(pack.WORLD_OPEN_PORTS, LOCAL_NETWORK,
                      local_network("fleet", "host", "192.168.100.0/24"), config=local) == []
    found = violations(pack.WORLD_OPEN_PORTS, LOCAL_NETWORK,
                       local_network("fleet", "host", "0.0.0.0/1", "128.0.0.0/1"),
                       name="network", config=local)
    assert [m.rsplit(": ", 1)[1] for m in found] == [
        "ingress[0] opens the agent/admin port 7470-7478 to 0.0.0.0/1, 128.0.0.0/1",
        "ingress[1] opens the metrics port 9470-9478 to 0.0.0.0/1, 128.0.0.0/1",
    ]
