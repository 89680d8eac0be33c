"""Which peer to pull a newer policy from: pure decisions, driven by gossiped adverts.

Gossip carries every node's (policy version, hash) in its status; the document itself is
pulled once, from one peer advertising the newest version, then verified and offered to
the adopter like any other source. Documents do not ride on gossip because they are
kilobytes and change rarely, while status news must stay small and frequent.

A peer that fails to serve (unreachable, or what it serves is not what it advertised) is
skipped for `retry_after`; an advertised (version, hash) whose document our adopter
rejected is never fetched again, so a forged or conflicting advert cannot make an agent
loop. One fetch at a time: pulls are rare and a slow one times out after `fetch_timeout`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from skyfleet.policy.adoption import Outcome


@dataclass(frozen=True, slots=True, order=True)
class Advert:
    """A peer says it runs policy `version` with content `hash`."""

    version: int
    hash: str
    node: str


@dataclass(frozen=True, slots=True)
class FetchPlan:
    node: str
    version: int
    hash: str


class PolicySync:
    def __init__(self, rng: random.Random, *, retry_after: float, fetch_timeout: float) -> None:
        self._rng = rng
        self._retry_after = retry_after
        self._fetch_timeout = fetch_timeout
        self._inflight: FetchPlan | None = None
        self._inflight_until = 0.0
        self._skip_until: dict[str, float] = {}
        self._rejected: set[tuple[int, str]] = set()

    def next_fetch(
        self, current_version: int, adverts: Iterable[Advert], now: float
    ) -> FetchPlan | None:
        """The pull to start now, if any: a random peer among those advertising the
        highest version above ours (spreading the load of a fresh publication)."""
        if self._inflight is not None and now < self._inflight_until:
            return None
        self._inflight = None
        candidates = [
            a
            for a in adverts
            if a.version > current_version
            and (a.version, a.hash) not in self._rejected
            and self._skip_until.get(a.node, 0.0) <= now
        ]
        if not candidates:
            return None
        best = max(a.version for a in candidates)
        choice = self._rng.choice(sorted(a for a in candidates if a.version == best))
        self._inflight = FetchPlan(choice.node, choice.version, choice.hash)
        self._inflight_until = now + self._fetch_timeout
        return self._inflight

    def fetch_failed(self, plan: FetchPlan, now: float) -> None:
        """The peer could not be reached or had nothing to serve."""
        self._inflight = None
        self._skip_until[plan.node] = now + self._retry_after

    def fetched(self, plan: FetchPlan, outcome: Outcome, now: float) -> None:
        """The adopter's verdict on what the peer served."""
        self._inflight = None
        if outcome in (Outcome.ADOPTED, Outcome.DUPLICATE_SAME):
            return
        self._skip_until[plan.node] = now + self._retry_after
        if outcome in (Outcome.INVALID, Outcome.CONFLICT):
            self._rejected.add((plan.version, plan.hash))
