"""Service-time and arrival draws for the task simulator, in numpy batches.

All service distributions have mean 1, so simulated time is in mean service times:
"gossip period 10" is ten average tasks long.

    exponential  SCV 1: the M/M/c case the Erlang-C reference is exact for
    lognormal    SCV 4: heavy-ish tail, a few tasks far longer than the rest
    bimodal      90 % of 0.5, 10 % of 5.5 (SCV 2.25): quick calls and long jobs mixed
"""

from __future__ import annotations

import math

import numpy as np

SERVICE_KINDS = ("exponential", "lognormal", "bimodal")

LOGNORMAL_SCV = 4.0
BIMODAL_SHORT, BIMODAL_LONG, BIMODAL_LONG_SHARE = 0.5, 5.5, 0.1

_BATCH = 4096


def service_scv(kind: str) -> float:
    """Squared coefficient of variation of a service kind (variance / mean^2)."""
    if kind == "exponential":
        return 1.0
    if kind == "lognormal":
        return LOGNORMAL_SCV
    if kind == "bimodal":
        second = (1 - BIMODAL_LONG_SHARE) * BIMODAL_SHORT**2 + BIMODAL_LONG_SHARE * BIMODAL_LONG**2
        return second - 1.0
    raise ValueError(f"service: unknown kind {kind!r}; known: {', '.join(SERVICE_KINDS)}")


def draw_service(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` service times of mean 1."""
    if kind == "exponential":
        return rng.exponential(1.0, n)
    if kind == "lognormal":
        sigma2 = math.log1p(LOGNORMAL_SCV)
        return rng.lognormal(-sigma2 / 2.0, math.sqrt(sigma2), n)
    if kind == "bimodal":
        long = rng.random(n) < BIMODAL_LONG_SHARE
        return np.where(long, BIMODAL_LONG, BIMODAL_SHORT)
    raise ValueError(f"service: unknown kind {kind!r}; known: {', '.join(SERVICE_KINDS)}")


class Draws:
    """An endless stream of one kind of draw, refilled from numpy in batches (one numpy
    call per few thousand draws instead of one per event)."""

    def __init__(self, fill: object, rng: np.random.Generator) -> None:
        self._fill = fill
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._fill(self._rng, _BATCH).tolist()  # type: ignore[operator]
            self._i = 0
        self._i += 1
        return self._buf[self._i - 1]
