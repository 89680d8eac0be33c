"""When a node re-advertises its status (table test of the pure rule)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skyfleet.membership.broadcast import BroadcastQueue
from skyfleet.membership.messages import StatusReport
from skyfleet.status.publication import worth_publishing

BASE = StatusReport(
    policy_version=3, policy_hash="a" * 64, inflight=2, queued=1, capacity=4, latency_ms=40.0
)


@pytest.mark.parametrize(
    ("new", "age", "expected"),
    [
        (BASE, 1.0, False),  # nothing changed
        (BASE, 30.0, True),  # refresh due
        (replace(BASE, policy_version=4, policy_hash="b" * 64), 1.0, True),
        (replace(BASE, capacity=8), 1.0, True),
        (replace(BASE, inflight=3), 1.0, True),
        (replace(BASE, inflight=3, queued=0), 1.0, False),  # same load, reshuffled
        (replace(BASE, latency_ms=47.0), 1.0, False),  # within 20 %
        (replace(BASE, latency_ms=49.0), 1.0, True),
        (replace(BASE, error_rate=0.04), 1.0, False),
        (replace(BASE, error_rate=0.06), 1.0, True),
    ],
)
def test_worth_publishing(new: StatusReport, age: float, expected: bool) -> None:
    assert worth_publishing(BASE, new, last_at=100.0, now=100.0 + age, refresh=30.0) is expected


def test_first_status_is_always_published() -> None:
    assert worth_publishing(None, BASE, last_at=0.0, now=0.0, refresh=30.0)


def test_broadcast_share_sends_fewer_copies_but_at_least_one() -> None:
    queue: BroadcastQueue[str] = BroadcastQueue(len)
    queue.queue("member", "alive")
    queue.queue("status", "load", share=0.25)
    sends = {"alive": 0, "load": 0}
    for _ in range(10):
        for item in queue.take(budget=1000, limit=8):
            sends[item] += 1
    assert sends == {"alive": 8, "load": 2}
    queue.queue("status", "tiny", share=0.01)
    assert queue.take(1000, 8) == ["tiny"] and queue.take(1000, 8) == []
