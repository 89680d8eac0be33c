"""Peers' streams to us that we may answer on (`Membership.Exchange`).

When node A opens a stream to B, B registers it here under A's (address, name), both
authenticated (A's certificate CN, A's checked sender address). B's sender then writes
its packets for A onto that stream's response side instead of dialling A: one TLS
connection serves the pair both ways, which halves the handshakes a fleet pays when it
forms (the seed of a join would otherwise dial back every joiner).
"""

from __future__ import annotations

import asyncio

from skyfleet._generated.skyfleet.v1 import membership_pb2

Key = tuple[str, str]
"""(address, name) of the peer that opened the stream."""


class ReturnPaths:
    def __init__(self, queue_limit: int) -> None:
        self._queue_limit = queue_limit
        self._paths: dict[Key, asyncio.Queue[membership_pb2.Packet]] = {}

    def open(self, key: Key) -> asyncio.Queue[membership_pb2.Packet]:
        """A queue for packets to the peer `key` on its newest stream (an older one of
        the same peer stops receiving; its owner closes it)."""
        queue: asyncio.Queue[membership_pb2.Packet] = asyncio.Queue(self._queue_limit)
        self._paths[key] = queue
        return queue

    def close(self, key: Key, queue: asyncio.Queue[membership_pb2.Packet]) -> None:
        if self._paths.get(key) is queue:
            del self._paths[key]

    def get(self, key: Key) -> asyncio.Queue[membership_pb2.Packet] | None:
        return self._paths.get(key)
