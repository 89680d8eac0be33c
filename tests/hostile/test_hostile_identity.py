"""Who may talk to an agent, and what never leaves it.

Against a real agent over mTLS: a caller with no certificate, one from another CA, or an
expired one is refused at the handshake; a fleet certificate without the admin role may
neither publish a policy nor make the agent leave; a replayed older policy is refused.
Then the secrets (every private key PEM, the CA key, the policy signing key) are looked
for in everything the agent logged at debug level through all of that, and in the output
of every CLI command an operator runs: they must appear nowhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import admin_pb2, admin_pb2_grpc, policy_pb2, policy_pb2_grpc
from skyfleet.client import AgentClient, AgentError, tls_files_in
from skyfleet.config.agent import render_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import generate_signing_key, sign_policy
from skyfleet.security.certs import create_ca, issue_node_cert
from skyfleet.transport.tls import TlsMaterial, channel_credentials, secure_channel

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 10.0


def policy(version: int, key: bytes, **changes: object) -> bytes:
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    doc.update(version=version, **changes)
    return json.dumps(sign_policy(doc, key)).encode()


def pem_bodies(pem: bytes) -> list[str]:
    """The base64 lines of every PEM block: any one of them leaking is a leak."""
    return [
        line
        for line in pem.decode().splitlines()
        if line and not line.startswith("-----") and len(line) >= 16
    ]


def cli(*args: str) -> str:
    """stdout + stderr of one `skyfleet` command (its exit status is the caller's concern)."""
    result = subprocess.run(
        [sys.executable, "-m", "skyfleet", *args], capture_output=True, text=True, timeout=60
    )
    return result.stdout + result.stderr


async def refused(address: str, creds: grpc.ChannelCredentials) -> grpc.aio.AioRpcError:
    async with secure_channel(address, creds, "n0") as channel:
        stub = admin_pb2_grpc.AdminStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=DEADLINE)
    return err.value


