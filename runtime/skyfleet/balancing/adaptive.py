"""`adaptive`: an experimental learning strategy — a contextual bandit with Thompson
sampling over a per-peer linear latency model.

Why this shape. A plain multi-armed bandit over peers ("send to the peer with the best
observed latency") herds: the reward of an arm falls as traffic goes to it, so the
stationary-reward assumption is false and the best arm gets crushed. Here the context of
a pick is the queueing the task would meet, so the learner predicts latency *given* load
instead of ranking peers by their past:

    latency ~= a_p + b_p * q,    q = max(0, load + 1 - capacity) / capacity

`a_p` is what an unqueued task costs on peer p (its service time plus the network path
from us, so a remote cloud is dearer), `b_p` what each queued task per slot adds (its
service time per task). Both are learned from the latencies this node observes, so a peer
running 4x slower than its gossiped capacity suggests is found out — p2c cannot see that.

Estimation: Bayesian ridge regression per peer, with exponential forgetting (weight
exp(-age / decay_seconds)) so the model follows change, and a prior centred on the same
model fitted over all peers (empirical Bayes), so a new peer starts from the fleet's
typical behaviour rather than from nothing. Candidates are drawn as for p2c (d in
proportion to capacity); each pick ranks them by predicted latency. A share
`exploration` of picks ranks by a draw from the posterior (Thompson sampling), the rest by
the posterior mean. Failed attempts are left to outlier detection and do not train the
model.

The DESIGN brief says no public evidence shows learned balancers beating capacity-weighted
p2c; bench/strategies.py measures where this one wins or loses.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np

from skyfleet.balancing.peers import Capacities, PeerLoad
from skyfleet.balancing.strategies import sample_distinct

_PRIOR_STRENGTH = 2.0
"""Pseudo-observations the fleet-wide prior is worth for each peer's model."""

_RIDGE = 1e-6
"""Keeps the fleet-wide fit solvable before it has seen two distinct contexts."""

# Columns of the sufficient statistics: sum of w, w*q, w*q^2, w*y, w*q*y, w*y^2.
_W, _Q, _QQ, _Y, _QY, _YY = range(6)


def queue_per_slot(load: int, capacity: float) -> float:
    """Queued tasks per slot a new task would meet: max(0, load + 1 - capacity) / capacity."""
    return max(0.0, load + 1.0 - capacity) / capacity


def _solve(stats: np.ndarray, prior_mean: np.ndarray, prior: float) -> tuple[np.ndarray, ...]:
    """Posterior (mean, precision matrices) of (a, b) for rows of `stats` under a
    N(prior_mean, I / prior) prior. Vectorised closed-form 2x2 algebra."""
    p00 = stats[:, _W] + prior
    p01 = stats[:, _Q]
    p11 = stats[:, _QQ] + prior
    r0 = stats[:, _Y] + prior * prior_mean[0]
    r1 = stats[:, _QY] + prior * prior_mean[1]
    det = p00 * p11 - p01 * p01
    mean_a = (p11 * r0 - p01 * r1) / det
    mean_b = (p00 * r1 - p01 * r0) / det
    return mean_a, mean_b, p00, p01, p11, det


class Adaptive:
    name = "adaptive"

    def __init__(
        self,
        rng: random.Random,
        weights: Mapping[str, float],
        *,
        exploration: float,
        decay_seconds: float,
        choices: int,
    ) -> None:
        self._rng = rng
        self._np = np.random.default_rng(rng.getrandbits(64))
        self._capacities = Capacities(weights)
        self._exploration = exploration
        self._decay = decay_seconds
        self._d = choices
        self._index: dict[str, int] = {}
        self._stats = np.zeros((0, 6))
        self._stamp = np.zeros(0)
        self._fleet = np.zeros(6)
        self._fleet_stamp = 0.0

    def _capacity(self, peer: PeerLoad) -> float:
        return self._capacities.of(peer)

    def _row(self, name: str) -> int:
        row = self._index.get(name)
        if row is None:
            row = self._index[name] = len(self._index)
            self._stats = np.vstack([self._stats, np.zeros(6)])
            self._stamp = np.append(self._stamp, 0.0)
        return row

    def _decayed(self, rows: list[int], now: float) -> np.ndarray:
        factor = np.exp(-np.maximum(0.0, now - self._stamp[rows]) / self._decay)
        return self._stats[rows] * factor[:, None]

    def fleet_model(self, now: float) -> np.ndarray:
        """(a, b) fitted over every peer's observations: the prior of each peer's model."""
        s = self._fleet * np.exp(-max(0.0, now - self._fleet_stamp) / self._decay)
        a, b, *_ = _solve(s[None, :], np.zeros(2), _RIDGE)
        return np.array([a[0], b[0]])

    def _noise_variance(self, now: float) -> float:
        s = self._fleet * np.exp(-max(0.0, now - self._fleet_stamp) / self._decay)
        if s[_W] < 2.0:
            return 1.0
        mean = s[_Y] / s[_W]
        return max(1e-9, s[_YY] / s[_W] - mean * mean)

    def predict(self, peers: Sequence[PeerLoad], now: float, *, explore: bool) -> np.ndarray:
        """Latency predicted for a task sent to each of `peers` now: the posterior mean,
        or one Thompson draw from the posterior when `explore`."""
        rows = [self._row(p.name) for p in peers]
        q = np.array([queue_per_slot(p.load, self._capacity(p)) for p in peers])
        a, b, p00, p01, p11, det = _solve(
            self._decayed(rows, now), self.fleet_model(now), _PRIOR_STRENGTH
        )
        if explore:
            # Covariance = noise x inverse precision; draw via its 2x2 Cholesky factor.
            var = self._noise_variance(now)
            c00, c01, c11 = var * p11 / det, -var * p01 / det, var * p00 / det
            l00 = np.sqrt(c00)
            l10 = c01 / l00
            l11 = np.sqrt(np.maximum(c11 - l10 * l10, 0.0))
            z = self._np.standard_normal((2, len(rows)))
            a = a + l00 * z[0]
            b = b + l10 * z[0] + l11 * z[1]
        return a + b * q

    def pick(self, peers: Sequence[PeerLoad], now: float) -> PeerLoad:
        sample = sample_distinct(peers, self._d, self._rng, [self._capacity(p) for p in peers])
        if len(sample) == 1:
            return sample[0]
        explore = self._rng.random() < self._exploration
        predicted = self.predict(sample, now, explore=explore)
        return sample[int(np.argmin(predicted))]

    def observe(self, peer: PeerLoad, latency: float, ok: bool, now: float) -> None:
        if not ok:
            return
        q = queue_per_slot(peer.load, self._capacity(peer))
        x = np.array([1.0, q, q * q, latency, q * latency, latency * latency])
        row = self._row(peer.name)
        self._stats[row] = self._decayed([row], now)[0] + x
        self._stamp[row] = now
        fleet_factor = np.exp(-max(0.0, now - self._fleet_stamp) / self._decay)
        self._fleet = self._fleet * fleet_factor + x
        self._fleet_stamp = now
