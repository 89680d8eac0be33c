"""When a node re-advertises its status (table test of the pure rule)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skyfleet.membership.broadcast import BroadcastQueue
from skyfleet.membership.members import EventKind
from skyfleet.membership.messages import StatusReport
from skyfleet.status.publication import StatusAdvertiser, worth_publishing

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
        (replace(BASE, handlers=("echo", "gpu")), 1.0, True),  # routers must know at once
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


def test_the_advertiser_ticks_only_on_news_or_the_refresh() -> None:
    adv = StatusAdvertiser(refresh=30.0)
    assert adv.tick(BASE, 0.0)  # nothing said yet
    assert not adv.tick(BASE, 1.0)
    assert adv.tick(replace(BASE, inflight=BASE.inflight + 1), 2.0)
    assert not adv.tick(replace(BASE, inflight=BASE.inflight + 1), 31.0)
    assert adv.tick(replace(BASE, inflight=BASE.inflight + 1), 32.0)  # 30 s since the last


@pytest.mark.parametrize(("kind", "forces"), [(k, k in (EventKind.JOIN, EventKind.ALIVE))
                                              for k in EventKind])
def test_a_member_that_joins_forces_one_tick(kind: EventKind, forces: bool) -> None:
    adv = StatusAdvertiser(refresh=30.0)
    adv.published(BASE, 0.0)
    adv.on_member_event(kind)
    adv.on_member_event(kind)  # a burst: still one status
    assert adv.tick(BASE, 1.0) is forces
    assert not adv.tick(BASE, 2.0)


def test_a_publication_out_of_turn_counts_as_said() -> None:
    adv = StatusAdvertiser(refresh=30.0)
    adv.on_member_event(EventKind.JOIN)
    adv.published(BASE, 5.0)
    assert not adv.tick(BASE, 6.0)
