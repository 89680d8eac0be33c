"""An in-memory network between simulated nodes: per-packet delay with jitter, random
loss (overall or between chosen groups) and directed blocks for partitions."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable


class SimNetwork:
    def __init__(
        self,
        rng: random.Random,
        *,
        delay: float = 0.0005,
        jitter: float = 0.0002,
        loss: float = 0.0,
        link_delay: Callable[[str, str], float] | None = None,
    ) -> None:
        """`link_delay`: extra one-way seconds between two nodes (another cloud's)."""
        self._rng = rng
        self._link_delay = link_delay
        self.delay = delay
        self.jitter = jitter
        self.loss = loss
        self._blocked: set[tuple[str, str]] = set()
        self._lossy: dict[tuple[str, str], float] = {}

    def block(self, src: Iterable[str], dst: Iterable[str], *, both_ways: bool = True) -> None:
        """Drop every packet from a node in `src` to a node in `dst` (and back)."""
        dst = list(dst)
        for a in src:
            for b in dst:
                self._blocked.add((a, b))
                if both_ways:
                    self._blocked.add((b, a))

    def set_loss(self, src: Iterable[str], dst: Iterable[str], loss: float) -> None:
        """Lose `loss` of packets between the two groups, both ways."""
        dst = list(dst)
        for a in src:
            for b in dst:
                self._lossy[(a, b)] = loss
                self._lossy[(b, a)] = loss

    def heal(self) -> None:
        self._blocked.clear()
        self._lossy.clear()

    def transit(self, src: str, dst: str) -> float | None:
        """Seconds until a packet from `src` arrives at `dst`, or None if it is lost."""
        if (src, dst) in self._blocked:
            return None
        loss = self._lossy.get((src, dst), self.loss)
        if loss and self._rng.random() < loss:
            return None
        extra = self._link_delay(src, dst) if self._link_delay is not None else 0.0
        return self.delay + extra + self._rng.uniform(0.0, self.jitter)
