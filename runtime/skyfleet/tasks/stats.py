"""Decaying averages of an executor's recent latency and error rate (pure, clock
injected): what an agent advertises so peers can weigh it."""

from __future__ import annotations

import math


class Ewma:
    """Exponentially weighted moving average in continuous time: a sample's weight
    decays as exp(-age / tau), so sparse and dense traffic are averaged alike."""

    def __init__(self, tau: float, initial: float = 0.0) -> None:
        self._tau = tau
        self._value = initial
        self._at: float | None = None

    @property
    def value(self) -> float:
        return self._value

    def observe(self, sample: float, now: float) -> float:
        if self._at is None:
            self._value = sample
        else:
            w = math.exp(-max(0.0, now - self._at) / self._tau)
            self._value = w * self._value + (1 - w) * sample
        self._at = now
        return self._value
