"""What a balancer knows about a peer when it picks one: the `PeerLoad` view.

A view mixes two sources of different freshness. `inflight`, `queued`, `latency_ewma` and
`error_rate` come from the peer's last gossiped status, measured at `status_at` and
getting older every second. `sent_since_status` is the picking node's own, exact
knowledge: tasks it sent to that peer since that status was measured and still in
flight (`skyfleet.tasks.peer_views` keeps the count). Adding the two is
what keeps a node from herding onto a peer that looked idle one gossip period ago (the
classic failure of "send to the least loaded" on stale data).

The view stores the time of the status, not its age, so a view built once stays true;
`age(now)` gives the age.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Locale:
    """Where a node runs: the failure domains, widest first."""

    cloud: str
    region: str = ""
    zone: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerLoad:
    """One candidate peer as the picking node sees it."""

    name: str
    cloud: str
    region: str = ""
    zone: str = ""
    capacity: float = 1.0
    """Tasks the peer runs at once (its slots). Must be > 0."""
    inflight: int = 0
    """Tasks running on the peer when it measured its status."""
    queued: int = 0
    """Tasks waiting for a slot on the peer when it measured its status."""
    latency_ewma: float = 0.0
    """The peer's own moving average of task latency, seconds; 0 when unknown."""
    error_rate: float = 0.0
    """Share of the peer's recent tasks that failed, 0..1."""
    status_at: float = 0.0
    """Clock time at which the peer measured this status."""
    sent_since_status: int = 0
    """Tasks the picking node sent to this peer since `status_at`, still in flight
    (exact, local)."""
    healthy: bool = True
    """Membership says alive (False while suspected)."""
    handlers: frozenset[str] | None = None
    """The handlers the peer serves; None: every handler (an agent that predates the
    list advertises none, and is sent any task as before)."""

    def __post_init__(self) -> None:
        if not self.capacity > 0:
            raise ValueError(f"peer {self.name!r}: capacity must be > 0, got {self.capacity}")

    @property
    def load(self) -> int:
        """Best estimate of the tasks on the peer now: reported work plus own sends since."""
        return self.inflight + self.queued + self.sent_since_status

    def serves(self, handler: str) -> bool:
        return self.handlers is None or handler in self.handlers

    def age(self, now: float) -> float:
        """Seconds since the peer measured this status."""
        return max(0.0, now - self.status_at)


class Capacities:
    """Effective capacity of a peer: its slots x the policy's weight for its cloud (1 for
    a cloud the policy does not name). The one definition every strategy and the
    balancer's locality split share."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self._weights = dict(weights)

    def of(self, peer: PeerLoad) -> float:
        return peer.capacity * self._weights.get(peer.cloud, 1.0)
