"""Retry budget (Envoy): retries may be at most `percent` of the attempts in flight, with
`min_concurrent` always allowed so a quiet node can still retry.

Why a budget rather than only max attempts: when a whole cloud fails, every task in
flight there fails at once, and max-attempts alone lets each of them retry up to 4 more
times — a storm that lands on the surviving clouds exactly when they absorb the failed
cloud's share. A budget caps the extra load at a fraction of the normal load.
"""

from __future__ import annotations

import math

from skyfleet.policy.model import RetryBudget as RetryBudgetConfig


def retry_allowance(active_attempts: int, percent: float, min_concurrent: int) -> int:
    """Retries that may be in flight: max(min_concurrent, floor(percent% x active))."""
    return max(min_concurrent, math.floor(percent / 100.0 * active_attempts + 1e-9))


class RetryBudget:
    """Counts attempts (first tries and retries) in flight from this node."""

    def __init__(self, config: RetryBudgetConfig) -> None:
        self._config = config
        self.active = 0
        self.active_retries = 0

    def reconfigure(self, config: RetryBudgetConfig) -> None:
        self._config = config

    def can_retry(self) -> bool:
        allowance = retry_allowance(self.active, self._config.percent, self._config.min_concurrent)
        return self.active_retries < allowance

    def started(self, *, retry: bool) -> None:
        self.active += 1
        if retry:
            self.active_retries += 1

    def finished(self, *, retry: bool) -> None:
        if self.active <= 0 or (retry and self.active_retries <= 0):
            raise RuntimeError("retry budget: finished an attempt that was never started")
        self.active -= 1
        if retry:
            self.active_retries -= 1
