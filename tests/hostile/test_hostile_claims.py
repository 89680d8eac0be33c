"""The outside probe's membership forgeries (issue 17), replayed against real agents on
real gRPC with mTLS: another fleet identity gossips that a member is alive elsewhere or
at an extreme incarnation, or that it left, by gossip and in a push-pull table.

Each forgery travels on a stream that ends before the test looks, and the agent handles
a stream's packets as they arrive, so every assertion reads the state the packet left.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import admin_pb2, admin_pb2_grpc, membership_pb2_grpc
from skyfleet._generated.skyfleet.v1 import membership_pb2 as pb
from skyfleet.client import AgentClient, tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.membership.claims import alive_claim, leave_claim
from skyfleet.membership.incarnation import CEILING
from skyfleet.membership.messages import MemberState
from skyfleet.node import Agent
from skyfleet.security.claim_keys import CertificateKeys
from skyfleet.transport.codec import meta_from_proto
from skyfleet.transport.tls import TlsMaterial, secure_channel
from tests.runtime.joined_agents import joined_layout, until


@pytest.fixture
def fleet(tmp_path: Path, free_ports) -> tuple[FleetLayout, list[AgentSpec]]:
    return joined_layout(tmp_path, free_ports(3))


async def test_no_identity_but_a_nodes_own_moves_poisons_or_removes_it(fleet, caplog) -> None:
    layout, (n0, n1, n2) = fleet
    attacker = TlsMaterial.load(tls_files_in(layout.tls, "n2"))
    forger = CertificateKeys(attacker.ca, attacker.cert, attacker.key)
    async with (
        Agent(load_agent_config(layout.config_path("n0"))) as a0,
        Agent(load_agent_config(layout.config_path("n1"))) as a1,
    ):
        await until(lambda: a0.swim.member("n1") is not None, "n0 to see n1")
        held = a0.swim.member("n1")
        assert held is not None and held.state == MemberState.ALIVE
        victim = pb.NodeMeta(name="n1", address="127.0.0.1:7499", cloud="aws", zone="z")

        def alive(incarnation: int, signature: bytes) -> pb.Update:
            return pb.Update(alive=pb.Alive(node=victim, incarnation=incarnation,
                                            signature=signature))

        def signed_by_n2_alive(incarnation: int) -> bytes:
            return forger.sign(alive_claim(meta_from_proto(victim, "n"), incarnation))

        step = held.incarnation + 5
        leave_at = held.incarnation
        # What n0 makes of each, by gossip and as a table row: beyond the incarnation
        # rule; not n1's signature; or a claim to ask the sender about (a key nobody
        # showed, a row without signature: n2 can never answer with n1's signature).
        forgeries = {
            "alive at 2^63-1, unsigned": (alive(2**63 - 1, b""), "refused", "refused"),
            "alive below the ceiling, unsigned": (alive(CEILING - 1, b""), "refused", "refused"),
            "alive elsewhere, signed by n2": (
                alive(step, signed_by_n2_alive(step)), "forged", "forged"),
            "alive elsewhere, unknown key": (alive(step, bytes(72)), "asked", "asked"),
            "left, unsigned": (
                pb.Update(dead=pb.Dead(node="n1", incarnation=leave_at, source="n1")),
                "forged",
                "asked",
            ),
            "left, signed by n2": (
                pb.Update(dead=pb.Dead(node="n1", incarnation=leave_at, source="n1",
                                       signature=forger.sign(leave_claim("n1", leave_at)))),
                "forged",
                "forged",
            ),
        }
        async with secure_channel(n0.address, attacker.channel_credentials(), "n0") as channel:
            stub = membership_pb2_grpc.MembershipStub(channel)
            # The attacker is a fleet member and shows its certificate, as a joiner does.
            await exchange(stub, pb.Packet(sender="n2", sender_address=n2.address,
                                           certificates=forger.certificates("n2")))
            for why, (update, *_) in forgeries.items():
                gossip = pb.Packet(sender="n2", sender_address=n2.address, piggyback=[update])
                table = pb.Packet(sender="n2", sender_address=n2.address)
                table.push_pull.is_reply = True
                record = table.push_pull.members.add()
                if update.HasField("alive"):
                    record.node.CopyFrom(update.alive.node)
                    record.state = pb.MEMBER_STATE_ALIVE
                    record.incarnation = update.alive.incarnation
                    record.signature = update.alive.signature
                else:
                    record.node.CopyFrom(pb.NodeMeta(name="n1", address=n1.address))
                    record.state = pb.MEMBER_STATE_LEFT
                    record.incarnation = update.dead.incarnation
                    record.signature = update.dead.signature
                for packet in (gossip, table):
                    await exchange(stub, packet)
                    seen = a0.swim.member("n1")
                    assert seen is not None, why
                    assert seen.state == MemberState.ALIVE, why
                    assert (seen.meta.address, seen.incarnation) == (
                        n1.address, held.incarnation), why
            # A forged claim about n0 itself is not refuted either (no spin to force).
            self_meta = pb.NodeMeta(name="n0", address="127.0.0.1:7498")
            await exchange(stub, pb.Packet(sender="n2", sender_address=n2.address, piggyback=[
                pb.Update(alive=pb.Alive(node=self_meta, incarnation=a0.swim.incarnation + 3))
            ]))
        assert a0.swim.stats.refutations == 0
        verdicts = [v for _, *both in forgeries.values() for v in both]
        assert a0.swim.stats.refused_claims == verdicts.count("refused")
        # The last forgery was about n0 itself.
        assert a0.swim.stats.forged_claims == verdicts.count("forged") + 1
        assert a0.swim.stats.claims_asked == verdicts.count("asked")
        # Logged with the sender named, once per interval however many came; counted.
        lines = [r.getMessage() for r in caplog.records if "forged" in r.getMessage()]
        assert lines == [
            "refused forged claim from n2: a claim about n1 not signed by n1, dropped"
        ]
        assert a0.refusals.by_identity["n2"] == a0.swim.stats.forged_claims
        # A member's refused calls show in the member table (`skyfleet members`).
        victim_tls = TlsMaterial.load(tls_files_in(layout.tls, "n1"))
        async with secure_channel(n0.address, victim_tls.channel_credentials(), "n0") as ch:
            with pytest.raises(grpc.aio.AioRpcError):
                await admin_pb2_grpc.AdminStub(ch).Leave(admin_pb2.LeaveRequest())
        admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
        async with AgentClient(n0.address, admin, agent_name="n0") as client:
            _, rows = await client.list_members()
        assert {r.name: r.refusals for r in rows} == {"n0": 0, "n1": 1}
        assert a0.refusals.by_reason["wrong role"] == 1
        # n1's own word still counts: its leave is signed, and n0 takes it.
        await a1.shutdown()
        await until(lambda: a0.swim.member("n1").state == MemberState.LEFT, "n0 to see n1 leave")


async def exchange(stub: membership_pb2_grpc.MembershipStub, packet: pb.Packet) -> None:
    """Send `packet` on a stream of its own and read the agent's side to its end: the
    stream ends only once the agent has handled the packet (whatever it sends back for
    n2, e.g. claims it asks for, is dropped here)."""
    call = stub.Exchange()
    await call.write(packet)
    await call.done_writing()
    async for _ in call:
        pass
