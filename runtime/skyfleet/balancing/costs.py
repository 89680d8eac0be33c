"""The formulas strategies rank peers by, as small pure functions (table-tested in
tests/balancing/test_balancing_strategies.py)."""

from __future__ import annotations

import math


def p2c_cost(load: int, capacity: float) -> float:
    """Capacity-normalised load after adding this task: (load + 1) / capacity.

    The +1 counts the task being placed, so between two idle peers the bigger one is
    cheaper, and a peer of 8 slots running 4 tasks (0.625) beats one of 2 running 1 (1.0).
    """
    return (load + 1) / capacity


def decay_weight(elapsed: float, decay_seconds: float) -> float:
    """Weight left on an observation `elapsed` seconds old: exp(-elapsed / decay)."""
    return math.exp(-max(0.0, elapsed) / decay_seconds)


def peak_ewma_update(estimate: float, sample: float, elapsed: float, decay_seconds: float) -> float:
    """Linkerd/Finagle peak EWMA: a sample above the estimate replaces it at once (react
    to trouble immediately); one below pulls it down with weight exp(-elapsed / decay),
    so recovery is believed only gradually. `elapsed` is the time since the last sample.
    """
    if sample >= estimate:
        return sample
    w = decay_weight(elapsed, decay_seconds)
    return estimate * w + sample * (1.0 - w)


def peak_ewma_cost(rtt: float, pending: int, capacity: float) -> float:
    """Linkerd's rtt x (pending + 1), with pending per slot so a big peer is not mistaken
    for a busy one."""
    return rtt * (pending + 1) / capacity
