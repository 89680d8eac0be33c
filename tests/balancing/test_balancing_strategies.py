"""Each strategy's defining property, and the cost formulas as tables."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from balancing_helpers import peer

from skyfleet.balancing.adaptive import Adaptive, queue_per_slot
from skyfleet.balancing.costs import (
    decay_weight,
    p2c_cost,
    peak_ewma_cost,
    peak_ewma_update,
    stale_load,
)
from skyfleet.balancing.strategies import (
    P2C,
    LeastLoaded,
    PeakEwma,
    RandomPick,
    RoundRobin,
    Weighted,
    sample_distinct,
)
from skyfleet.balancing.strategy_factory import make_strategy
from skyfleet.config.policy_defaults import STRATEGIES
from skyfleet.policy.model import PARAMS_TYPES, Strategy

NO_WEIGHTS: dict[str, float] = {}


@pytest.mark.parametrize(
    ("load", "capacity", "expected"),
    [(0, 1, 1.0), (0, 8, 0.125), (4, 8, 0.625), (1, 2, 1.0), (3.5, 2, 2.25)],
)
def test_p2c_cost(load: float, capacity: float, expected: float) -> None:
    assert p2c_cost(load, capacity) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("estimate", "sample", "elapsed", "decay", "expected"),
    [
        (1.0, 3.0, 5.0, 10.0, 3.0),  # above the estimate: replaces it at once
        (3.0, 1.0, 0.0, 10.0, 3.0),  # below, no time passed: no weight on the sample
        (3.0, 1.0, 10.0, 10.0, 3.0 * math.exp(-1) + 1.0 * (1 - math.exp(-1))),
        (3.0, 1.0, 1e9, 10.0, 1.0),  # long ago: the sample is all that counts
    ],
)
def test_peak_ewma_update(
    estimate: float, sample: float, elapsed: float, decay: float, expected: float
) -> None:
    assert peak_ewma_update(estimate, sample, elapsed, decay) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rtt", "pending", "capacity", "expected"), [(0.5, 0, 1, 0.5), (2.0, 3, 2, 4.0)]
)
def test_peak_ewma_cost(rtt: float, pending: int, capacity: float, expected: float) -> None:
    assert peak_ewma_cost(rtt, pending, capacity) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("reported", "capacity", "age", "turnover", "fleet_util", "expected"),
    [
        (6, 4, 0.0, 1.0, 0.5, 6.0),  # fresh: the report
        (6, 4, 1e9, 1.0, 0.5, 2.0),  # ancient: fleet utilisation x capacity
        (6, 4, 1.0, 1.0, 0.5, 6 * math.exp(-1) + 2 * (1 - math.exp(-1))),
        (6, 4, 50.0, 0.0, 0.5, 6.0),  # turnover unknown: trusted
    ],
)
def test_stale_load(
    reported: int, capacity: float, age: float, turnover: float, fleet_util: float, expected: float
) -> None:
    assert stale_load(reported, capacity, age, turnover, fleet_util) == pytest.approx(expected)


def test_decay_weight_never_grows_for_negative_elapsed() -> None:
    assert decay_weight(-5.0, 10.0) == 1.0
    assert decay_weight(10.0, 10.0) == pytest.approx(math.exp(-1))


def test_weighted_shares_follow_capacity_times_cloud_weight() -> None:
    peers = [peer("a", "aws", capacity=4), peer("b", "azure", capacity=2), peer("c", "gcp")]
    strategy = Weighted(random.Random(1), {"aws": 1.0, "azure": 1.0, "gcp": 3.0})
    n = 90_000
    counts = Counter(strategy.pick(peers, 0.0).name for _ in range(n))
    # effective capacities 4, 2, 3 -> shares 4/9, 2/9, 3/9
    for name, share in (("a", 4 / 9), ("b", 2 / 9), ("c", 3 / 9)):
        assert counts[name] / n == pytest.approx(share, abs=0.01)


def test_random_is_uniform_and_round_robin_is_exactly_even() -> None:
    peers = [peer(f"p{i}", capacity=i + 1) for i in range(4)]
    rnd = RandomPick(random.Random(2))
    counts = Counter(rnd.pick(peers, 0.0).name for _ in range(40_000))
    assert all(c / 40_000 == pytest.approx(0.25, abs=0.01) for c in counts.values())
    rr = RoundRobin(random.Random(3))
    picks = [rr.pick(peers, 0.0).name for _ in range(8)]
    assert Counter(picks) == Counter({p.name: 2 for p in peers})
    assert picks[:4] == picks[4:]


def test_p2c_with_two_peers_always_takes_the_cheaper() -> None:
    big_busy = peer("big", capacity=8, inflight=4)  # (4+1)/8
    small = peer("small", capacity=2, inflight=1)  # (1+1)/2
    strategy = P2C(random.Random(4), NO_WEIGHTS, choices=2, capacity_weighted=True)
    assert {strategy.pick([small, big_busy], 0.0).name for _ in range(200)} == {"big"}


def test_p2c_counts_its_own_sends_since_the_last_status() -> None:
    looked_idle = peer("a", sent_since_status=5, capacity=4)
    busy = peer("b", inflight=2, capacity=4)
    strategy = P2C(random.Random(5), NO_WEIGHTS, choices=2, capacity_weighted=True)
    assert strategy.pick([looked_idle, busy], 0.0).name == "b"


def test_p2c_never_picks_the_strictly_most_expensive_of_several() -> None:
    peers = [peer(f"p{i}", inflight=i, capacity=4) for i in range(5)]
    strategy = P2C(random.Random(6), NO_WEIGHTS, choices=2, capacity_weighted=True)
    picks = Counter(strategy.pick(peers, 0.0).name for _ in range(5000))
    assert picks["p4"] == 0
    # The cheapest wins whenever sampled: 1 - (4/5 * 3/4) = 40 % of picks.
    assert picks["p0"] / 5000 == pytest.approx(0.4, abs=0.03)


def test_p2c_discounts_an_old_status_towards_the_fleet_average() -> None:
    # "a" reported idle long ago (many latencies); "b" reported a little load just now.
    stale_idle = peer("a", capacity=4, status_at=0.0, latency_ewma=1.0)
    fresh = peer("b", capacity=4, inflight=1, status_at=100.0, latency_ewma=1.0)
    others = [peer(f"o{i}", capacity=4, inflight=4, status_at=100.0) for i in range(6)]
    strategy = P2C(random.Random(7), NO_WEIGHTS, choices=2, capacity_weighted=True)
    fleet_util = sum(p.inflight for p in [stale_idle, fresh, *others]) / (8 * 4)
    assert strategy.cost(stale_idle, 100.0, fleet_util) > strategy.cost(fresh, 100.0, fleet_util)


def test_uniform_p2c_samples_uniformly() -> None:
    peers = [peer("big", capacity=100), peer("s1"), peer("s2")]
    counts = Counter()
    rng = random.Random(8)
    for _ in range(30_000):
        counts.update(p.name for p in sample_distinct(peers, 2, rng, None))
    assert all(c / 30_000 == pytest.approx(2 / 3, abs=0.015) for c in counts.values())


def test_weighted_sampling_is_distinct_even_with_one_dominant_peer() -> None:
    peers = [peer("huge", capacity=1e6), peer("a"), peer("b")]
    rng = random.Random(9)
    for _ in range(200):
        names = [p.name for p in sample_distinct(peers, 2, rng, [p.capacity for p in peers])]
        assert len(set(names)) == 2 and "huge" in names


def test_least_loaded_takes_the_minimum_and_ignores_own_sends() -> None:
    peers = [peer("a", inflight=1, sent_since_status=50), peer("b", inflight=2)]
    strategy = LeastLoaded(random.Random(10), NO_WEIGHTS)
    assert {strategy.pick(peers, 0.0).name for _ in range(50)} == {"a"}


def test_peak_ewma_prefers_the_peer_it_saw_answer_faster() -> None:
    fast, slow = peer("fast"), peer("slow")
    strategy = PeakEwma(random.Random(11), NO_WEIGHTS, decay_seconds=10.0, choices=2)
    strategy.observe(fast, 0.5, True, 1.0)
    strategy.observe(slow, 2.0, True, 1.0)
    assert {strategy.pick([fast, slow], 1.0).name for _ in range(20)} == {"fast"}
    # One slow answer from "fast" replaces its estimate at once (the peak).
    strategy.observe(fast, 4.0, True, 1.1)
    assert strategy.rtt(fast, 1.1) == pytest.approx(4.0)


def test_queue_per_slot() -> None:
    assert queue_per_slot(0, 4) == 0.0
    assert queue_per_slot(3, 4) == 0.0
    assert queue_per_slot(7, 4) == pytest.approx(1.0)


def test_adaptive_fits_the_fleet_model_from_observations() -> None:
    strategy = Adaptive(
        random.Random(12), NO_WEIGHTS, exploration=0.0, decay_seconds=1e6, choices=2
    )
    rng = np.random.default_rng(0)
    for i in range(400):
        load = int(rng.integers(0, 12))
        p = peer(f"p{i % 3}", capacity=4, inflight=min(load, 4), queued=max(0, load - 4))
        q = queue_per_slot(p.load, 4)
        strategy.observe(p, 1.0 + 2.0 * q + float(rng.normal(0, 0.05)), True, float(i))
    a, b = strategy.fleet_model(400.0)
    assert (a, b) == (pytest.approx(1.0, abs=0.05), pytest.approx(2.0, abs=0.1))


def test_adaptive_learns_that_a_peer_is_slower_than_its_capacity_says() -> None:
    fast, slow = peer("fast", capacity=4), peer("slow", capacity=4)
    strategy = Adaptive(
        random.Random(13), NO_WEIGHTS, exploration=0.1, decay_seconds=100.0, choices=2
    )
    for i in range(50):
        strategy.observe(fast, 1.0, True, float(i))
        strategy.observe(slow, 4.0, True, float(i))
    picks = Counter(strategy.pick([fast, slow], 50.0).name for _ in range(200))
    assert picks["fast"] >= 190
    # ...but a fast peer with a long queue loses to an idle slow one.
    for i in range(50, 100):
        strategy.observe(peer("fast", capacity=4, queued=8), 3.0, True, float(i))
    swamped = peer("fast", capacity=4, inflight=4, queued=40)
    assert strategy.pick([swamped, slow], 100.0).name == "slow"


def test_adaptive_ignores_failures() -> None:
    strategy = Adaptive(random.Random(14), NO_WEIGHTS, exploration=0.0, decay_seconds=10, choices=2)
    strategy.observe(peer("a"), 100.0, False, 1.0)
    assert strategy.fleet_model(1.0).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_policy_strategy_name_builds_its_class(name: str) -> None:
    spec = Strategy(name=name, params=PARAMS_TYPES[name]())
    built = make_strategy(spec, weights=NO_WEIGHTS, rng=random.Random(0))
    assert built.name == name
    assert built.pick([peer("only")], 0.0).name == "only"


def test_unknown_strategy_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="'fastest'"):
        make_strategy(Strategy(name="fastest"), weights=NO_WEIGHTS, rng=random.Random(0))
