"""SWIM + Lifeguard membership as a pure state machine (no I/O, no clock, no threads).

`Swim` takes packets and the current time and returns packets to send; the gRPC agent
(`skyfleet.node`) and the simulator (`skyfleet.sim`) drive the very same object.
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
