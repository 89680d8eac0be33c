"""The incarnation rule as a table, and the one-packet poisoning it closes."""

from __future__ import annotations

import pytest

from skyfleet.membership.incarnation import BOUND, CEILING, MAX_STEP, admissible
from skyfleet.membership.messages import (
    Alive,
    Dead,
    MemberRecord,
    MemberState,
    NodeMeta,
    PushPull,
    Suspect,
)
from tests.membership.test_swim_unit import introduce, make, packet

NOW_MS = 1_796_237_330_392
"""An incarnation as agents pick them: a start time in milliseconds."""


@pytest.mark.parametrize(
    ("held", "claimed", "accepted", "why"),
    [
        (None, NOW_MS, True, "a new member at its clock"),
        (None, 0, True, "a new member at zero"),
        (None, CEILING - 1, True, "just below the ceiling, refutable"),
        (None, CEILING, False, "the ceiling itself"),
        (None, 2**63 - 1, False, "the wire's maximum: no room to refute"),
        (None, -1, False, "negative"),
        (NOW_MS, NOW_MS, True, "the same life"),
        (NOW_MS, NOW_MS - 5, True, "an older life (precedence drops it later)"),
        (NOW_MS, NOW_MS + 1, True, "a refutation"),
        (NOW_MS, NOW_MS + 86_400_000 * 365 * 100, True, "a restart a century later"),
        (NOW_MS, NOW_MS + MAX_STEP, True, "exactly one step"),
        (NOW_MS, NOW_MS + MAX_STEP + 1, False, "more than one step"),
        (CEILING - 1, CEILING - 1, True, "held at the ceiling's edge"),
        (CEILING - 1, CEILING, False, "one past it, even within the step"),
    ],
)
def test_admissible(held, claimed, accepted, why):
    assert admissible(held, claimed) is accepted, why


def test_everything_accepted_leaves_room_to_refute():
    assert CEILING + MAX_STEP == BOUND <= 2**63 - 1
    assert (BOUND - NOW_MS) // MAX_STEP > 250_000


def test_a_forged_alive_at_the_wire_maximum_changes_nothing_and_is_counted():
    """The probe that took a node out for good: another identity gossips "b alive at
    2^63 - 1, at another address". Now the receiver keeps b as it was."""
    a, b, c = make("a"), make("b", incarnation=NOW_MS), make("c")
    introduce(a, b, c)
    before = a.member("b")
    forged = Alive(NodeMeta("b", "mem://elsewhere"), 2**63 - 1)
    a.handle(packet(c, None, forged), 1.0)
    assert a.member("b") == before
    assert a.stats.refused_claims == 1


@pytest.mark.parametrize("claim", [
    lambda held: Suspect("b", held + MAX_STEP + 1, "c"),
    lambda held: Dead("b", held + MAX_STEP + 1, "c"),
    lambda held: Dead("b", CEILING, "b"),  # a forged leave at the ceiling
])
def test_suspicion_or_death_beyond_the_step_is_dropped(claim):
    a, b, c = make("a"), make("b", incarnation=NOW_MS), make("c")
    introduce(a, b, c)
    a.handle(packet(c, None, claim(NOW_MS)), 1.0)
    assert a.member("b").state == MemberState.ALIVE
    assert a.stats.refused_claims == 1


def test_a_node_is_not_talked_up_past_a_life_it_never_had():
    """An accusation far above its own incarnation is not refuted (which would raise the
    node to the attacker's number); one within the step is, as SWIM needs."""
    b, c = make("b", incarnation=NOW_MS), make("c")
    introduce(b, c)
    b.handle(packet(c, None, Suspect("b", NOW_MS + MAX_STEP + 1, "c")), 1.0)
    assert b.incarnation == NOW_MS and b.stats.refutations == 0
    b.handle(packet(c, None, Suspect("b", NOW_MS + 10, "c")), 2.0)
    assert b.incarnation == NOW_MS + 11 and b.stats.refutations == 1


def test_a_push_pull_row_beyond_the_step_is_dropped_too():
    a, b, c = make("a"), make("b", incarnation=NOW_MS), make("c")
    introduce(a, b, c)
    before = a.member("b")
    rows = (MemberRecord(NodeMeta("b", "mem://elsewhere"), MemberState.ALIVE, 2**62),)
    a.handle(packet(c, PushPull(rows, is_reply=True)), 1.0)
    assert a.member("b") == before and a.stats.refused_claims == 1
