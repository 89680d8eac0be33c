"""The membership packet seam's in-memory side: protocol loops (`SwimLoop`) in one process
exchange packets through the wire contract — each packet encoded to protobuf bytes at the
sender and decoded at the receiver, statuses' ages included — without gRPC or TLS, as
`LocalTaskExecute` and `LocalPolicyFetch` stand in for theirs. The gRPC side of the seam
is `PeerSender` (out) and the Membership service (in); `skyfleet.sim.cluster` is the
deterministic network for bare cores on virtual time, this one runs the asyncio driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from skyfleet._generated.skyfleet.v1 import membership_pb2 as pb
from skyfleet.membership.messages import Outgoing
from skyfleet.transport.codec import MalformedPacket, packet_from_proto, packet_to_proto
from skyfleet.transport.swim_loop import SwimLoop


class LocalPackets:
    def __init__(self, *, delay: float = 0.0) -> None:
        """`delay`: one-way seconds every packet takes."""
        self._delay = delay
        self._loops: dict[str, SwimLoop] = {}
        self._cut: set[str] = set()
        self.delivered = 0
        self.dropped = 0
        self.refused = 0

    def sender(self, address: str) -> Callable[[list[Outgoing]], None]:
        """What the loop at `address` sends through (its `SwimLoop`'s `send`)."""

        def send(outgoing: list[Outgoing]) -> None:
            loop = self._loops.get(address)
            now = loop.now() if loop is not None else 0.0
            for o in outgoing:
                if address in self._cut or o.address in self._cut or o.address not in self._loops:
                    self.dropped += 1
                    continue
                wire = packet_to_proto(o.packet, now).SerializeToString()
                asyncio.get_running_loop().call_later(self._delay, self._arrive, o.address, wire)

        return send

    def attach(self, address: str, loop: SwimLoop) -> None:
        """`loop` receives what is sent to `address` (a loop restarted there too)."""
        self._loops[address] = loop
        self._cut.discard(address)

    def cut(self, address: str) -> None:
        """Drop every packet to and from `address` from now on (a crash, to its peers)."""
        self._cut.add(address)

    def _arrive(self, address: str, wire: bytes) -> None:
        loop = self._loops.get(address)
        if loop is None or address in self._cut:
            self.dropped += 1
            return
        try:
            packet = packet_from_proto(pb.Packet.FromString(wire), loop.now())
        except MalformedPacket:
            self.refused += 1  # as the Membership service refuses it (INVALID_ARGUMENT)
            return
        self.delivered += 1
        loop.deliver(packet)
