"""The queue of news to piggyback: each item is sent a limited number of times, least
sent first, and newer news about a node replaces older news in place.

Items sit in buckets by transmit count, so taking a packet's worth costs time in
proportion to what is taken, not to the queue length (thousands of items right after
a large join in the simulator).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Item(Generic[T]):
    value: T
    transmits: int
    size: int
    share: float
    least: int


class BroadcastQueue(Generic[T]):
    def __init__(
        self, size_of: Callable[[T], int], *, min_size: int = 1, packet_size: int | None = None
    ) -> None:
        """`min_size`: no item is smaller, so once less budget is left the rest of the
        queue need not be looked at. `packet_size`: a whole packet's budget, so that news
        larger than that still goes, alone (None: such news waits for a larger budget)."""
        self._size_of = size_of
        self._min_size = min_size
        self._packet_size = packet_size
        self._buckets: dict[int, dict[str, _Item[T]]] = {}
        self._where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def queue(
        self, key: str, value: T, *, share: float = 1.0, least: int = 1, extra: int = 0
    ) -> None:
        """Queue `value` as the news about `key`, replacing any older news about it. It
        is sent `share` of the usual number of times (at least `least` times), plus
        `extra` times (its count starts below zero, so those go first)."""
        self._discard(key)
        item = _Item(value, -extra, self._size_of(value), share, least)
        self._buckets.setdefault(-extra, {})[key] = item
        self._where[key] = -extra

    def take(self, budget: int, limit: int) -> list[T]:
        """News fitting in `budget` bytes, least-transmitted first and newest first within
        a count; items reaching `limit` transmissions are dropped. An item larger than a
        whole packet (`packet_size`) goes alone, in a packet of news only, when it comes
        first: skipped, it would never be sent at all (a status listing many handlers)."""
        taken: list[tuple[str, _Item[T]]] = []
        alone = self._packet_size is not None and budget >= self._packet_size
        for count in sorted(self._buckets):
            for key, item in reversed(self._buckets[count].items()):
                if item.size > budget and not (alone and not taken):
                    if budget < self._min_size:
                        break
                    continue
                budget -= item.size
                taken.append((key, item))
            if budget < self._min_size:
                break
        # Re-file oldest first, so that reading a bucket backwards stays newest first.
        for key, item in reversed(taken):
            self._discard(key)
            item.transmits += 1
            if item.transmits < max(item.least, math.ceil(limit * item.share)):
                self._buckets.setdefault(item.transmits, {})[key] = item
                self._where[key] = item.transmits
        return [item.value for _, item in taken]  # newest first, as taken

    def _discard(self, key: str) -> None:
        count = self._where.pop(key, None)
        if count is None:
            return
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]
