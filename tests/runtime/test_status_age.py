"""A status travels with its age, not its origin's timestamp: each receiver puts it on its
own clock, each relay adds the time it held it, and no two nodes' clocks are compared."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import cast

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import admin_pb2
from skyfleet._generated.skyfleet.v1 import membership_pb2 as pb
from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.messages import NodeMeta, NodeStatus, Packet, PushPull, StatusReport
from skyfleet.membership.swim import Swim
from skyfleet.observability.refusals import Refusals
from skyfleet.services.admin import AdminService
from skyfleet.sim.claim_keys import SimClaimKeys, SimKeyRegistry
from skyfleet.transport.codec import (
    MAX_AGE_MS,
    packet_from_proto,
    packet_to_proto,
    status_from_proto,
    status_to_proto,
)
from skyfleet.transport.swim_loop import SwimLoop

MS = 1e-3


def status(measured_at: float) -> NodeStatus:
    report = StatusReport(policy_version=2, inflight=1, queued=3, capacity=4, latency_ms=12.5)
    return NodeStatus("origin", 3, 7, report, measured_at)


def carrying(st: NodeStatus, where: str) -> Packet:
    if where == "piggyback":
        return Packet("origin", "10.0.0.1:7400", None, (st,))
    return Packet("origin", "10.0.0.1:7400", PushPull((), statuses=(st,)))


def carried(packet: Packet) -> NodeStatus:
    """The one status a packet made by `carrying` holds."""
    found = packet.body.statuses if isinstance(packet.body, PushPull) else packet.piggyback
    (st,) = found
    assert isinstance(st, NodeStatus)
    return st


def hop(packet: Packet, sent_at: float, received_at: float) -> tuple[Packet, pb.Packet]:
    """Encode on the sender's clock, decode on the receiver's; also the wire message."""
    msg = pb.Packet.FromString(packet_to_proto(packet, sent_at).SerializeToString())
    return packet_from_proto(msg, received_at), msg


def wire_age(msg: pb.Packet) -> int:
    if msg.HasField("push_pull"):
        return msg.push_pull.statuses[0].age_ms
    return msg.piggyback[0].status.age_ms


@pytest.mark.parametrize("where", ["piggyback", "push_pull"])
def test_the_receiver_puts_the_status_on_its_own_clock(where: str) -> None:
    # Measured 0.5 s before sending on the origin's clock; the receiver's clock reads 5.0.
    received, msg = hop(carrying(status(99.5), where), sent_at=100.0, received_at=5.0)
    assert wire_age(msg) == 500
    got = carried(received)
    assert got.measured_at == pytest.approx(4.5, abs=MS)
    assert got == replace(status(99.5), measured_at=got.measured_at)  # the rest intact


@pytest.mark.parametrize("where", ["piggyback", "push_pull"])
def test_a_relay_adds_the_time_it_held_the_status(where: str) -> None:
    at_relay, first = hop(carrying(status(99.5), where), sent_at=100.0, received_at=5.0)
    # The relay passes the status on 0.3 s later, by its own clock.
    relayed = carrying(carried(at_relay), where)
    at_third, second = hop(relayed, sent_at=5.3, received_at=20.0)
    assert (wire_age(first), wire_age(second)) == (500, 800)
    assert carried(at_third).measured_at == pytest.approx(19.2, abs=MS)


def test_an_age_beyond_the_wire_field_is_clamped() -> None:
    assert status_to_proto(status(0.0), now=5e6).age_ms == MAX_AGE_MS  # 5e9 ms > 2**32 - 1


def test_a_status_measured_in_the_future_is_sent_as_age_zero() -> None:
    # A clock that stepped back since: the report is as fresh as can be told.
    assert status_to_proto(status(10.0), now=9.0).age_ms == 0


def test_ages_are_rounded_to_whole_milliseconds() -> None:
    assert status_to_proto(status(1.0), now=1.0006).age_ms == 1
    assert status_to_proto(status(1.0), now=1.0004).age_ms == 0


def test_an_old_agents_status_counts_as_measured_on_arrival() -> None:
    # What an agent from before age_ms sends: the field is simply absent.
    old = pb.Packet(sender="old", sender_address="10.0.0.2:7400")
    old.piggyback.add().status.CopyFrom(pb.NodeStatus(node="old", incarnation=1, seq=1))
    assert b"\x58" not in old.piggyback[0].status.SerializeToString()  # no field 11 tag
    (st,) = packet_from_proto(pb.Packet.FromString(old.SerializeToString()), 42.0).piggyback
    assert isinstance(st, NodeStatus)
    assert st.measured_at == 42.0
    assert status_from_proto(pb.NodeStatus(node="old"), "status", 42.0).measured_at == 42.0


async def test_the_admin_answer_carries_the_status_age() -> None:
    clock = [10.0]

    def now() -> float:
        return clock[0]

    keys = SimClaimKeys("a", SimKeyRegistry(1))
    swim = Swim(NodeMeta("a", "10.0.0.1:7400"), MembershipConfig(), random.Random(1), keys=keys)
    loop = SwimLoop(swim, send=lambda out: None, clock=now)
    loop.publish_status(StatusReport(capacity=4))
    clock[0] = 12.5
    admin = AdminService(loop, now, asyncio.Event(), Refusals(now))
    context = cast(grpc.aio.ServicerContext, None)  # ListMembers reads none of it
    answer = await admin.ListMembers(admin_pb2.ListMembersRequest(), context)
    (me,) = answer.members
    assert (me.status.capacity, me.status.age_ms) == (4, 2500)

