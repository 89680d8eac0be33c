"""Membership messages as immutable values.

These mirror protos/skyfleet/v1/membership.proto one to one; `skyfleet.transport.codec`
converts at the edge. The core works on dataclasses rather than protobuf objects because
the simulator pushes millions of them through thousands of cores.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class MemberState(enum.IntEnum):
    """Numbers equal the proto enum's; order is precedence at equal incarnation."""

    ALIVE = 1
    SUSPECT = 2
    DEAD = 3
    LEFT = 4


UP_STATES = frozenset({MemberState.ALIVE, MemberState.SUSPECT})
"""A member is up while alive or suspect: still probed, a gossip target, a candidate."""


@dataclass(frozen=True, slots=True)
class NodeMeta:
    name: str
    address: str
    cloud: str = ""
    region: str = ""
    zone: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Alive:
    """A self-claim: `signature` is the node's own (`claims.py`)."""

    meta: NodeMeta
    incarnation: int
    signature: bytes = b""

    @property
    def node(self) -> str:
        return self.meta.name


@dataclass(frozen=True, slots=True)
class Suspect:
    node: str
    incarnation: int
    source: str


@dataclass(frozen=True, slots=True)
class Dead:
    """`source == node` means the node left gracefully: a self-claim, which only
    counts with the node's `signature` (`claims.py`); anyone may claim a death."""

    node: str
    incarnation: int
    source: str
    signature: bytes = b""


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What a node says about itself: the policy it runs, its load and the handlers it
    serves."""

    policy_version: int = 0
    policy_hash: str = ""
    inflight: int = 0
    queued: int = 0
    capacity: int = 0
    latency_ms: float = 0.0
    error_rate: float = 0.0
    handlers: tuple[str, ...] = ()
    """Sorted handler names; empty with capacity > 0: an agent that predates the field,
    taken as serving every handler (`NodeStatus.handlers` in the proto)."""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A report stamped by its origin; newer (incarnation, seq) replaces older."""

    node: str
    incarnation: int
    seq: int
    report: StatusReport
    measured_at: float = field(default=0.0, compare=False)
    """When the origin measured the report, on the clock of the node holding this object:
    the origin's own when it publishes, a receiver's once decoded (the wire carries the
    age, added to hop by hop, so no two nodes' clocks are ever compared). Not part of the
    status's identity: relays of one status carry the same (incarnation, seq)."""

    def supersedes(self, other: NodeStatus | None) -> bool:
        return other is None or (self.incarnation, self.seq) > (other.incarnation, other.seq)


Update = Alive | Suspect | Dead | NodeStatus


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    target: str


@dataclass(frozen=True, slots=True)
class IndirectPing:
    seq: int
    target: str
    target_address: str
    want_nack: bool = True


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    seq: int


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """`signature` is the node's on its alive claim (meta, incarnation) when ALIVE, on
    its leave when LEFT; suspect and dead records need none."""

    meta: NodeMeta
    state: MemberState
    incarnation: int
    signature: bytes = b""


@dataclass(frozen=True, slots=True)
class PushPull:
    members: tuple[MemberRecord, ...]
    join: bool = False
    is_reply: bool = False
    statuses: tuple[NodeStatus, ...] = ()


Body = Ping | IndirectPing | Ack | Nack | PushPull | None


@dataclass(frozen=True, slots=True)
class Packet:
    """`certificates`: node certificates (DER) for the receiver to check self-claims
    with; `want_claims`: nodes whose signed claims (and certificates) the sender asks
    for."""

    sender: str
    sender_address: str
    body: Body
    piggyback: tuple[Update, ...] = ()
    certificates: tuple[bytes, ...] = ()
    want_claims: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A packet for the driver to send. `to_name` (when known) is checked against the
    receiver's certificate, so a packet never reaches an impostor at a reused address."""

    address: str
    packet: Packet
    to_name: str | None = None


# Rough wire sizes, used to keep piggybacked news within a packet budget as memberlist
# does for its 1,400-byte UDP packets. They follow protobuf's encoding (tag + length +
# bytes) closely enough for budgeting; exact bytes are counted at the transport.
_FIELD = 2
_VARINT = 5


def meta_size(meta: NodeMeta) -> int:
    size = 6 * _FIELD + len(meta.name) + len(meta.address) + len(meta.cloud)
    size += len(meta.region) + len(meta.zone)
    for key, value in meta.labels:
        size += 3 * _FIELD + len(key) + len(value)
    return size


MIN_UPDATE_SIZE = 4 * _FIELD + _VARINT + 2
"""The smallest update: a suspicion of a one-letter name by another."""


def status_size(status: NodeStatus) -> int:
    """11 fields: two strings, two doubles (8 bytes each) and seven varints, `age_ms`
    among them at its longest: each hop re-encodes it with the age as of its sending,
    so the budget must not depend on it; then the handler names, each tagged."""
    r = status.report
    size = 11 * _FIELD + 7 * _VARINT + 16 + len(status.node) + len(r.policy_hash)
    return size + sum(_FIELD + len(h) for h in r.handlers)


def update_size(update: Update) -> int:
    if isinstance(update, Alive):
        return 3 * _FIELD + _VARINT + meta_size(update.meta) + len(update.signature)
    if isinstance(update, NodeStatus):
        return status_size(update)
    size = 4 * _FIELD + _VARINT + len(update.node) + len(update.source)
    return size + (_FIELD + len(update.signature) if isinstance(update, Dead) else 0)


def body_size(body: Body) -> int:
    if body is None:
        return 0
    if isinstance(body, PushPull):
        size = 4 * _FIELD + sum(
            3 * _FIELD + _VARINT + meta_size(r.meta) + len(r.signature) for r in body.members
        )
        return size + sum(_FIELD + status_size(s) for s in body.statuses)
    if isinstance(body, Ping):
        return 2 * _FIELD + _VARINT + len(body.target)
    if isinstance(body, IndirectPing):
        return 4 * _FIELD + _VARINT + len(body.target) + len(body.target_address)
    return _FIELD + _VARINT


def packet_size(packet: Packet) -> int:
    """Estimated encoded size; the simulator's bandwidth figures use it."""
    size = 3 * _FIELD + len(packet.sender) + len(packet.sender_address) + body_size(packet.body)
    size += sum(_FIELD + len(c) for c in packet.certificates)
    size += sum(_FIELD + len(n) for n in packet.want_claims)
    return size + sum(_FIELD + update_size(u) for u in packet.piggyback)
