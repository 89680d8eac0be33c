"""The piggyback queue: least-transmitted first, newest first among the untransmitted,
newer news about a key replaces older, items leave after `limit` sends, packets stay within
their byte budget."""

from __future__ import annotations

from skyfleet.membership.broadcast import BroadcastQueue

BIG = 10_000


def make_queue(*items: tuple[str, str]) -> BroadcastQueue[str]:
    queue: BroadcastQueue[str] = BroadcastQueue(len)
    for key, value in items:
        queue.queue(key, value)
    return queue


def test_empty_queue_gives_nothing() -> None:
    queue = make_queue()
    assert len(queue) == 0
    assert not queue
    assert queue.take(BIG, 5) == []


def test_newest_first_among_untransmitted() -> None:
    queue = make_queue(("a", "A"), ("b", "B"), ("c", "C"))
    assert queue.take(BIG, 5) == ["C", "B", "A"]


def test_least_transmitted_first() -> None:
    queue = make_queue(("a", "A"), ("b", "B"))
    assert queue.take(1, 5) == ["B"]  # b sent once
    assert queue.take(1, 5) == ["A"]  # a (0 sends) goes before b (1 send)
    queue.queue("c", "C")
    assert queue.take(1, 5) == ["C"]  # a fresh item beats both


def test_newest_first_within_a_count_after_transmissions() -> None:
    queue = make_queue(("a", "A"), ("b", "B"), ("c", "C"))
    assert queue.take(BIG, 5) == ["C", "B", "A"]
    assert queue.take(BIG, 5) == ["C", "B", "A"]


def test_replacement_by_key_keeps_one_item_and_resets_its_count() -> None:
    queue = make_queue(("x", "old"), ("y", "Y"))
    assert queue.take(BIG, 5) == ["Y", "old"]
    queue.queue("x", "new")
    assert len(queue) == 2
    # "new" was never sent: it goes alone in a one-item packet before y's second send.
    assert queue.take(3, 5) == ["new"]
    assert "old" not in queue.take(BIG, 5)


def test_replacement_of_an_untransmitted_item() -> None:
    queue = make_queue(("x", "old"), ("x", "new"))
    assert len(queue) == 1
    assert queue.take(BIG, 5) == ["new"]


def test_items_are_dropped_at_the_transmit_limit() -> None:
    queue = make_queue(("a", "A"))
    sends = 0
    while queue.take(BIG, 3):
        sends += 1
        assert sends <= 3
    assert sends == 3
    assert len(queue) == 0


def test_limit_is_applied_at_take_time() -> None:
    # The limit follows the cluster size at send time (it grows as nodes join).
    queue = make_queue(("a", "A"))
    assert queue.take(BIG, 8) == ["A"]
    assert queue.take(BIG, 2) == ["A"]  # second send reaches the (new) limit of 2
    assert len(queue) == 0


def test_budget_is_respected_and_a_too_large_item_does_not_block_smaller_ones() -> None:
    queue = make_queue(("small", "ss"), ("huge", "h" * 50), ("mid", "mmmm"))
    taken = queue.take(7, 5)
    assert taken == ["mmmm", "ss"]
    assert sum(map(len, taken)) <= 7
    # The huge item waits for a larger budget.
    assert sorted(queue.take(7, 5)) == ["mmmm", "ss"]
    assert queue.take(50, 5) == ["h" * 50]


def test_zero_budget_takes_nothing_and_counts_nothing() -> None:
    queue = make_queue(("a", "A"))
    assert queue.take(0, 1) == []
    assert queue.take(BIG, 1) == ["A"]


def test_extra_transmissions_come_on_top_of_the_limit_and_go_first() -> None:
    queue: BroadcastQueue[str] = BroadcastQueue(len)
    queue.queue("old", "old")
    queue.take(budget=100, limit=5)  # "old" has been sent once
    queue.queue("fresh", "fresh", extra=2)
    assert queue.take(budget=5, limit=1) == ["fresh"]  # room for one: the fresh one
    sends = 1 + sum(queue.take(budget=5, limit=1).count("fresh") for _ in range(5))
    assert sends == 3  # the limit of 1, plus 2 extra


def test_a_share_of_the_limit_but_at_least_the_floor() -> None:
    # (limit, share, least) -> times sent before the item leaves the queue.
    for limit, share, least, sent in [
        (4, 0.25, 1, 1),
        (4, 0.25, 3, 3),  # a small fleet: the floor rules
        (16, 0.25, 3, 4),  # a large one: the share does
        (4, 1.0, 3, 4),
    ]:
        queue: BroadcastQueue[str] = BroadcastQueue(len)
        queue.queue("s", "S", share=share, least=least)
        times = 0
        while queue.take(BIG, limit):
            times += 1
        assert times == sent, (limit, share, least)


def test_news_larger_than_a_packet_goes_alone_instead_of_never() -> None:
    queue: BroadcastQueue[str] = BroadcastQueue(len, packet_size=10)
    queue.queue("big", "B" * 50)
    queue.queue("a", "a")
    assert queue.take(10, 3) == ["a"]  # the small one first: the big one cannot join it
    assert queue.take(4, 3) == ["a"]  # a packet's leftover budget: the big one waits
    packets = [queue.take(10, 3) for _ in range(5)]
    assert ["B" * 50] in packets  # a whole packet: it goes, alone, its share of times
    assert all(p == ["B" * 50] for p in packets if "B" * 50 in p)
    assert sum(p.count("B" * 50) for p in packets) == 3 and len(queue) == 0