async def test_identities_are_checked_and_no_secret_leaves(tmp_path: Path, free_ports):
    port, rogue_port = free_ports(2)
    spec = AgentSpec(name="n0", cloud="aws", zone="z", address=f"127.0.0.1:{port}")
    with LocalFleet(tmp_path / "fleet", [spec]) as fleet:
        layout = fleet.layout
        config = layout.write_agent(spec)
        debug = replace(layout.agent_config(spec), log_level="debug")
        config.write_text(render_agent_config(debug, layout.agents), "utf-8")
        key = layout.signing_key.read_bytes()
        (layout.policy_source / "policy.json").write_bytes(policy(1, key))
        fleet.agents["n0"] = agent = _start_written(fleet, spec, config)
        admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
        await fleet.wait_for(
            lambda v: v["n0"]["n0"].policy_version == 1, ["n0"], timeout=30, what="policy v1"
        )
        ca = (layout.tls / "ca.pem").read_bytes()

        # No certificate, another CA's, an expired one from our own CA: all refused.
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        foreign = issue_node_cert(*create_ca("another fleet"), "n1", ["127.0.0.1"])
        long_ago = datetime.now(UTC) - timedelta(days=30)
        ca_pair = (ca, (layout.tls / "ca.key").read_bytes())
        expired = issue_node_cert(*ca_pair, "n1", ["127.0.0.1"], valid_days=1, now=long_ago)
        for creds in (
            anonymous,
            channel_credentials(ca, *foreign),
            channel_credentials(ca, *expired),
        ):
            assert (await refused(spec.address, creds)).code() == grpc.StatusCode.UNAVAILABLE

        # A fleet agent's certificate: reads yes, admin calls no.
        peer_cert, peer_key = issue_node_cert(*ca_pair, "n1", ["127.0.0.1"])
        async with secure_channel(
            spec.address, channel_credentials(ca, peer_cert, peer_key), "n0"
        ) as channel:
            admin_stub = admin_pb2_grpc.AdminStub(channel)
            await admin_stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=DEADLINE)
            for call, request in (
                (admin_stub.Leave, admin_pb2.LeaveRequest()),
                (
                    policy_pb2_grpc.PolicyStub(channel).Publish,
                    policy_pb2.PublishPolicyRequest(envelope=policy(9, key)),
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as denied:
                    await call(request, timeout=DEADLINE)
                assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "n1 (agent certificate) may not call admin" in (denied.value.details() or "")

        # The admin: a newer policy yes; the older one replayed, or one signed by a key
        # the fleet does not trust, no.
        async with AgentClient(spec.address, admin, agent_name="n0") as client:
            assert (await client.publish_policy(policy(2, key))).outcome == "adopted"
            with pytest.raises(AgentError, match="FAILED_PRECONDITION.*ignored-older"):
                await client.publish_policy(policy(1, key))
            with pytest.raises(AgentError, match="INVALID_ARGUMENT.*signed by .*trusted:"):
                await client.publish_policy(policy(3, generate_signing_key()[0]))
            _, rows = await client.list_members()
            assert rows[0].policy_version == 2

        # A rogue agent from another CA keeps trying to join through n0.
        rogue = AgentSpec(
            name="rogue",
            cloud="aws",
            zone="z",
            address=f"127.0.0.1:{rogue_port}",
            seeds=(spec.address,),
        )
        with LocalFleet(tmp_path / "rogue", [rogue]) as intruder:
            intruder.start()
            await fleet.wait_for(
                lambda _: "fleet CA" in intruder.agents["rogue"].log.read_text(),
                ["n0"],
                timeout=30,
                what="the rogue's refused handshake",
            )
            rogue_keys = [p.read_bytes() for p in (tmp_path / "rogue").rglob("*.key")]

        outputs = operator_session(tmp_path / "ops", spec.address, layout)
        assert agent.stop() == 0  # graceful leave: the shutdown path logs too
        logs = [agent.log.read_text(), intruder.agents["rogue"].log.read_text()]

    secrets = [p.read_bytes() for p in layout.root.rglob("*.key")] + rogue_keys
    secrets += [p.read_bytes() for p in (tmp_path / "ops").rglob("*.key")]
    assert len(secrets) >= 6  # CA, admin, n0, policy signing key, rogue's, the CLI's own
    leaks = [
        line[:12] + "..."
        for secret in secrets
        for line in pem_bodies(secret)
        for text in (*logs, *outputs)
        if line in text
    ]
    assert leaks == []
    assert any('"level": "debug"' in line for line in logs[0].splitlines())  # really debug


def _start_written(fleet: LocalFleet, spec: AgentSpec, config: Path):  # type: ignore[no-untyped-def]
    """Start an agent on a config already written (LocalFleet.start would rewrite it)."""
    from skyfleet.localfleet.procs import AgentProcess

    agent = AgentProcess(spec, config, fleet.layout.root / "logs" / f"{spec.name}.log")
    agent.start()
    return agent


def operator_session(ops: Path, address: str, layout: FleetLayout) -> list[str]:
    """What an operator runs, CA to publication; every command's full output."""
    tls = ops / "tls"
    out = [
        cli("certs", "init", "--dir", str(tls)),
        cli("certs", "issue", "--dir", str(tls), "--host", "127.0.0.1", "ops-node"),
        cli("certs", "issue", "--dir", str(tls), "--admin", "alice"),
        cli("certs", "issue", "--dir", str(tls), "--admin", "alice"),  # refused: exists
        cli("policy", "keygen", "--out", str(ops / "signing")),
    ]
    key = ops / "signing.key"
    assert key.exists(), out[-1]
    out += [
        cli(
            "policy",
            "sign",
            "--key",
            str(key),
            "--out",
            str(ops / "default.signed.json"),  # never next to the repository's file
            str(ROOT / "policies" / "default.json"),
        ),
        cli(
            "policy",
            "sign",
            "--key",
            str(layout.tls / "ca.key"),
            str(ROOT / "policies" / "default.json"),
        ),
        cli("policy", "validate", str(layout.tls / "admin.key")),
    ]
    fleet_tls = str(layout.tls)
    signed = ops / "v5.json"
    signed.write_bytes(policy(5, layout.signing_key.read_bytes()))
    out += [
        cli("policy", "publish", "--agent", address, "--tls-dir", fleet_tls, str(signed)),
        cli("policy", "publish", "--agent", address, "--tls-dir", fleet_tls, str(signed)),
        cli("policy", "status", "--agent", address, "--tls-dir", fleet_tls),
        cli("members", "--agent", address, "--tls-dir", fleet_tls, "--json"),
        cli("members", "--agent", address, "--tls-dir", str(tls), "--identity", "alice"),
    ]
    return out
