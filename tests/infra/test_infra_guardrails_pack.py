"""The guardrail pack as the engine meets it: `infra/guardrails` started as a process
with its own virtualenv's interpreter (as the language host runs it), configured with
`infra.pack_config`'s rendering of a stack, spoken to over the analyzer gRPC protocol
(GetAnalyzerInfo, Configure, Analyze, AnalyzeStack) from this, the program's, virtualenv.
The pack under the real engine is tests/infra/test_infra_engine.py; its rules one by one,
infra/guardrails/tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import grpc
import pulumi
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra import pack_config
from tests.infra.mocks import REPO_ROOT, SECRET_SIG, plain

pytestmark = pytest.mark.realproc

WORLD_OPEN_PORTS = "no-world-open-agent-ports"
REDUNDANCY = "minimum-redundancy"
POLICIES = {WORLD_OPEN_PORTS, "no-public-ssh", "disks-encrypted", "imdsv2-required",
            "no-public-ip-on-agent-hosts", REDUNDANCY}


ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
"""The engine's marker of a serialized asset (pulumi.runtime.rpc)."""


def wire(value: Any) -> Any:
    """A mock-recorded value as the engine sends it: assets in their serialized form."""
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    if isinstance(value, pulumi.StringAsset):
        return {SECRET_SIG: ASSET_SIG, "text": value.text}
    if isinstance(value, pulumi.FileAsset):
        return {SECRET_SIG: ASSET_SIG, "path": value.path}
    return value


def struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(wire(props))
    return message


@pytest.fixture(scope="module")
def serve() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # The engine starts the pack with its own address and reads a port.
    pack = REPO_ROOT / "infra" / "guardrails"
    proc = subprocess.Popen([str(pack / "venv" / "bin" / "python"), "-u", str(pack),
                             "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        if not line.strip().isdigit():
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"policy pack did not start: {line!r} {err.decode()[-2000:]}")
        with grpc.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.kill()
        proc.communicate()


def configure(analyzer: analyzer_pb2_grpc.AnalyzerStub, config: dict[str, Any]) -> None:
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
        name: analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY,
                                        properties=struct(props))
        for name, props in config.items()}), timeout=10)


def test_pack_announces_every_policy_as_mandatory_and_requires_its_config(serve):
    info = serve.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
    assert info.name == "skyfleet-guardrails"
    assert {p.name: p.enforcementLevel for p in info.policies} == {
        name: analyzer_pb2.MANDATORY for name in POLICIES}
    required = {p.name: list(p.configSchema.required) for p in info.policies
                if p.HasField("configSchema")}
    assert required == {WORLD_OPEN_PORTS: ["ports"], REDUNDANCY: ["environments"]}


def test_pack_config_renders_the_stacks_ports_and_every_environments_minimum():
    local = pack_config.for_stack(REPO_ROOT, "local")
    assert local[WORLD_OPEN_PORTS] == {"ports": {"agent/admin": [7470, 7478],
                                                 "metrics": [9470, 9478]}}
    prod = pack_config.for_stack(REPO_ROOT, "prod")
    assert prod[WORLD_OPEN_PORTS] == {"ports": {"agent/admin": [7470, 7470],
                                                "metrics": [9470, 9470]}}
    assert prod[REDUNDANCY]["environments"]["prod"] == {
        "minClouds": 3, "minZones": 3, "minHostsPerZone": 2}
    assert set(prod[REDUNDANCY]["environments"]) == {"local", "dev", "staging", "prod"}


def test_analyze_refuses_a_world_open_group_and_passes_a_fleet_only_one(serve):
    configure(serve, pack_config.for_stack(REPO_ROOT, "dev"))
    sg = "aws:ec2/securityGroup:SecurityGroup"

    def analyze(name: str, cidr: str) -> list[analyzer_pb2.AnalyzeDiagnostic]:
        rule = {"protocol": "tcp", "fromPort": 22, "toPort": 9470, "cidrBlocks": [cidr]}
        request = analyzer_pb2.AnalyzeRequest(
            type=sg, name=name, urn=f"urn:pulumi:dev::skyfleet::{sg}::{name}",
            properties=struct({"ingress": [rule]}))
        return list(serve.Analyze(request, timeout=10).diagnostics)

    refused = analyze("open", "0.0.0.0/0")
    assert {d.policyName for d in refused} == {WORLD_OPEN_PORTS, "no-public-ssh"}
    assert all(f"open ({sg})" in d.message for d in refused)
    assert analyze("fleet", "10.16.0.0/16") == []


def test_analyze_stack_refuses_a_prod_stack_in_one_cloud(serve):
    configure(serve, pack_config.for_stack(REPO_ROOT, "prod"))
    instance = "gcp:compute/instance:Instance"
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=instance, name=f"gcp-{zone}-{i}", urn=f"urn:pulumi:prod::skyfleet::{instance}"
            f"::gcp-{zone}-{i}",
            properties=struct({"zone": f"europe-west1-{zone}",
                               "labels": {"skyfleet-environment": "prod"}}))
        for zone in "bcd" for i in range(2)
    ]
    response = serve.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources),
                                  timeout=10)
    (diagnostic,) = response.diagnostics
    assert diagnostic.policyName == REDUNDANCY
    assert "stack (prod): agent hosts in 1 cloud(s) (gcp; none in aws, azure)" in (
        diagnostic.message)


HOST_TYPES = {"aws:ec2/instance:Instance", "azure-native:compute:VirtualMachine",
              "gcp:compute/instance:Instance", "pulumi-python:dynamic/skyfleet:LocalAgent"}


@pytest.mark.parametrize("stack", ["local", "dev", "staging", "prod"])
def test_committed_stacks_pass_every_guardrail(stack, stack_runs, serve):
    """Every resource the program declares for the stack (under mocks), analyzed by the
    served pack with the stack's own pack config."""
    configure(serve, pack_config.for_stack(REPO_ROOT, stack))
    run = stack_runs(stack)
    resources = []
    for r in run.mocks.resources:
        urn = f"urn:pulumi:{stack}::skyfleet::{r.typ}::{r.name}"
        request = analyzer_pb2.AnalyzeRequest(type=r.typ, name=r.name, urn=urn,
                                              properties=struct(plain(r.inputs)))
        assert list(serve.Analyze(request, timeout=10).diagnostics) == [], r.name
        resources.append(analyzer_pb2.AnalyzerResource(
            type=r.typ, name=r.name, urn=urn, properties=struct(plain(r.outputs))))
    stack_check = serve.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources),
                                     timeout=10)
    assert list(stack_check.diagnostics) == []
    # The rules saw what they guard: without the hosts the stack rule would refuse.
    hostless = [r for r in resources if r.type not in HOST_TYPES]
    assert serve.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=hostless),
                              timeout=10).diagnostics
