"""Revocation on real agents over mTLS: a policy listing a certificate's serial makes an
agent drop the node that holds it and refuse its every call, on new and open streams."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import admin_pb2, admin_pb2_grpc
from skyfleet.client import AgentClient, tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.membership.members import EventKind
from skyfleet.node import Agent
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial, secure_channel
from tests.runtime.joined_agents import joined_layout, until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet(tmp_path: Path, free_ports) -> tuple[FleetLayout, list[AgentSpec]]:
    return joined_layout(tmp_path, free_ports(2))


async def test_a_revoked_node_is_dropped_and_refused(fleet) -> None:
    layout, (n0, n1) = fleet
    victim = TlsMaterial.load(tls_files_in(layout.tls, "n1"))
    admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    events = []
    async with (
        Agent(load_agent_config(layout.config_path("n0"))) as a0,
        Agent(load_agent_config(layout.config_path("n1"))) as a1,
    ):
        a0.loop.add_listener(events.append)
        await until(lambda: a0.swim.member("n1") is not None, "n0 to see n1")
        version = a0.policy.version + 1
        envelope = sign_policy(
            {**doc, "version": version, "revoked_certificates": [victim.identity.serial]},
            layout.signing_key.read_bytes(),
        )
        async with AgentClient(n0.address, admin, agent_name="n0") as client:
            await client.publish_policy(json.dumps(envelope).encode())
        # Adopted on the call: n1 is out of n0's table at once.
        assert a0.swim.member("n1") is None
        assert [e.node for e in events if e.kind == EventKind.REVOKED] == ["n1"]
        # Any call with n1's certificate is refused, naming the serial and the policy.
        async with secure_channel(n0.address, victim.channel_credentials(), "n0") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await admin_pb2_grpc.AdminStub(channel).ListMembers(
                    admin_pb2.ListMembersRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        details = refused.value.details() or ""
        assert f"serial {victim.identity.serial}" in details
        assert f"policy version {version}" in details
        # n1 asks to join again, over its open stream and a new one: it stays out.
        assert not await a1.loop.join((n0.address,), timeout=2.0)
        assert a0.swim.member("n1") is None
