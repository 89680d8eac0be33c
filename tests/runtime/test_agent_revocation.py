"""Revocation on real agents over mTLS: a policy listing a certificate's serial makes an
agent drop the node that holds it and refuse its every call, on new and open streams."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
)
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
        # A membership stream n1's certificate opened before the revocation, seen to work.
        held = secure_channel(n0.address, victim.channel_credentials(), "n0")
        stream = membership_pb2_grpc.MembershipStub(held).Exchange()
        # n0 now sends its packets for n1 on it (n1's newest stream): read them all along.
        replies = asyncio.ensure_future(read_to_end(stream))
        await stream.write(status_from_n1(a1, seq=10**6))
        await until(lambda: status_seq(a0, "n1") == 10**6, "n1's status on n0")
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
        # The open stream ends at its next packet; a join on a new one is refused too.
        await stream.write(status_from_n1(a1, seq=10**6 + 1))
        await stream.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await replies
        assert cut.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"serial {victim.identity.serial}" in (cut.value.details() or "")
        assert a0.swim.statuses().get("n1") is None
        join = membership_pb2.Packet(sender="n1", sender_address=n1.address)
        join.push_pull.join = True
        retry = membership_pb2_grpc.MembershipStub(held).Exchange()
        await retry.write(join)
        await retry.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as refused_join:
            await read_to_end(retry)
        assert refused_join.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await held.close()
        assert a0.swim.member("n1") is None
        # Counted: these three, and whatever n1's own agent tried meanwhile.
        assert a0.refusals.by_reason["revoked"] >= 3
        assert set(a0.refusals.by_reason) == {"revoked"}


async def read_to_end(call: grpc.aio.StreamStreamCall) -> None:
    """Drain the agent's side of an `Exchange`: its status (a refusal raises) comes
    after the packets it sent back."""
    async for _ in call:
        pass


def status_seq(agent: Agent, node: str) -> int | None:
    """The seq of `node`'s newest status on `agent`; None before its first arrives (the
    packet written may not have been handled yet)."""
    status = agent.swim.statuses().get(node)
    return None if status is None else status[0].seq


def status_from_n1(agent: Agent, seq: int) -> membership_pb2.Packet:
    """A packet from n1 whose effect n0 shows: a status newer than any n1 sent."""
    status = membership_pb2.NodeStatus(node="n1", incarnation=agent.swim.incarnation, seq=seq)
    return membership_pb2.Packet(
        sender="n1",
        sender_address=agent.config.node.address,
        piggyback=[membership_pb2.Update(status=status)],
    )
