"""Which peer an agent pulls a newer policy from (pure, seeded)."""

from __future__ import annotations

import random

from skyfleet.policy.adoption import Outcome
from skyfleet.policy.sync import Advert, PolicySync

H2, H3, HX = "2" * 64, "3" * 64, "f" * 64


def sync() -> PolicySync:
    return PolicySync(random.Random(7), retry_after=5.0, fetch_timeout=2.0)


def test_pulls_the_highest_advertised_version_only_when_newer() -> None:
    s = sync()
    adverts = [Advert(2, H2, "a"), Advert(3, H3, "b"), Advert(1, "1" * 64, "c")]
    plan = s.next_fetch(2, adverts, now=0.0)
    assert plan is not None and (plan.node, plan.version) == ("b", 3)
    assert sync().next_fetch(3, adverts, now=0.0) is None


def test_one_fetch_at_a_time_until_done_or_timed_out() -> None:
    s = sync()
    adverts = [Advert(3, H3, "a"), Advert(3, H3, "b")]
    first = s.next_fetch(0, adverts, now=0.0)
    assert first is not None
    assert s.next_fetch(0, adverts, now=1.0) is None  # in flight
    assert s.next_fetch(0, adverts, now=2.5) is not None  # timed out: try again


def test_spreads_pulls_over_the_peers_that_have_it() -> None:
    s = sync()
    adverts = [Advert(3, H3, n) for n in "abcd"]
    chosen = set()
    for i in range(40):
        plan = s.next_fetch(0, adverts, now=float(i * 10))
        assert plan is not None
        chosen.add(plan.node)
        s.fetch_failed(plan, now=float(i * 10))
    assert chosen == set("abcd")


def test_failed_peer_is_skipped_for_a_while() -> None:
    s = sync()
    adverts = [Advert(3, H3, "a"), Advert(3, H3, "b")]
    plan = s.next_fetch(0, adverts, now=0.0)
    assert plan is not None
    s.fetch_failed(plan, now=0.0)
    other = s.next_fetch(0, adverts, now=0.1)
    assert other is not None and other.node != plan.node
    s.fetch_failed(other, now=0.1)
    assert s.next_fetch(0, adverts, now=1.0) is None  # both resting
    assert s.next_fetch(0, adverts, now=5.2) is not None


def test_rejected_advert_is_never_pulled_again() -> None:
    s = sync()
    forged = [Advert(9, HX, "evil")]
    plan = s.next_fetch(2, forged, now=0.0)
    assert plan is not None
    s.fetched(plan, Outcome.INVALID, now=0.0)
    assert s.next_fetch(2, forged, now=100.0) is None
    # ...but a genuine newer version from anyone still is.
    good = s.next_fetch(2, [*forged, Advert(3, H3, "b")], now=100.0)
    assert good is not None and good.node == "b"


def test_adopted_fetch_clears_the_way() -> None:
    s = sync()
    plan = s.next_fetch(0, [Advert(3, H3, "a")], now=0.0)
    assert plan is not None
    s.fetched(plan, Outcome.ADOPTED, now=0.1)
    assert s.next_fetch(3, [Advert(3, H3, "a")], now=0.2) is None
    assert s.next_fetch(3, [Advert(4, H2, "a")], now=0.2) is not None
