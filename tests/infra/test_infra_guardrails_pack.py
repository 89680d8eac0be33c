"""The guardrails as the Pulumi engine meets them: `infra/guardrails` run as a process,
spoken to over the analyzer gRPC protocol (GetAnalyzerInfo, Analyze, AnalyzeStack)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra.guardrails import findings
from tests.infra.mocks import REPO_ROOT

pytestmark = pytest.mark.realproc


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # The engine runs the pack folder as a program; it prints its port, then serves.
    proc = subprocess.Popen([sys.executable, "-u", str(REPO_ROOT / "infra" / "guardrails")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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


def struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(props)
    return message


def test_pack_announces_every_policy_as_mandatory(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
    assert info.name == "skyfleet-guardrails"
    assert {p.name: p.enforcementLevel for p in info.policies} == {
        name: analyzer_pb2.MANDATORY for name in (
            findings.WORLD_OPEN_PORTS, findings.PUBLIC_SSH, findings.DISK_ENCRYPTION,
            findings.IMDSV2, findings.PUBLIC_IP, findings.REDUNDANCY)
    }


def test_analyze_refuses_a_world_open_group_and_passes_a_fleet_only_one(analyzer):
    sg = "aws:ec2/securityGroup:SecurityGroup"

    def analyze(name: str, cidr: str) -> list[analyzer_pb2.AnalyzeDiagnostic]:
        rule = {"protocol": "tcp", "fromPort": 22, "toPort": 9470, "cidrBlocks": [cidr]}
        request = analyzer_pb2.AnalyzeRequest(
            type=sg, name=name, urn=f"urn:pulumi:dev::skyfleet::{sg}::{name}",
            properties=struct({"ingress": [rule]}))
        return list(analyzer.Analyze(request, timeout=10).diagnostics)

    refused = analyze("open", "0.0.0.0/0")
    assert {d.policyName for d in refused} == {findings.WORLD_OPEN_PORTS, findings.PUBLIC_SSH}
    assert all(f"open ({sg})" in d.message for d in refused)
    assert analyze("fleet", "10.16.0.0/16") == []


def test_analyze_stack_refuses_a_prod_stack_in_one_cloud(analyzer):
    instance = "gcp:compute/instance:Instance"
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=instance, name=f"gcp-{zone}-{i}", urn=f"urn:pulumi:prod::skyfleet::{instance}"
            f"::gcp-{zone}-{i}",
            properties=struct({"zone": f"europe-west1-{zone}",
                               "labels": {"skyfleet-environment": "prod"}}))
        for zone in "bcd" for i in range(2)
    ]
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources),
                                     timeout=10)
    (diagnostic,) = response.diagnostics
    assert diagnostic.policyName == findings.REDUNDANCY
    assert "stack (prod): agent hosts in 1 cloud(s) (gcp; none in aws, azure)" in (
        diagnostic.message)
