"""The limit a balancer is measured against: one pooled M/M/c queue over all capacity.

Exact formulas (Erlang C) for Poisson arrivals at rate `lam`, `c` identical servers of
rate `mu`. With every host's slots pooled into one FIFO queue no task ever waits while a
slot anywhere is free, which no distributed balancer can beat; the ratio of a strategy's
latency to these figures is what the benchmark reports. For non-exponential service the
pooled queue is simulated instead (`skyfleet.sim.task_pooled`).
"""

from __future__ import annotations

import math


def erlang_c(c: int, offered: float) -> float:
    """Probability an arrival waits in M/M/c with offered load a = lam / mu (< c).

    Computed through the Erlang-B recursion B(k) = a B(k-1) / (k + a B(k-1)), which is
    stable for hundreds of servers where the textbook factorial sum overflows.
    """
    if c < 1:
        raise ValueError(f"servers must be >= 1, got {c}")
    if not 0 <= offered < c:
        raise ValueError(f"offered load must be in [0, {c}) for a stable queue, got {offered}")
    b = 1.0
    for k in range(1, c + 1):
        b = offered * b / (k + offered * b)
    rho = offered / c
    return b / (1.0 - rho * (1.0 - b))


def mmc_mean_response(c: int, lam: float, mu: float = 1.0) -> float:
    """Mean time in system (wait + service)."""
    return mmc_mean_wait(c, lam, mu) + 1.0 / mu


def mmc_mean_wait(c: int, lam: float, mu: float = 1.0) -> float:
    """Mean time in the queue, before service."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_wait_quantile(q: float, c: int, lam: float, mu: float = 1.0) -> float:
    """The q-quantile of the wait: 0 with probability 1 - C, else Exp(c mu - lam), so
    P(W > t) = C exp(-(c mu - lam) t)."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    wait_prob = erlang_c(c, lam / mu)
    if wait_prob <= 1.0 - q:
        return 0.0
    return math.log(wait_prob / (1.0 - q)) / (c * mu - lam)


def mmc_response_survival(t: float, c: int, lam: float, mu: float = 1.0) -> float:
    """P(response time > t). The wait is 0 with probability 1 - C, else Exp(c mu - lam);
    the response is the wait plus an Exp(mu) service (a hypoexponential sum)."""
    if t <= 0:
        return 1.0
    wait_prob = erlang_c(c, lam / mu)
    theta = c * mu - lam
    if math.isclose(theta, mu):
        both = (1.0 + mu * t) * math.exp(-mu * t)
    else:
        both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1.0 - wait_prob) * math.exp(-mu * t) + wait_prob * both


def mmc_response_quantile(q: float, c: int, lam: float, mu: float = 1.0) -> float:
    """The q-quantile (0 < q < 1) of the response time, by bisection on the survival."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    target = 1.0 - q
    lo, hi = 0.0, 1.0
    while mmc_response_survival(hi, c, lam, mu) > target:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if mmc_response_survival(mid, c, lam, mu) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0
