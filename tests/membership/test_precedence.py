"""The precedence table (`precedence.py`), one case per row, looked up and then lived.

Each scenario puts a core in the situation of a row (what it holds of node x, or its
own life), hands it news in a packet from m, and names the row's action; the test reads
what the core did from the outside (its table, events, incarnation, queued news and the
packets it sent) and names the action that shows, without asking the table. So a row
that says something the core does not do, or a core that does what no row says, fails.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.claims import alive_claim, leave_claim
from skyfleet.membership.members import EventKind
from skyfleet.membership.messages import (
    Alive,
    Dead,
    MemberState,
    NodeMeta,
    Outgoing,
    Packet,
    Suspect,
    Update,
)
from skyfleet.membership.precedence import (
    RULES,
    Action,
    Case,
    Held,
    News,
    Order,
    _index,
    _rule,
    decide,
    rule_for,
)
from skyfleet.membership.swim import Swim
from skyfleet.membership.timers import SuspicionTimer
from skyfleet.sim.claim_keys import SimClaimKeys, SimKeyRegistry

KEYS = SimKeyRegistry(11)
HELD_AT = 5
"""The incarnation the receiver holds for x (and lives at itself)."""
NEWS_AT = {Order.BELOW: HELD_AT - 1, Order.EQUAL: HELD_AT, Order.ABOVE: HELD_AT + 1}
NOW = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    held: Held
    news: News
    order: Order
    action: Action
    moved: bool = False

    @property
    def case(self) -> Case:
        return Case(self.news, self.held, self.order, self.moved)

    def __str__(self) -> str:
        moved = ", moved" if self.moved else ""
        return f"{self.news} vs {self.held}, {self.order}{moved} -> {self.action}"


SCENARIOS = (
    Scenario(Held.UNKNOWN, News.ALIVE, Order.ABOVE, Action.ADD),
    Scenario(Held.UNKNOWN, News.SUSPECT, Order.ABOVE, Action.IGNORE),
    Scenario(Held.ALIVE, News.DEAD, Order.BELOW, Action.IGNORE),
    Scenario(Held.DEAD, News.ALIVE, Order.EQUAL, Action.IGNORE),
    Scenario(Held.LEFT, News.ALIVE, Order.ABOVE, Action.REVIVE),
    Scenario(Held.ALIVE, News.ALIVE, Order.ABOVE, Action.RENEW),
    Scenario(Held.ALIVE, News.ALIVE, Order.ABOVE, Action.MOVE, moved=True),
    Scenario(Held.ALIVE, News.SUSPECT, Order.EQUAL, Action.SUSPECT),
    Scenario(Held.SUSPECT, News.SUSPECT, Order.ABOVE, Action.CONFIRM),
    Scenario(Held.DEAD, News.SUSPECT, Order.ABOVE, Action.IGNORE),
    Scenario(Held.LEFT, News.SUSPECT, Order.EQUAL, Action.REPEAT_LEAVE),
    Scenario(Held.SUSPECT, News.DEAD, Order.EQUAL, Action.FAIL),
    Scenario(Held.LEFT, News.DEAD, Order.ABOVE, Action.IGNORE),
    Scenario(Held.DEAD, News.LEAVE, Order.EQUAL, Action.DEPART),
    Scenario(Held.LEFT, News.LEAVE, Order.ABOVE, Action.IGNORE),
    Scenario(Held.SELF, News.ALIVE, Order.ABOVE, Action.REFUTE),
    Scenario(Held.SELF, News.ALIVE, Order.EQUAL, Action.REFUTE, moved=True),
    Scenario(Held.SELF, News.ALIVE, Order.EQUAL, Action.IGNORE),
    Scenario(Held.SELF, News.ALIVE, Order.BELOW, Action.IGNORE, moved=True),
    Scenario(Held.SELF, News.DEAD, Order.EQUAL, Action.REFUTE),
    Scenario(Held.SELF, News.LEAVE, Order.ABOVE, Action.REFUTE),
    Scenario(Held.SELF, News.SUSPECT, Order.BELOW, Action.ANSWER),
    Scenario(Held.SELF, News.LEAVE, Order.BELOW, Action.ANSWER),
    Scenario(Held.SELF_LEAVING, News.SUSPECT, Order.ABOVE, Action.IGNORE),
)


# ---------------------------------------------------------------------- the table


def test_every_row_has_exactly_one_scenario() -> None:
    rows = [rule_for(s.case) for s in SCENARIOS]
    assert sorted(RULES.index(r) for r in rows) == list(range(len(RULES)))


def test_the_rows_partition_every_case() -> None:
    covered = [case for rule in RULES for case in rule.cases()]
    assert len(covered) == len(set(covered)) == len(News) * len(Held) * len(Order) * 2


def test_a_table_with_overlapping_or_missing_rows_does_not_load() -> None:
    every = frozenset(News), frozenset(Held), frozenset(Order)
    with pytest.raises(ValueError, match="ruled twice"):
        _index(RULES + (_rule(*every, Action.IGNORE, why="again"),))
    with pytest.raises(ValueError, match="no rule"):
        _index(RULES[1:])
    with pytest.raises(ValueError, match="only self-claims"):
        _index((_rule(*every, Action.IGNORE, signed=True, why="signed"),))


def test_only_self_claims_that_take_effect_need_a_signature() -> None:
    signed = {s.action for s in SCENARIOS if rule_for(s.case).signed}
    takes_effect = {Action.ADD, Action.REVIVE, Action.RENEW, Action.MOVE, Action.DEPART}
    assert signed == takes_effect | {Action.REFUTE, Action.ANSWER}
    assert not rule_for(Case(News.DEAD, Held.SELF, Order.EQUAL, False)).signed


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_decide_classifies_the_news(scenario: Scenario) -> None:
    """`decide` reads the case off the news and what is held, as the core calls it."""
    core, x = receiver(scenario.held)
    held = core.member(x)
    news = news_for(scenario, x)
    if scenario.held in (Held.SELF, Held.SELF_LEAVING):
        rule = decide(news, scenario.held, core.incarnation, core.meta)
    elif held is None:
        rule = decide(news, scenario.held, None, None)
    else:
        rule = decide(news, scenario.held, held.incarnation, held.meta)
    assert rule == rule_for(scenario.case)
    assert rule.action is scenario.action


# ---------------------------------------------------------------------- the core


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_the_core_does_what_the_row_says(scenario: Scenario) -> None:
    core, x = receiver(scenario.held)
    before = Observed.of(core, x, [])
    out = send(core, news_for(scenario, x))
    assert Observed.of(core, x, out).action_since(before) is scenario.action


SIGNED = [s for s in SCENARIOS if rule_for(s.case).signed]


@pytest.mark.parametrize("scenario", SIGNED, ids=str)
def test_a_signed_row_ignores_a_forgery(scenario: Scenario) -> None:
    core, x = receiver(scenario.held)
    before = Observed.of(core, x, [])
    forged = news_for(scenario, x, signer="m")
    out = send(core, forged)
    assert Observed.of(core, x, out).action_since(before) is Action.IGNORE
    assert core.stats.forged_claims == 1


# ---------------------------------------------------------------------- helpers


def receiver(held: Held) -> tuple[Swim, str]:
    """Core "a" holding `held` of the node the news will be about (x, or a itself) at
    `HELD_AT`, among enough members (m, w) for a suspicion to be confirmable."""
    names = ("a", "x", "m", "w")
    keys = SimClaimKeys("a", KEYS, frozenset(names))
    meta, config = NodeMeta("a", "mem://a"), MembershipConfig()
    core = Swim(meta, config, random.Random(3), keys=keys, incarnation=HELD_AT)
    send(core, alive("m", 1), alive("w", 1))
    if held in (Held.SELF, Held.SELF_LEAVING):
        if held is Held.SELF_LEAVING:
            core.leave(NOW)
        drained(core)
        return core, "a"
    if held is not Held.UNKNOWN:
        send(core, alive("x", HELD_AT))
    follow = {
        Held.SUSPECT: Suspect("x", HELD_AT, "m"),
        Held.DEAD: Dead("x", HELD_AT, "m"),
        Held.LEFT: leave("x", HELD_AT),
    }
    if held in follow:
        send(core, follow[held])
    drained(core)
    return core, "x"


def news_for(scenario: Scenario, node: str, *, signer: str = "") -> Update:
    at = NEWS_AT[scenario.order]
    if scenario.news is News.ALIVE:
        return alive(node, at, signer=signer, moved=scenario.moved)
    if scenario.news is News.LEAVE:
        return leave(node, at, signer=signer)
    # A suspicion from w, not m: m's is the one a suspect is held on, not a confirmation.
    return Suspect(node, at, "w") if scenario.news is News.SUSPECT else Dead(node, at, "w")


def alive(name: str, incarnation: int, *, signer: str = "", moved: bool = False) -> Alive:
    meta = NodeMeta(name, f"mem://{name}{'-moved' if moved else ''}")
    return Alive(meta, incarnation, KEYS.sign(signer or name, alive_claim(meta, incarnation)))


def leave(name: str, incarnation: int, *, signer: str = "") -> Dead:
    signature = KEYS.sign(signer or name, leave_claim(name, incarnation))
    return Dead(name, incarnation, name, signature)


def send(core: Swim, *news: Update) -> list[Outgoing]:
    return core.handle(Packet("m", "mem://m", None, news), NOW)


def drained(core: Swim) -> list[Update]:
    """The news the core queued since the last call, then dropped: an item taken once
    stays queued for its remaining resends."""
    queue = core._gossip._broadcasts
    news = queue.take(1 << 20, 1)
    while queue:
        queue.take(1 << 20, 1)
    return news


@dataclass(frozen=True, slots=True)
class Observed:
    """What a core shows of its handling of one piece of news about `x`."""

    state: MemberState | None
    incarnation: int | None
    address: str | None
    own_incarnation: int
    events: tuple[EventKind, ...]
    queued: tuple[Update, ...]
    answered: bool
    """A packet went back to m carrying our alive."""

    @classmethod
    def of(cls, core: Swim, x: str, out: list[Outgoing]) -> Observed:
        member = core.member(x)
        events = tuple(e.kind for e in core.take_events() if e.kind is not EventKind.FORGED)
        answered = any(
            o.address == "mem://m"
            and any(isinstance(u, Alive) and u.meta.name == "a" for u in o.packet.piggyback)
            for o in out
        )
        return cls(
            member.state if member else None,
            member.incarnation if member else None,
            member.meta.address if member else None,
            core.incarnation,
            events,
            tuple(drained(core)),
            answered,
        )

    def action_since(self, before: Observed) -> Action:
        """The action these observations show, read without the table."""
        kinds = {
            EventKind.JOIN: Action.ADD,
            EventKind.ALIVE: Action.REVIVE,
            EventKind.UPDATE: Action.MOVE,
            EventKind.SUSPECT: Action.SUSPECT,
            EventKind.FAILED: Action.FAIL,
            EventKind.LEFT: Action.DEPART,
        }
        if self.own_incarnation > before.own_incarnation:
            assert self.events == (EventKind.REFUTED,)
            return Action.REFUTE
        if self.answered:
            return Action.ANSWER
        if self.events:
            (kind,) = self.events
            return kinds[kind]
        if self.incarnation != before.incarnation:
            assert (self.state, self.address) == (MemberState.ALIVE, before.address)
            return Action.RENEW
        if self.queued:
            (update,) = self.queued
            if isinstance(update, Suspect):
                assert self.state is MemberState.SUSPECT
                return Action.CONFIRM
            assert isinstance(update, Dead) and update.source == update.node
            return Action.REPEAT_LEAVE
        assert replace(self, events=()) == replace(before, events=())
        return Action.IGNORE


def test_a_confirmation_moves_the_suspicion_deadline() -> None:
    """What CONFIRM is for, beyond the re-gossiped suspicion its scenario sees."""
    core, _ = receiver(Held.SUSPECT)
    timer = SuspicionTimer("x")
    before = core._timers.deadline(timer)
    send(core, Suspect("x", HELD_AT, "w"))
    after = core._timers.deadline(timer)
    assert before is not None and after is not None and after < before
