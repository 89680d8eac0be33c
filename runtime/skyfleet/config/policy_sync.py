"""Timings of the policy pull loop, derived from the membership timings so that a WAN
fleet (slow probes) also waits longer for a peer's document.

One place for these numbers: the agent's `PolicyKeeper` and the simulator's policy model
both take them from `policy_sync_timings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyfleet.config.membership import MembershipConfig

POLL_INTERVAL = 0.25
"""How often adverts and the watched source are checked when nothing wakes the keeper
(cheap: no I/O unless changed). A newly gossiped advert wakes it at once."""

MIN_FETCH_TIMEOUT = 2.0
"""Floor of a pull's deadline: a signed document over a cold mTLS channel (a handshake
and a few kilobytes) fits well inside it even on a loaded host."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySyncTimings:
    poll_interval: float
    fetch_timeout: float
    """Deadline of one Fetch: two probe intervals, at least `MIN_FETCH_TIMEOUT`."""
    retry_after: float
    """A peer that failed to serve is skipped this long: five probe intervals, by which
    time membership has either marked it failed or seen it answer again."""


def policy_sync_timings(membership: MembershipConfig) -> PolicySyncTimings:
    return PolicySyncTimings(
        poll_interval=POLL_INTERVAL,
        fetch_timeout=max(MIN_FETCH_TIMEOUT, 2 * membership.probe_interval),
        retry_after=5 * membership.probe_interval,
    )
