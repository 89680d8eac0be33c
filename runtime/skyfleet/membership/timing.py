"""The formulas of SWIM + Lifeguard, as small pure functions (table-tested in
tests/membership/test_timing.py). Names and shapes follow hashicorp/memberlist."""

from __future__ import annotations

import math


def suspicion_timeout(suspicion_mult: int, n: int, interval: float) -> float:
    """Minimum suspicion timeout: mult x max(1, log10(n)) x probe interval.

    Grows with log N because news needs about log N gossip rounds to reach everyone, and
    the suspect must hear of its suspicion in time to refute it.
    """
    node_scale = max(1.0, math.log10(max(1, n)))
    return suspicion_mult * node_scale * interval


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """How many times each piece of news is piggybacked: mult x ceil(log10(n + 1))."""
    return retransmit_mult * math.ceil(math.log10(n + 1))


def remaining_suspicion_time(
    confirmations: int, k: int, elapsed: float, min_timeout: float, max_timeout: float
) -> float:
    """Lifeguard: time left on a suspicion timer after `confirmations` independent
    suspicions out of the `k` expected.

    The timeout starts at `max_timeout` and falls logarithmically to `min_timeout` as
    confirmations arrive, so one node's lone (possibly self-inflicted) suspicion takes
    long to kill anyone while a crash that many see is declared fast.
    """
    if k <= 0:
        timeout = min_timeout
    else:
        frac = math.log(confirmations + 1.0) / math.log(k + 1.0)
        timeout = max(min_timeout, max_timeout - frac * (max_timeout - min_timeout))
    return timeout - elapsed


def push_pull_scale(interval: float, n: int, threshold: int = 32) -> float:
    """Stretch the push-pull interval past `threshold` nodes so the fleet-wide rate of
    full-state exchanges stays bounded: interval x (ceil(log2 n - log2 threshold) + 1)."""
    if n <= threshold:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(threshold)) + 1.0
    return interval * multiplier


def scale_by_health(duration: float, health_score: int) -> float:
    """Lifeguard: a node with local health score s waits (s + 1) times longer."""
    return duration * (health_score + 1)
