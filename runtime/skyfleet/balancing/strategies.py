"""Strategies: given the eligible peers (constraints, health and locality already applied
by the `Balancer`), pick one.

Each is a small pure class: randomness comes from the injected `random.Random`, time from
the `now` argument, and the only state is what the strategy learned from its own picks
and outcomes (`observe`). The simulator in `skyfleet.sim.tasks` drives these very objects.

    round_robin   each peer in turn; ignores load and capacity
    random        uniform
    weighted      random in proportion to capacity x cloud weight
    least_loaded  lowest reported load per slot, *without* one's own recent sends: what
                  naive designs do, kept as the baseline that herds on stale state
    p2c           d samples in proportion to capacity, the one with the lowest
                  (reported load, discounted by its age, + own sends since that report
                  + 1) / capacity (default)
    peak_ewma     d samples, lowest rtt_ewma x (pending + 1) / capacity (Linkerd)
    adaptive      Thompson-sampling contextual bandit (`skyfleet.balancing.adaptive`)

"Capacity" is always slots x the cloud's `weight` from the policy.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Protocol

from skyfleet.balancing.costs import (
    decay_weight,
    p2c_cost,
    peak_ewma_cost,
    peak_ewma_update,
    stale_load,
)
from skyfleet.balancing.peers import Capacities, PeerLoad

_REJECTIONS = 16
"""Redraws allowed when a weighted sample repeats a peer before falling back to an exact
draw over the peers not yet taken; with a few dominant peers rejection alone could spin."""


class Strategy(Protocol):
    """What the `Balancer` needs from a strategy."""

    name: str

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        """One of `peers` (never empty)."""
        ...

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        """Outcome of a task sent to `peer` (the view it was picked on), `latency` seconds
        after it was sent. Strategies that do not learn ignore it."""
        ...


def sample_distinct(
    peers: Sequence[PeerLoad], d: int, rng: random.Random, weights: Sequence[float] | None
) -> list[PeerLoad]:
    """`d` distinct peers (all of them if there are no more than `d`), drawn uniformly or
    in proportion to `weights`, in a random order (callers break ties by taking the first)."""
    n = len(peers)
    if n <= d:
        return rng.sample(list(peers), n)
    if weights is None:
        return [peers[i] for i in rng.sample(range(n), d)]
    cum = list(itertools.accumulate(weights))
    total = cum[-1]
    taken: list[int] = []
    rejections = 0
    while len(taken) < d:
        i = min(bisect.bisect_right(cum, rng.random() * total), n - 1)
        if i not in taken:
            taken.append(i)
        elif (rejections := rejections + 1) > _REJECTIONS:
            rest = [j for j in range(n) if j not in taken]
            taken.append(rng.choices(rest, weights=[weights[j] for j in rest])[0])
    return [peers[i] for i in taken]


class RoundRobin:
    name = "round_robin"

    def __init__(self, rng: random.Random) -> None:
        # Start at a random offset so that many nodes do not march in step.
        self._next = rng.randrange(1 << 30)

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        self._next += 1
        return peers[self._next % len(peers)]

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        return None


class RandomPick:
    name = "random"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        return peers[self._rng.randrange(len(peers))]

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        return None


class Weighted:
    name = "weighted"

    def __init__(self, rng: random.Random, weights: Mapping[str, float]) -> None:
        self._rng = rng
        self._cap = Capacities(weights)

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        return sample_distinct(peers, 1, self._rng, [self._cap.of(p) for p in peers])[0]

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        return None


class LeastLoaded:
    name = "least_loaded"

    def __init__(self, rng: random.Random, weights: Mapping[str, float]) -> None:
        self._rng = rng
        self._cap = Capacities(weights)

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        # Deliberately the reported load only: this is the naive design being measured.
        costs = [p2c_cost(p.inflight + p.queued, self._cap.of(p)) for p in peers]
        low = min(costs)
        best = [p for p, c in zip(peers, costs, strict=True) if c == low]
        return best[self._rng.randrange(len(best))]

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        return None


class P2C:
    """Power of d choices. Cost of a candidate: (estimated load now + own sends since its
    status + 1) / capacity, where the estimate discounts the status by its age
    (`costs.stale_load`). With `capacity_weighted` off: uniform draws and raw load."""

    name = "p2c"

    def __init__(
        self,
        rng: random.Random,
        weights: Mapping[str, float],
        *,
        choices: int,
        capacity_weighted: bool,
    ) -> None:
        self._rng = rng
        self._cap = Capacities(weights)
        self._d = choices
        self._weighted = capacity_weighted

    def cost(self, peer: PeerLoad, now: float, fleet_utilisation: float) -> float:
        capacity = self._cap.of(peer) if self._weighted else 1.0
        reported = peer.inflight + peer.queued
        age = peer.age(now)
        estimate = stale_load(reported, capacity, age, peer.latency_ewma, fleet_utilisation)
        return p2c_cost(estimate + peer.sent_since_status, capacity)

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        caps = [self._cap.of(p) for p in peers]
        sample = sample_distinct(peers, self._d, self._rng, caps if self._weighted else None)
        if len(sample) == 1:
            return sample[0]
        total = sum(caps) if self._weighted else len(peers)
        fleet = sum(p.inflight + p.queued for p in peers) / total
        # min() keeps the first of equals, and the sample order is random: ties are fair.
        return min(sample, key=lambda p: self.cost(p, now, fleet))

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        return None


class PeakEwma:
    """Linkerd's cost rtt x (pending + 1), per slot, over d capacity-weighted samples.

    rtt is this node's own peak EWMA of the latency it observed from the peer, read with
    Finagle's decay toward zero while no sample arrives (so a peer that was slow once is
    tried again rather than starved forever). Before the first sample it is the latency
    the peer gossips, else the mean of the estimates held. pending is the gossiped load
    plus own sends since, as for p2c. Sampling is capacity-weighted, unlike Linkerd's
    uniform draw, because uniform draws are unstable with unequal capacities.
    """

    name = "peak_ewma"

    def __init__(
        self,
        rng: random.Random,
        weights: Mapping[str, float],
        *,
        decay_seconds: float,
        choices: int,
    ) -> None:
        self._rng = rng
        self._cap = Capacities(weights)
        self._decay = decay_seconds
        self._d = choices
        self._rtt: dict[str, tuple[float, float]] = {}
        """peer name -> (estimate, time of last sample)."""

    def rtt(self, peer: PeerLoad, now: float) -> float:
        held = self._rtt.get(peer.name)
        if held is not None:
            estimate, at = held
            return estimate * decay_weight(now - at, self._decay)
        if peer.latency_ewma > 0:
            return peer.latency_ewma
        if self._rtt:
            return sum(e for e, _ in self._rtt.values()) / len(self._rtt)
        return 0.0

    def cost(self, peer: PeerLoad, now: float) -> float:
        return peak_ewma_cost(self.rtt(peer, now), peer.load, self._cap.of(peer))

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        weights = [self._cap.of(p) for p in peers]
        sample = sample_distinct(peers, self._d, self._rng, weights)
        return min(sample, key=lambda p: self.cost(p, now))

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        held = self._rtt.get(peer.name)
        if held is None:
            self._rtt[peer.name] = (latency, now)
            return
        estimate, at = held
        self._rtt[peer.name] = (peak_ewma_update(estimate, latency, now - at, self._decay), now)
