"""Conversion between the membership core's dataclasses and the wire protobufs.

Decoding is where a peer's mistakes are caught: anything the core could not act on
raises `MalformedPacket` naming the field, which the server maps to INVALID_ARGUMENT.

Both directions take `now`, the node's protocol clock (the one its Swim core runs on): a
status travels with its age, not its origin's timestamp, so encoding turns the holder's
`measured_at` into an age and decoding turns the age back into a `measured_at` on the
receiver's clock. Each hop thus adds the time it held the status, and no two nodes'
clocks are ever compared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import cast

from skyfleet._generated.skyfleet.v1 import membership_pb2 as pb
from skyfleet.membership.messages import (
    Ack,
    Alive,
    Body,
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
    Update,
)
from skyfleet.tasks.handlers import MAX_HANDLERS, is_handler_name
from skyfleet.tasks.requests import MAX_NAME_LENGTH

MAX_NAME = 253
MAX_MEMBERS = 100_000
MAX_SIGNATURE = 128
"""Bytes of a self-claim's signature (the agent's are 72)."""
MAX_CERTIFICATE = 16 * 1024
"""Bytes of one certificate sent with self-claims (a node's is ~600)."""
MAX_INCARNATION = 2**63 - 1
"""Highest incarnation a peer may claim. A node refutes news about itself by going one
above it, and the wire field is a uint64: news at 2**64 - 1 would make the refutation
unencodable and silence the node for good. Boot incarnations are milliseconds since the
epoch (~2**41), so the cap leaves 2**62 refutations of headroom."""
MAX_AGE_MS = 2**32 - 1
"""`NodeStatus.age_ms` is a uint32 (~49 days): older ages are sent as this."""
_HASH = re.compile(r"(?:[0-9a-f]{64})?")


class MalformedPacket(ValueError):
    """The peer sent something the protocol cannot act on; the message names the field."""


# ------------------------------------------------------------------ encode


def meta_to_proto(meta: NodeMeta) -> pb.NodeMeta:
    return pb.NodeMeta(
        name=meta.name,
        address=meta.address,
        cloud=meta.cloud,
        region=meta.region,
        zone=meta.zone,
        labels=dict(meta.labels),
    )


def status_to_proto(status: NodeStatus, now: float) -> pb.NodeStatus:
    """`now` on the clock `status.measured_at` is on; the age sent is the time since.
    The age is clamped, not refused: a `measured_at` ahead of `now` (a reading taken
    before the status arrived) goes out as 0, as fresh as can be told, and one older
    than the uint32 allows as `MAX_AGE_MS`; sending never fails on a status."""
    r = status.report
    age_ms = min(max(round((now - status.measured_at) * 1000), 0), MAX_AGE_MS)
    return pb.NodeStatus(
        node=status.node,
        incarnation=status.incarnation,
        seq=status.seq,
        policy_version=r.policy_version,
        policy_hash=r.policy_hash,
        inflight=r.inflight,
        queued=r.queued,
        capacity=r.capacity,
        latency_ms=r.latency_ms,
        error_rate=r.error_rate,
        age_ms=age_ms,
        handlers=r.handlers,
    )


def _update_to_proto(update: Update, now: float) -> pb.Update:
    if isinstance(update, NodeStatus):
        return pb.Update(status=status_to_proto(update, now))
    if isinstance(update, Alive):
        return pb.Update(
            alive=pb.Alive(
                node=meta_to_proto(update.meta),
                incarnation=update.incarnation,
                signature=update.signature,
            )
        )
    if isinstance(update, Suspect):
        return pb.Update(
            suspect=pb.Suspect(
                node=update.node, incarnation=update.incarnation, source=update.source
            )
        )
    return pb.Update(
        dead=pb.Dead(
            node=update.node,
            incarnation=update.incarnation,
            source=update.source,
            signature=update.signature,
        )
    )


def packet_to_proto(packet: Packet, now: float) -> pb.Packet:
    """`now`: the sender's protocol clock, which the statuses' ages are taken against."""
    msg = pb.Packet(sender=packet.sender, sender_address=packet.sender_address)
    body = packet.body
    if isinstance(body, Ping):
        msg.ping.CopyFrom(pb.Ping(seq=body.seq, target=body.target))
    elif isinstance(body, Ack):
        msg.ack.CopyFrom(pb.Ack(seq=body.seq))
    elif isinstance(body, Nack):
        msg.nack.CopyFrom(pb.Nack(seq=body.seq))
    elif isinstance(body, IndirectPing):
        msg.indirect_ping.CopyFrom(
            pb.IndirectPing(
                seq=body.seq,
                target=body.target,
                target_address=body.target_address,
                want_nack=body.want_nack,
            )
        )
    elif isinstance(body, PushPull):
        msg.push_pull.CopyFrom(
            pb.PushPull(
                join=body.join,
                is_reply=body.is_reply,
                members=[
                    pb.MemberRecord(
                        node=meta_to_proto(r.meta),
                        state=cast(pb.MemberState, int(r.state)),  # protoc's stubs omit numbers
                        incarnation=r.incarnation,
                        signature=r.signature,
                    )
                    for r in body.members
                ],
                statuses=[status_to_proto(st, now) for st in body.statuses],
            )
        )
    msg.piggyback.extend(_update_to_proto(u, now) for u in packet.piggyback)
    msg.certificates.extend(packet.certificates)
    msg.want_claims.extend(packet.want_claims)
    return msg


# ------------------------------------------------------------------ decode


def _name(value: str, field: str) -> str:
    if not value or len(value) > MAX_NAME or any(c.isspace() for c in value):
        raise MalformedPacket(f"{field}: must be a node name (1-{MAX_NAME} chars, no spaces)")
    return value


def _address(value: str, field: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MalformedPacket(f"{field}: expected host:port, got {value[:80]!r}")
    return value


def _incarnation(value: int, field: str) -> int:
    if value > MAX_INCARNATION:
        raise MalformedPacket(f"{field}: {value} is above the maximum {MAX_INCARNATION}")
    return value


def _signature(value: bytes, field: str) -> bytes:
    if len(value) > MAX_SIGNATURE:
        raise MalformedPacket(f"{field}: {len(value)} bytes, more than {MAX_SIGNATURE}")
    return value


def _handlers(values: Sequence[str], field: str) -> tuple[str, ...]:
    """Sorted and without repeats whatever the sender did: the order carries nothing."""
    if len(values) > MAX_HANDLERS:
        raise MalformedPacket(f"{field}: more than {MAX_HANDLERS} names")
    for i, value in enumerate(values):
        if not is_handler_name(value):
            raise MalformedPacket(
                f"{field}[{i}]: must be a handler name (1-{MAX_NAME_LENGTH} chars, no spaces)"
            )
    return tuple(sorted(set(values)))


def meta_from_proto(msg: pb.NodeMeta, field: str) -> NodeMeta:
    return NodeMeta(
        name=_name(msg.name, f"{field}.name"),
        address=_address(msg.address, f"{field}.address"),
        cloud=msg.cloud,
        region=msg.region,
        zone=msg.zone,
        labels=tuple(sorted(msg.labels.items())),
    )


def status_from_proto(msg: pb.NodeStatus, field: str, now: float) -> NodeStatus:
    """`now`: the receiver's protocol clock, which `measured_at` is put on."""
    if not _HASH.fullmatch(msg.policy_hash):
        raise MalformedPacket(f"{field}.policy_hash: expected 64 lowercase hex digits or empty")
    for name in ("latency_ms", "error_rate"):
        value = getattr(msg, name)
        if not math.isfinite(value) or value < 0:
            raise MalformedPacket(f"{field}.{name}: must be a finite number >= 0, got {value}")
    if msg.error_rate > 1:
        raise MalformedPacket(f"{field}.error_rate: must be <= 1, got {msg.error_rate}")
    report = StatusReport(
        policy_version=msg.policy_version,
        policy_hash=msg.policy_hash,
        inflight=msg.inflight,
        queued=msg.queued,
        capacity=msg.capacity,
        latency_ms=msg.latency_ms,
        error_rate=msg.error_rate,
        handlers=_handlers(msg.handlers, f"{field}.handlers"),
    )
    incarnation = _incarnation(msg.incarnation, f"{field}.incarnation")
    # Agents older than the field send no age (0): their statuses count as measured on
    # arrival, which is how every status was taken before ages were sent.
    measured_at = now - msg.age_ms / 1000
    return NodeStatus(
        _name(msg.node, f"{field}.node"), incarnation, msg.seq, report, measured_at
    )


def _update_from_proto(msg: pb.Update, field: str, now: float) -> Update:
    kind = msg.WhichOneof("kind")
    if kind == "status":
        return status_from_proto(msg.status, f"{field}.status", now)
    if kind == "alive":
        return Alive(
            meta_from_proto(msg.alive.node, f"{field}.alive.node"),
            _incarnation(msg.alive.incarnation, f"{field}.alive.incarnation"),
            _signature(msg.alive.signature, f"{field}.alive.signature"),
        )
    if kind == "suspect":
        s = msg.suspect
        return Suspect(
            _name(s.node, f"{field}.suspect.node"),
            _incarnation(s.incarnation, f"{field}.suspect.incarnation"),
            _name(s.source, f"{field}.suspect.source"),
        )
    if kind == "dead":
        d = msg.dead
        return Dead(
            _name(d.node, f"{field}.dead.node"),
            _incarnation(d.incarnation, f"{field}.dead.incarnation"),
            _name(d.source, f"{field}.dead.source"),
            _signature(d.signature, f"{field}.dead.signature"),
        )
    raise MalformedPacket(f"{field}: empty update")


def _body_from_proto(msg: pb.Packet, now: float) -> Body:
    kind = msg.WhichOneof("body")
    if kind is None:
        return None
    if kind == "ping":
        return Ping(msg.ping.seq, msg.ping.target)
    if kind == "ack":
        return Ack(msg.ack.seq)
    if kind == "nack":
        return Nack(msg.nack.seq)
    if kind == "indirect_ping":
        ip = msg.indirect_ping
        return IndirectPing(
            ip.seq,
            _name(ip.target, "indirect_ping.target"),
            _address(ip.target_address, "indirect_ping.target_address"),
            ip.want_nack,
        )
    pp = msg.push_pull
    if len(pp.members) > MAX_MEMBERS:
        raise MalformedPacket(f"push_pull.members: more than {MAX_MEMBERS} records")
    records = []
    for i, r in enumerate(pp.members):
        try:
            state = MemberState(r.state)
        except ValueError:
            raise MalformedPacket(
                f"push_pull.members[{i}].state: unknown state {r.state}"
            ) from None
        where = f"push_pull.members[{i}]"
        records.append(
            MemberRecord(
                meta_from_proto(r.node, f"{where}.node"),
                state,
                _incarnation(r.incarnation, f"{where}.incarnation"),
                _signature(r.signature, f"{where}.signature"),
            )
        )
    statuses = tuple(
        status_from_proto(st, f"push_pull.statuses[{i}]", now)
        for i, st in enumerate(pp.statuses)
    )
    return PushPull(tuple(records), join=pp.join, is_reply=pp.is_reply, statuses=statuses)


def packet_from_proto(msg: pb.Packet, now: float) -> Packet:
    """Decode and validate a received packet (MalformedPacket names the bad field).
    `now`: the receiver's protocol clock, which the statuses' ages are taken back from."""
    sender = _name(msg.sender, "sender")
    address = _address(msg.sender_address, "sender_address")
    body = _body_from_proto(msg, now)
    news = tuple(
        _update_from_proto(u, f"piggyback[{i}]", now) for i, u in enumerate(msg.piggyback)
    )
    if len(msg.certificates) > MAX_MEMBERS:
        raise MalformedPacket(f"certificates: more than {MAX_MEMBERS}")
    for i, cert in enumerate(msg.certificates):
        if not cert or len(cert) > MAX_CERTIFICATE:
            raise MalformedPacket(f"certificates[{i}]: {len(cert)} bytes, not 1-{MAX_CERTIFICATE}")
    if len(msg.want_claims) > MAX_MEMBERS:
        raise MalformedPacket(f"want_claims: more than {MAX_MEMBERS} names")
    want = tuple(
        _name(n, f"want_claims[{i}]") for i, n in enumerate(msg.want_claims)
    )
    return Packet(sender, address, body, news, tuple(msg.certificates), want)
