"""SWIM + Lifeguard membership as a pure state machine (no I/O, no clock, no threads).

`Swim` takes packets and the current time and returns packets to send; the gRPC agent
(`skyfleet.node`) and the simulator (`skyfleet.sim`) drive the very same object.

Errors. Nothing a peer sends makes the core raise: news it must not accept (a forged or
unsigned claim, an incarnation leap, a revoked certificate) is dropped and, where an
operator should know, reported as an event (`EventKind.FORGED`, `REVOKED`) naming the
sender — a peer's fault is data here, not an exception. Bytes that are not a packet never
reach the core: the codec refuses them (`transport.codec.MalformedPacket`, the peer's
fault, answered INVALID_ARGUMENT by the Membership service). A ValueError from inside the
package is our own bug (the precedence table checks itself when it is built); settings
are checked before a core is made (`config.errors.ConfigError`).
"""

from skyfleet.membership.members import EventKind, MemberEvent, MemberView
from skyfleet.membership.messages import MemberState, NodeMeta, Outgoing, Packet
from skyfleet.membership.swim import Swim

__all__ = [
    "EventKind",
    "MemberEvent",
    "MemberState",
    "MemberView",
    "NodeMeta",
    "Outgoing",
    "Packet",
    "Swim",
]
