"""Named one-shot timers over virtual time.

The core never sleeps: it records deadlines here, the driver asks for the earliest one
and calls `Swim.tick(now)` when it has passed. Re-arming a name replaces its deadline
(lazy deletion in the heap keeps that O(log n)).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, tuple[float, int]] = {}
        self._seq = 0

    def __contains__(self, name: Hashable) -> bool:
        return name in self._live

    def set(self, name: Hashable, deadline: float) -> None:
        self._seq += 1
        self._live[name] = (deadline, self._seq)
        heapq.heappush(self._heap, (deadline, self._seq, name))

    def cancel(self, name: Hashable) -> None:
        self._live.pop(name, None)

    def deadline(self, name: Hashable) -> float | None:
        entry = self._live.get(name)
        return entry[0] if entry else None

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Hashable | None:
        """The earliest timer due at `now`, removed; None if nothing is due."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        _, _, name = heapq.heappop(self._heap)
        del self._live[name]
        return name

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            deadline, seq, name = heap[0]
            if self._live.get(name) == (deadline, seq):
                return
            heapq.heappop(heap)
