"""Lifeguard local health ("awareness"): how much a node should distrust its own view.

A node whose probes keep failing is more likely slow itself (CPU starved, GC pause,
saturated link) than surrounded by dead peers. Raising the score stretches its own
probe interval and timeout, so it stops accusing healthy members while it is sick.
"""

from __future__ import annotations


class Awareness:
    def __init__(self, max_multiplier: int) -> None:
        self._max = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        """0 is healthy; at most max_multiplier - 1."""
        return self._score

    def apply_delta(self, delta: int) -> int:
        """Add `delta` (clamped to [0, max - 1]) and return the new score."""
        self._score = min(self._max - 1, max(0, self._score + delta))
        return self._score
