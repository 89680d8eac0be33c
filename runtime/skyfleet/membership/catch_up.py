"""Join catch-up: a seed completes the tables it handed out during a burst of joins.

A join reply is a snapshot of the seed's table. When many nodes join through one seed at
once (a fleet booting, the membership benchmark's join on command), the first joiners'
snapshots miss everyone who came after them, and memberlist leaves each such pair to
gossip: with fan-out 3 and a log-N retransmit limit, the last pairs wait for a periodic
round or a push-pull. The seed is the one node that knows exactly which joiner lacks
which members, and it holds a connection to each of them (the one the joiner opened).

So the seed remembers every joiner it answered, with the time of the table it sent; at
each of its gossip rounds it sends every such joiner the members whose state changed
since then. A joiner is forgotten once `window` seconds bring nothing new for it (not at
the first empty round: that may fire in the very instant of its join, before the rest of
the burst has arrived). A lone join costs a few table scans and no packet.
"""

from __future__ import annotations

from collections.abc import Iterable

from skyfleet.membership.members import MemberView
from skyfleet.membership.messages import MemberRecord


class CatchUp:
    def __init__(self, window: float) -> None:
        """`window` 0 turns catch-up off (memberlist's behaviour)."""
        self._window = window
        self._joiners: dict[str, tuple[str, float]] = {}
        """name -> (address, time of the last table we sent it)."""

    def answered(self, name: str, address: str, now: float) -> None:
        """We just sent `name` (at `address`) our whole table in reply to its join."""
        if self._window > 0:
            self._joiners[name] = (address, now)

    def due(
        self, members: Iterable[MemberView], now: float
    ) -> list[tuple[str, str, tuple[MemberRecord, ...]]]:
        """(name, address, records) for every recent joiner that has news: the members
        that changed since the table it last got (never itself)."""
        if not self._joiners:
            return []
        oldest = min(at for _, at in self._joiners.values())
        changed = [m for m in members if m.state_since >= oldest]
        out: list[tuple[str, str, tuple[MemberRecord, ...]]] = []
        for name, (address, at) in list(self._joiners.items()):
            news = tuple(m.record() for m in changed if m.state_since >= at and m.name != name)
            if news:
                self._joiners[name] = (address, now)
                out.append((name, address, news))
            elif now - at >= self._window:
                del self._joiners[name]
        return out
