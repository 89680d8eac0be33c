"""`CatchUp`, the seed's record of the tables it handed to joiners, on its own."""

from __future__ import annotations

from skyfleet.membership.catch_up import CatchUp
from skyfleet.membership.members import MemberView
from skyfleet.membership.messages import MemberState, NodeMeta


def member(name: str, since: float, state: MemberState = MemberState.ALIVE) -> MemberView:
    return MemberView(NodeMeta(name, f"mem://{name}"), state, 0, since)


def named(due: list) -> list[tuple[str, str, list[str]]]:
    return [(name, address, [r.meta.name for r in news]) for name, address, news in due]


def test_each_joiner_gets_what_changed_after_its_table_but_never_itself() -> None:
    catch_up = CatchUp(window=0.2)
    catch_up.answered("b", "mem://b", 1.0)
    catch_up.answered("c", "mem://c", 1.1)
    table = [member("a", 0.0), member("b", 1.0), member("c", 1.1), member("d", 1.2)]
    assert named(catch_up.due(table, 1.25)) == [
        ("b", "mem://b", ["c", "d"]),
        ("c", "mem://c", ["d"]),
    ]
    # Sent: nothing new since.
    assert catch_up.due(table, 1.3) == []


def test_a_failure_after_the_table_is_news_too() -> None:
    catch_up = CatchUp(window=0.2)
    catch_up.answered("b", "mem://b", 1.0)
    table = [member("b", 1.0), member("x", 1.05, MemberState.DEAD)]
    [(_, _, news)] = catch_up.due(table, 1.1)
    assert [(r.meta.name, r.state) for r in news] == [("x", MemberState.DEAD)]


def test_a_joiner_is_kept_for_the_window_then_forgotten() -> None:
    catch_up = CatchUp(window=0.2)
    catch_up.answered("b", "mem://b", 1.0)
    assert catch_up.due([member("b", 1.0)], 1.0) == []  # the round of its own join
    assert catch_up.due([member("b", 1.0)], 1.19) == []
    # Still within the window: a late member of the burst reaches b.
    assert named(catch_up.due([member("b", 1.0), member("e", 1.19)], 1.19)) == [
        ("b", "mem://b", ["e"])
    ]
    table = [member("b", 1.0), member("e", 1.19)]
    # e changed in the very instant of b's last table, maybe just after it: sent again.
    assert named(catch_up.due(table, 1.39)) == [("b", "mem://b", ["e"])]
    assert catch_up.due(table, 1.59) == []  # a window with nothing new: forgotten
    assert catch_up.due([*table, member("f", 1.7)], 1.7) == []


def test_a_zero_window_remembers_nobody() -> None:
    catch_up = CatchUp(window=0.0)
    catch_up.answered("b", "mem://b", 1.0)
    assert catch_up.due([member("c", 1.1)], 1.2) == []
