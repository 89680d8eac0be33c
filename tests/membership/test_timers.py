"""One-shot timers over virtual time, and the core's typed keys for them."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import TypeVar

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.messages import NodeMeta
from skyfleet.membership.swim import Swim
from skyfleet.membership.timers import RelayTimer, SuspicionTimer, Timer, TimerKey, Timers
from skyfleet.sim.claim_keys import SimClaimKeys, SimKeyRegistry

K = TypeVar("K", bound=Hashable)


def drain(timers: Timers[K], now: float) -> list[K]:
    fired = []
    while (name := timers.pop_due(now)) is not None:
        fired.append(name)
    return fired


def test_empty() -> None:
    timers: Timers[Hashable] = Timers()
    assert timers.next_deadline() is None
    assert timers.pop_due(1e9) is None


def test_fire_in_deadline_order_then_in_arming_order() -> None:
    timers: Timers[Hashable] = Timers()
    timers.set("c", 3.0)
    timers.set("a", 1.0)
    timers.set("b2", 2.0)
    timers.set("b1", 2.0)
    assert timers.next_deadline() == 1.0
    assert drain(timers, 2.5) == ["a", "b2", "b1"]
    assert drain(timers, 10.0) == ["c"]
    assert timers.next_deadline() is None


def test_nothing_fires_before_its_deadline() -> None:
    timers: Timers[Hashable] = Timers()
    timers.set("a", 5.0)
    assert timers.pop_due(4.999) is None
    assert "a" in timers
    assert timers.pop_due(5.0) == "a"
    assert "a" not in timers


def test_rearming_replaces_the_deadline() -> None:
    timers: Timers[Hashable] = Timers()
    timers.set("probe", 1.0)
    timers.set("probe", 4.0)
    assert timers.deadline("probe") == 4.0
    assert timers.next_deadline() == 4.0
    assert drain(timers, 3.0) == []
    assert drain(timers, 4.0) == ["probe"]
    # Moving a deadline earlier works too, and the stale later entry never fires.
    timers.set("x", 9.0)
    timers.set("x", 2.0)
    assert drain(timers, 100.0) == ["x"]


def test_cancel() -> None:
    timers: Timers[Hashable] = Timers()
    timers.set("a", 1.0)
    timers.set(("suspicion", "n1"), 2.0)
    timers.cancel("a")
    timers.cancel("never-set")  # cancelling an unknown timer is harmless
    assert "a" not in timers
    assert timers.deadline("a") is None
    assert timers.next_deadline() == 2.0
    assert drain(timers, 10.0) == [("suspicion", "n1")]


def test_a_cancelled_then_rearmed_timer_fires_once_at_its_new_deadline() -> None:
    timers: Timers[Hashable] = Timers()
    timers.set("a", 1.0)
    timers.cancel("a")
    timers.set("a", 3.0)
    assert drain(timers, 2.0) == []
    assert drain(timers, 3.0) == ["a"]
    assert drain(timers, 10.0) == []


def test_typed_keys_tell_kinds_and_subjects_apart() -> None:
    timers: Timers[TimerKey] = Timers()
    timers.set(Timer.PROBE, 1.0)
    timers.set(SuspicionTimer("n1"), 2.0)
    timers.set(RelayTimer(1), 3.0)
    assert SuspicionTimer("n1") in timers
    assert SuspicionTimer("n2") not in timers
    assert Timer.PROBE_END not in timers
    timers.set(SuspicionTimer("n1"), 0.5)  # re-arming the same key replaces it
    assert drain(timers, 10.0) == [SuspicionTimer("n1"), Timer.PROBE, RelayTimer(1)]


def test_the_core_handles_every_kind_of_timer() -> None:
    keys = SimClaimKeys("a", SimKeyRegistry(1))
    swim = Swim(NodeMeta("a", "mem://a"), MembershipConfig(), random.Random(0), keys=keys)
    assert set(swim._on_timer) == set(Timer)
