"""Named one-shot timers over virtual time."""

from __future__ import annotations

from skyfleet.membership.timers import Timers


def drain(timers: Timers, now: float) -> list[object]:
    fired = []
    while (name := timers.pop_due(now)) is not None:
        fired.append(name)
    return fired


def test_empty() -> None:
    timers = Timers()
    assert timers.next_deadline() is None
    assert timers.pop_due(1e9) is None


def test_fire_in_deadline_order_then_in_arming_order() -> None:
    timers = Timers()
    timers.set("c", 3.0)
    timers.set("a", 1.0)
    timers.set("b2", 2.0)
    timers.set("b1", 2.0)
    assert timers.next_deadline() == 1.0
    assert drain(timers, 2.5) == ["a", "b2", "b1"]
    assert drain(timers, 10.0) == ["c"]
    assert timers.next_deadline() is None


def test_nothing_fires_before_its_deadline() -> None:
    timers = Timers()
    timers.set("a", 5.0)
    assert timers.pop_due(4.999) is None
    assert "a" in timers
    assert timers.pop_due(5.0) == "a"
    assert "a" not in timers


def test_rearming_replaces_the_deadline() -> None:
    timers = Timers()
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
    timers = Timers()
    timers.set("a", 1.0)
    timers.set(("suspicion", "n1"), 2.0)
    timers.cancel("a")
    timers.cancel("never-set")  # cancelling an unknown timer is harmless
    assert "a" not in timers
    assert timers.deadline("a") is None
    assert timers.next_deadline() == 2.0
    assert drain(timers, 10.0) == [("suspicion", "n1")]


def test_a_cancelled_then_rearmed_timer_fires_once_at_its_new_deadline() -> None:
    timers = Timers()
    timers.set("a", 1.0)
    timers.cancel("a")
    timers.set("a", 3.0)
    assert drain(timers, 2.0) == []
    assert drain(timers, 3.0) == ["a"]
    assert drain(timers, 10.0) == []
