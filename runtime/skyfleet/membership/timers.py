"""One-shot timers over virtual time, and the keys the core arms them under.

The core never sleeps: it records deadlines here, the driver asks for the earliest one
and calls `Swim.tick(now)` when it has passed. Re-arming a key replaces its deadline
(lazy deletion in the heap keeps that O(log n)).

Keys are typed rather than strings so that `Swim.tick` dispatches through a mapping a
type checker can see is complete: a core holds at most one timer per `Timer`, one per
suspect (`SuspicionTimer`) and one per ping relayed for another member (`RelayTimer`).
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar


class Timer(enum.StrEnum):
    """A `StrEnum` for the str's hash, which runs in C: timers are looked up on every
    packet and tick, millions of times in the simulator."""

    PROBE = "probe"
    """The next probe is due (re-armed every probe interval)."""
    PROBE_TIMEOUT = "probe_timeout"
    """No ack to the direct ping yet: ask other members to try."""
    PROBE_END = "probe_end"
    """The probe interval is over without an ack: the target becomes suspect."""
    GOSSIP = "gossip"
    PUSH_PULL = "push_pull"
    RECONNECT = "reconnect"
    JOIN = "join"
    """Retry the join: no seed has answered yet."""


@dataclass(frozen=True, slots=True)
class SuspicionTimer:
    """When `node`, suspect, is declared dead unless it refutes first."""

    node: str


@dataclass(frozen=True, slots=True)
class RelayTimer:
    """When the indirect ping `seq` we sent for another member is given up (a nack)."""

    seq: int


TimerKey = Timer | SuspicionTimer | RelayTimer

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, tuple[float, int]] = {}
        self._seq = 0

    def __contains__(self, key: K) -> bool:
        return key in self._live

    def set(self, key: K, deadline: float) -> None:
        self._seq += 1
        self._live[key] = (deadline, self._seq)
        heapq.heappush(self._heap, (deadline, self._seq, key))

    def cancel(self, key: K) -> None:
        self._live.pop(key, None)

    def deadline(self, key: K) -> float | None:
        entry = self._live.get(key)
        return entry[0] if entry else None

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> K | None:
        """The earliest timer due at `now`, removed; None if nothing is due."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._live[key]
        return key

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            deadline, seq, key = heap[0]
            if self._live.get(key) == (deadline, seq):
                return
            heapq.heappop(heap)
