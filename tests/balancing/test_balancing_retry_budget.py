"""Retry budget and attempt limits."""

from __future__ import annotations

import random

import pytest
from balancing_helpers import fleet

from skyfleet.balancing import Balancer, Choice, Locale, NoEligiblePeer, NoPeerReason, TaskRequest
from skyfleet.balancing.retry_budget import RetryBudget, retry_allowance
from skyfleet.policy.model import Failover, PolicyDocument
from skyfleet.policy.model import RetryBudget as RetryBudgetConfig


@pytest.mark.parametrize(
    ("active", "percent", "minimum", "expected"),
    [
        (0, 20, 3, 3),
        (10, 20, 3, 3),
        (20, 20, 3, 4),
        (100, 20, 3, 20),
        (99, 20, 0, 19),
        (5, 100, 0, 5),
    ],
)
def test_retry_allowance(active: int, percent: float, minimum: int, expected: int) -> None:
    assert retry_allowance(active, percent, minimum) == expected


def test_budget_counts_retries_in_flight() -> None:
    budget = RetryBudget(RetryBudgetConfig(percent=20.0, min_concurrent=1))
    for _ in range(10):
        budget.started(retry=False)
    assert budget.can_retry()
    budget.started(retry=True)  # 1 of 11 in flight; allowance max(1, 2) = 2
    budget.started(retry=True)
    assert not budget.can_retry()
    budget.finished(retry=True)
    assert budget.can_retry()
    with pytest.raises(RuntimeError, match="never started"):
        RetryBudget(RetryBudgetConfig()).finished(retry=False)


def test_balancer_refuses_retries_past_the_budget_and_the_attempt_limit() -> None:
    policy = PolicyDocument(
        version=1,
        failover=Failover(
            max_attempts=3, retry_budget=RetryBudgetConfig(percent=0, min_concurrent=1)
        ),
    )
    b = Balancer(local=Locale(cloud="aws"), policy=policy, rng=random.Random(1))
    peers = fleet()
    retry = TaskRequest(kind="k", attempt=2)
    first = b.choose(retry, peers, 0.0)
    assert isinstance(first, Choice)
    second = b.choose(retry, peers, 0.0)
    assert isinstance(second, NoEligiblePeer) and second.reason is NoPeerReason.RETRY_BUDGET
    b.record(first, ok=False, now=1.0)
    assert isinstance(b.choose(retry, peers, 1.0), Choice)
    over = b.choose(TaskRequest(kind="k", attempt=4), peers, 1.0)
    assert isinstance(over, NoEligiblePeer) and over.reason is NoPeerReason.ATTEMPTS_EXHAUSTED
    assert "failover.max_attempts (3)" in over.detail
