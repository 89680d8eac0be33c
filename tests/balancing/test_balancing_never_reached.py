"""Retries after a refused connection are not charged to the retry budget; attempts
closed without a verdict free their slot."""

from __future__ import annotations

import random

from balancing_helpers import fleet

from skyfleet.balancing import Balancer, Choice, Locale, NoEligiblePeer, TaskRequest
from skyfleet.policy.model import PolicyDocument, parse_policy


def balancer() -> Balancer:
    doc = PolicyDocument(version=1).to_dict()
    doc["failover"]["retry_budget"] = {"percent": 0, "min_concurrent": 1}
    return Balancer(local=Locale(cloud="aws"), policy=parse_policy(doc), rng=random.Random(3))


def test_retry_after_unreachable_peer_is_not_budgeted() -> None:
    b, peers = balancer(), fleet()
    # One budgeted retry is in flight: the budget (min 1) is spent.
    held = b.choose(TaskRequest(kind="t", attempt=2), peers, now=0.0)
    assert isinstance(held, Choice) and held.budgeted
    refused = b.choose(TaskRequest(kind="t", attempt=2), peers, now=0.0)
    assert isinstance(refused, NoEligiblePeer) and refused.reason == "retry_budget"
    # Failing over from a peer that refused the connection still goes ahead.
    failover = b.choose(TaskRequest(kind="t", attempt=2, never_reached=True), peers, now=0.0)
    assert isinstance(failover, Choice) and not failover.budgeted
    b.record(failover, ok=True, now=1.0)
    b.release(held)
    assert b.retry_budget.active == 0 and b.retry_budget.active_retries == 0


def test_unbudgeted_retry_still_leaves_the_failed_cloud() -> None:
    b, peers = balancer(), fleet()
    for _ in range(10):
        task = TaskRequest(kind="t", attempt=2, never_reached=True, failed_clouds=("aws",))
        choice = b.choose(task, peers, now=0.0)
        assert isinstance(choice, Choice) and choice.peer.cloud != "aws"
        b.release(choice)
