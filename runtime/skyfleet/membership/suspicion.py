"""Lifeguard suspicion: a timer that starts long and shrinks as independent members
confirm the suspicion.

`Suspicion` is one suspect's bookkeeping; `Suspicions` holds every suspect's and arms
the real timer (`SuspicionTimer`), re-arming it whenever a new confirmation moves the
deadline. A refused connection caps a suspicion's deadline (`Suspicions.refused`): it is
evidence of a different kind, an answer from the suspect's host rather than a silence.
"""

from __future__ import annotations

from collections.abc import Iterator

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.messages import Suspect
from skyfleet.membership.timers import SuspicionTimer, TimerKey, Timers
from skyfleet.membership.timing import remaining_suspicion_time, suspicion_timeout


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
        self._cap = float("inf")
        """The earliest deadline a refused connection set (`cap`)."""

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

    def cap(self, deadline: float) -> bool:
        """Declare the suspect dead by `deadline` at the latest; True if that moved it.
        Later refusals never push it back: the first one's evidence stands."""
        if deadline >= self.deadline():
            return False
        self._cap = deadline
        return True

    def deadline(self) -> float:
        """When the suspect should be declared dead, given the confirmations so far."""
        lifeguard = self._start + remaining_suspicion_time(
            self._confirmations, self._k, 0.0, self._min, self._max
        )
        return min(lifeguard, self._cap)


class Suspicions:
    def __init__(self, me: str, config: MembershipConfig, timers: Timers[TimerKey]) -> None:
        self._me = me
        self._cfg = config
        self._timers = timers
        self._by_node: dict[str, tuple[Suspicion, int, str]] = {}
        """Per suspect: the timer's bookkeeping, the incarnation suspected, the accuser."""

    def start(self, suspect: Suspect, n: int, now: float) -> None:
        """`suspect.node` just became suspect, in a fleet of `n` members up."""
        cfg = self._cfg
        k = cfg.suspicion_mult - 2
        if n - 2 < k:
            k = 0  # too few members to ever gather k independent confirmations
        min_timeout = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        suspicion = Suspicion(
            source=suspect.source,
            k=k,
            min_timeout=min_timeout,
            max_timeout=cfg.suspicion_max_timeout_mult * min_timeout,
            start=now,
        )
        self._by_node[suspect.node] = (suspicion, suspect.incarnation, suspect.source)
        self._timers.set(SuspicionTimer(suspect.node), suspicion.deadline())

    def confirm(self, suspect: Suspect) -> bool:
        """Count `suspect.source` as a confirmation; True if it moved the deadline (news
        worth re-gossiping)."""
        entry = self._by_node.get(suspect.node)
        if entry is None or not entry[0].confirm(suspect.source):
            return False
        self._timers.set(SuspicionTimer(suspect.node), entry[0].deadline())
        return True

    def refused(self, node: str, now: float) -> None:
        """`node`'s port refused our connection at `now` while it was suspect: dead
        `refused_timeout` later unless it refutes (`MembershipConfig.refused_timeout`)."""
        entry = self._by_node.get(node)
        if entry is not None and entry[0].cap(now + self._cfg.refused_timeout):
            self._timers.set(SuspicionTimer(node), entry[0].deadline())

    def cancel(self, node: str) -> None:
        if self._by_node.pop(node, None) is not None:
            self._timers.cancel(SuspicionTimer(node))

    def expire(self, node: str) -> int | None:
        """The timer of `node` fired: the incarnation it suspected, None if none."""
        entry = self._by_node.pop(node, None)
        return None if entry is None else entry[1]

    def unconfirmed(self) -> Iterator[Suspect]:
        """Our own accusations nobody has confirmed: they may simply not have been heard
        (our outbound path is what failed), so they are worth telling again."""
        for node, (suspicion, incarnation, accuser) in self._by_node.items():
            if accuser == self._me and not suspicion.confirmations:
                yield Suspect(node, incarnation, self._me)
