"""Wire codec: every packet the core can make survives the round trip; what a peer could
send wrongly is refused with the field named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyfleet._generated.skyfleet.v1 import membership_pb2 as pb
from skyfleet.membership.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberRecord,
    MemberState,
    Nack,
    NodeMeta,
    NodeStatus,
    Packet,
    Ping,
    PushPull,
    StatusReport,
    Suspect,
    status_size,
)
from skyfleet.tasks.handlers import MAX_HANDLERS
from skyfleet.tasks.requests import MAX_NAME_LENGTH
from skyfleet.transport.codec import (
    MAX_CERTIFICATE,
    MAX_INCARNATION,
    MAX_SIGNATURE,
    MalformedPacket,
    packet_from_proto,
    packet_to_proto,
    status_from_proto,
    status_to_proto,
)

names = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}[a-z0-9]", fullmatch=True)
addresses = st.builds(lambda h, p: f"{h}:{p}", names, st.integers(1, 65535))
u64 = st.integers(0, 2**64 - 1)
incarnations = st.integers(0, MAX_INCARNATION)  # above it: refused (see tests/hostile)
metas = st.builds(
    NodeMeta,
    names,
    addresses,
    cloud=names,
    zone=names,
    labels=st.dictionaries(names, names, max_size=3).map(lambda d: tuple(sorted(d.items()))),
)
reports = st.builds(
    StatusReport,
    policy_version=u64,
    policy_hash=st.sampled_from(["", "ab" * 32]),
    inflight=st.integers(0, 2**32 - 1),
    capacity=st.integers(0, 2**32 - 1),
    latency_ms=st.floats(0, 1e9),
    error_rate=st.floats(0, 1),
    handlers=st.lists(names, max_size=4, unique=True).map(lambda h: tuple(sorted(h))),
)
NOW = 64.0
"""The clock both ends of a round trip read. Statuses are measured eighths of a second
before it: their ages (whole milliseconds) and measured_at survive the trip exactly."""
statuses = st.builds(
    NodeStatus,
    names,
    incarnations,
    u64,
    reports,
    measured_at=st.integers(0, int(NOW * 8)).map(lambda eighths: eighths / 8),
)
signatures = st.binary(max_size=MAX_SIGNATURE)
updates = st.one_of(
    st.builds(Alive, metas, incarnations, signatures),
    st.builds(Suspect, names, incarnations, names),
    st.builds(Dead, names, incarnations, names, signatures),
    statuses,
)
records = st.builds(
    MemberRecord, metas, st.sampled_from(list(MemberState)), incarnations, signatures
)
bodies = st.one_of(
    st.none(),
    st.builds(Ping, u64, names),
    st.builds(Ack, u64),
    st.builds(Nack, u64),
    st.builds(IndirectPing, u64, names, addresses, st.booleans()),
    st.builds(
        PushPull,
        st.lists(records, max_size=4).map(tuple),
        st.booleans(),
        st.booleans(),
        st.lists(statuses, max_size=3).map(tuple),
    ),
)
packets = st.builds(
    Packet,
    names,
    addresses,
    bodies,
    st.lists(updates, max_size=5).map(tuple),
    st.lists(st.binary(min_size=1, max_size=64), max_size=3).map(tuple),
    st.lists(names, max_size=3).map(tuple),
)


@given(packets)
def test_round_trip(packet: Packet) -> None:
    wire = packet_to_proto(packet, NOW).SerializeToString()
    assert packet_from_proto(pb.Packet.FromString(wire), NOW) == packet


def good() -> pb.Packet:
    return pb.Packet(sender="a", sender_address="127.0.0.1:1")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: setattr(p, "sender", ""), "sender"),
        (lambda p: setattr(p, "sender", "two words"), "sender"),
        (lambda p: setattr(p, "sender_address", "nowhere"), "sender_address"),
        (lambda p: p.piggyback.add(), "piggyback[0]"),
        (
            lambda p: p.piggyback.add().alive.node.CopyFrom(pb.NodeMeta(address="h:1")),
            "piggyback[0].alive.node.name",
        ),
        (
            lambda p: p.piggyback.add().status.CopyFrom(pb.NodeStatus(node="b", error_rate=2)),
            "piggyback[0].status.error_rate",
        ),
        (
            lambda p: p.piggyback.add().status.CopyFrom(
                pb.NodeStatus(node="b", latency_ms=float("nan"))
            ),
            "piggyback[0].status.latency_ms",
        ),
        (
            lambda p: p.piggyback.add().status.CopyFrom(pb.NodeStatus(node="b", policy_hash="x")),
            "piggyback[0].status.policy_hash",
        ),
        (
            lambda p: p.push_pull.members.add(
                node=pb.NodeMeta(name="b", address="h:1"), state=9
            ),
            "push_pull.members[0].state",
        ),
        (
            lambda p: p.indirect_ping.CopyFrom(pb.IndirectPing(target="b", target_address="x")),
            "indirect_ping.target_address",
        ),
        (
            lambda p: p.piggyback.add().alive.CopyFrom(pb.Alive(
                node=pb.NodeMeta(name="b", address="h:1"), signature=bytes(MAX_SIGNATURE + 1))),
            "piggyback[0].alive.signature",
        ),
        (
            lambda p: p.piggyback.add().dead.CopyFrom(pb.Dead(
                node="b", source="b", signature=bytes(MAX_SIGNATURE + 1))),
            "piggyback[0].dead.signature",
        ),
        (
            lambda p: p.push_pull.members.add(node=pb.NodeMeta(name="b", address="h:1"),
                                              state=1, signature=bytes(MAX_SIGNATURE + 1)),
            "push_pull.members[0].signature",
        ),
        (lambda p: p.certificates.append(bytes(MAX_CERTIFICATE + 1)), "certificates[0]"),
        (lambda p: p.certificates.append(b""), "certificates[0]"),
        (lambda p: p.want_claims.append("two words"), "want_claims[0]"),
        (
            lambda p: p.piggyback.add().status.CopyFrom(
                pb.NodeStatus(node="b", handlers=["echo", "gp u"])
            ),
            "piggyback[0].status.handlers[1]",
        ),
        (
            lambda p: p.piggyback.add().status.CopyFrom(pb.NodeStatus(node="b", handlers=[""])),
            "piggyback[0].status.handlers[0]",
        ),
        (
            lambda p: p.push_pull.statuses.add(node="b", handlers=["h" * (MAX_NAME_LENGTH + 1)]),
            "push_pull.statuses[0].handlers[0]",
        ),
        (
            lambda p: p.piggyback.add().status.CopyFrom(
                pb.NodeStatus(node="b", handlers=[f"h{i}" for i in range(MAX_HANDLERS + 1)])
            ),
            "piggyback[0].status.handlers",
        ),
    ],
)
def test_malformed_packets_name_the_field(mutate, field: str) -> None:
    msg = good()
    mutate(msg)
    with pytest.raises(MalformedPacket) as info:
        packet_from_proto(msg, NOW)
    assert str(info.value).startswith(field)


def test_handlers_at_the_limits_decode_sorted_and_once_whatever_the_senders_order() -> None:
    longest = "h" * MAX_NAME_LENGTH
    many = [f"h{i:03}" for i in range(MAX_HANDLERS - 3)] + [longest, "echo"]
    msg = pb.NodeStatus(node="b", capacity=1, handlers=[*reversed(many), "echo"])  # 256
    status = status_from_proto(msg, "status", NOW)
    assert status.report.handlers == tuple(sorted(many))


def test_status_size_counts_each_handler_as_encoded() -> None:
    bare = NodeStatus("b", 1, 2, StatusReport(capacity=4), measured_at=NOW)
    serving = NodeStatus(
        "b", 1, 2, StatusReport(capacity=4, handlers=("cpu", "echo", "gpu")), measured_at=NOW
    )

    def encoded(status: NodeStatus) -> int:
        return len(status_to_proto(status, NOW).SerializeToString())

    assert status_size(serving) - status_size(bare) == encoded(serving) - encoded(bare) == 16
