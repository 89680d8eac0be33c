"""The formulas strategies rank peers by, as small pure functions (table-tested in
tests/balancing/test_balancing_strategies.py)."""

from __future__ import annotations

import math


def p2c_cost(load: float, capacity: float) -> float:
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


def stale_load(
    reported: int, capacity: float, age: float, turnover: float, fleet_utilisation: float
) -> float:
    """How many tasks a peer that reported `reported` tasks `age` seconds ago holds now,
    not counting what we sent it since (that is known exactly and added by the caller).

    Trust in the report decays as exp(-age / turnover), where `turnover` is the peer's own
    task latency: within about one latency its queue has turned over. What is not
    trusted is filled in with the fleet's average utilisation times the peer's capacity.
    Without this, every node reads the same stale "idle" and sends there at once (herding);
    with it, very stale reports fade to a capacity-weighted random choice, never worse
    than random. `turnover <= 0` (unknown) trusts the report fully.
    """
    if turnover <= 0:
        return float(reported)
    w = math.exp(-max(0.0, age) / turnover)
    return w * reported + (1.0 - w) * fleet_utilisation * capacity
