"""Lifeguard suspicion: a timer that starts long and shrinks as independent members
confirm the suspicion.

Pure bookkeeping: `Swim` owns the real timer and re-arms it at `deadline()` whenever
`confirm` reports a new confirmation.
"""

from __future__ import annotations

from skyfleet.membership.timing import remaining_suspicion_time


class Suspicion:
    def __init__(
        self,
        *,
        source: str,
        k: int,
        min_timeout: float,
        max_timeout: float,
        start: float,
    ) -> None:
        # The first suspector does not count as a confirmation: it is the accusation.
        self._seen = {source}
        self._k = k
        self._min = min_timeout
        self._max = max_timeout if k > 0 else min_timeout
        self._start = start
        self._confirmations = 0

    @property
    def confirmations(self) -> int:
        return self._confirmations

    def confirm(self, source: str) -> bool:
        """Count `source` once; True if this changed the deadline (worth re-gossiping)."""
        if self._confirmations >= self._k or source in self._seen:
            return False
        self._seen.add(source)
        self._confirmations += 1
        return True

    def deadline(self) -> float:
        """When the suspect should be declared dead, given the confirmations so far."""
        return self._start + remaining_suspicion_time(
            self._confirmations, self._k, 0.0, self._min, self._max
        )
