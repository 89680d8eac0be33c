"""When a node's status is worth gossiping: on a change that matters to the balancers of
its peers, or when it has not been said for a while.

Every report costs the whole fleet retransmissions (each node relays it), so an idle
fleet must stay quiet — a status every second from every node would cost more than all
of membership — while a busy one must keep its load figures fresh.
"""

from __future__ import annotations

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
    if (new.policy_version, new.policy_hash, new.capacity) != (
        last.policy_version,
        last.policy_hash,
        last.capacity,
    ):
        return True
    if new.inflight + new.queued != last.inflight + last.queued:
        return True
    if abs(new.latency_ms - last.latency_ms) > LATENCY_CHANGE * max(last.latency_ms, 1.0):
        return True
    return abs(new.error_rate - last.error_rate) > ERROR_RATE_CHANGE
