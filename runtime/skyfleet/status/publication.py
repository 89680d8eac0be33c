"""When a node's status is worth gossiping: on a change that matters to the balancers of
its peers, or when it has not been said for a while.

Every report costs the whole fleet retransmissions (each node relays it), so an idle
fleet must stay quiet — a status every second from every node would cost more than all
of membership — while a busy one must keep its load figures fresh.
"""

from __future__ import annotations

from skyfleet.membership.members import EventKind
from skyfleet.membership.messages import StatusReport

LATENCY_CHANGE = 0.2
"""Relative change of the latency EWMA worth a report (20 %)."""

ERROR_RATE_CHANGE = 0.05
"""Absolute change of the error rate worth a report (5 points)."""


def worth_publishing(
    last: StatusReport | None,
    new: StatusReport,
    *,
    last_at: float,
    now: float,
    refresh: float,
) -> bool:
    if last is None or now - last_at >= refresh:
        return True
    if (new.policy_version, new.policy_hash, new.capacity, new.handlers) != (
        last.policy_version,
        last.policy_hash,
        last.capacity,
        last.handlers,
    ):
        return True
    if new.inflight + new.queued != last.inflight + last.queued:
        return True
    if abs(new.latency_ms - last.latency_ms) > LATENCY_CHANGE * max(last.latency_ms, 1.0):
        return True
    return abs(new.error_rate - last.error_rate) > ERROR_RATE_CHANGE


class StatusAdvertiser:
    """One node's side of status gossip, the agent's and the simulator's alike: what it
    last said and when, so that the periodic tick publishes only what `worth_publishing`
    lets through; a member that (re)joined has none of our news, so it forces the next
    tick — coalesced, a join burst costs one status a tick, not one per joiner."""

    def __init__(self, refresh: float) -> None:
        self._refresh = refresh
        self._last: StatusReport | None = None
        self._last_at = 0.0
        self._due = False

    def on_member_event(self, kind: EventKind) -> None:
        if kind in (EventKind.JOIN, EventKind.ALIVE):
            self._due = True

    def tick(self, report: StatusReport, now: float) -> bool:
        """The periodic check: whether to publish `report` now (if so it is recorded as
        published)."""
        if not self._due and not worth_publishing(
            self._last, report, last_at=self._last_at, now=now, refresh=self._refresh
        ):
            return False
        self.published(report, now)
        return True

    def published(self, report: StatusReport, now: float) -> None:
        """`report` went out (a tick, or at once on a change the node made itself)."""
        self._last, self._last_at, self._due = report, now, False
