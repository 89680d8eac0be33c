"""Which membership news wins, as one table of rules.

News about a node (it is alive, suspect or dead, or it left) is weighed against what we
hold of the node: nothing, one of its four states or, when the news is about ourselves,
our own life. Every rule the core applies is a row of `RULES`: the cases it covers (the
kind of news, what is held, how the news' incarnation compares with the one held and,
for an alive, whether it moves the node to another address or metadata) and what
follows. The rows partition the cases (checked when this module loads), so no row means
anything by its place in the table.

In words: a higher incarnation wins; at an equal one dead beats suspect beats alive,
and an alive needs a higher incarnation than held. A leave beats a death (a member we
hold dead may turn out to have left), and left is final but for a newer alive, a new
life of the node: a restarted node's incarnation is seeded from the clock, so stale
news of its old life never beats it (memberlist#311). A suspicion of a member that left
means someone missed the leave: it is repeated. Of ourselves, a claim of a newer life or
an accusation is outbid (refuted), an accusation of an older life answered with our
current alive (the accuser missed the refutation), and nothing counts while we leave.

Two rules sit beside the table. A `signed` row counts only if the claim carries its
node's signature (`claims.py`), checked by the core only once a row says the claim
would take effect, so resends of old news cost no signature check. And the incarnation
rule (`incarnation.py`) drops claims beyond its step or ceiling before they get here.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from skyfleet.membership.messages import Alive, Dead, MemberState, NodeMeta, Suspect


class News(enum.StrEnum):
    """What the news says. The enums of the table are `StrEnum`s for the str's hash,
    which runs in C: every piece of news received is looked up."""

    ALIVE = "alive"
    """A self-claim: the node lives at an incarnation, with an address and metadata."""
    SUSPECT = "suspect"
    DEAD = "dead"
    """An accusation: anyone who could not reach the node may make it."""
    LEAVE = "leave"
    """A death whose source is the node itself: a self-claim."""


class Held(enum.StrEnum):
    UNKNOWN = "unknown"
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"
    SELF = "self"
    """The news is about ourselves: weighed against our own incarnation and metadata."""
    SELF_LEAVING = "self, leaving"


class Order(enum.StrEnum):
    """How the news' incarnation compares with the one held; against nothing held,
    every incarnation is above."""

    BELOW = "below"
    EQUAL = "equal"
    ABOVE = "above"


class Action(enum.StrEnum):
    IGNORE = "ignore"
    ADD = "add"
    """A new member, alive (a JOIN event)."""
    REVIVE = "revive"
    """Suspect, dead or left becomes alive at the news' incarnation (an ALIVE event)."""
    RENEW = "renew"
    """Still alive, at the news' incarnation (no event)."""
    MOVE = "move"
    """Still alive, at the news' incarnation, address and metadata (an UPDATE event)."""
    SUSPECT = "suspect"
    """Alive becomes suspect; its suspicion timer starts (at its maximum)."""
    CONFIRM = "confirm"
    """Already suspect: an independent accuser shortens the timer (Lifeguard)."""
    REPEAT_LEAVE = "repeat leave"
    """Spread the node's leave again, so the accuser ends with LEFT rather than FAILED."""
    FAIL = "fail"
    DEPART = "depart"
    REFUTE = "refute"
    """Raise our incarnation above the news' and spread our alive."""
    ANSWER = "answer"
    """Tell the packet's sender our current alive, once per packet."""


class Case(NamedTuple):
    news: News
    held: Held
    order: Order
    moved: bool
    """The news is an alive at another address or metadata than held."""


@dataclass(frozen=True, slots=True)
class Rule:
    why: str
    news: frozenset[News]
    held: frozenset[Held]
    order: frozenset[Order]
    moved: frozenset[bool]
    action: Action
    signed: bool
    """The rule applies only if the claim carries its node's signature."""

    def cases(self) -> Iterator[Case]:
        for case in itertools.product(self.news, self.held, self.order, self.moved):
            yield Case(*case)


def _rule(
    news: Iterable[News],
    held: Iterable[Held],
    order: Iterable[Order],
    action: Action,
    *,
    why: str,
    signed: bool = False,
    moved: Iterable[bool] = (False, True),
) -> Rule:
    return Rule(
        why, frozenset(news), frozenset(held), frozenset(order), frozenset(moved), action, signed
    )


EVERY_NEWS = frozenset(News)
SELF_CLAIMS = frozenset({News.ALIVE, News.LEAVE})
OTHER_THAN_ALIVE = EVERY_NEWS - {News.ALIVE}
KNOWN = frozenset({Held.ALIVE, Held.SUSPECT, Held.DEAD, Held.LEFT})
UP = frozenset({Held.ALIVE, Held.SUSPECT})
EVERY_ORDER = frozenset(Order)
NOT_BELOW = frozenset({Order.EQUAL, Order.ABOVE})

# fmt: off
RULES: tuple[Rule, ...] = (
    # Another member, nothing held of it.
    _rule({News.ALIVE}, {Held.UNKNOWN}, EVERY_ORDER, Action.ADD, signed=True,
          why="an alive of a node we do not know adds it"),
    _rule(OTHER_THAN_ALIVE, {Held.UNKNOWN}, EVERY_ORDER, Action.IGNORE,
          why="accusations and leaves of a node we do not know are dropped"),
    # Another member, against what we hold of it.
    _rule(EVERY_NEWS, KNOWN, {Order.BELOW}, Action.IGNORE,
          why="news older than what we hold is dropped"),
    _rule({News.ALIVE}, KNOWN, {Order.EQUAL}, Action.IGNORE,
          why="an alive needs a newer incarnation than held"),
    _rule({News.ALIVE}, {Held.SUSPECT, Held.DEAD, Held.LEFT}, {Order.ABOVE}, Action.REVIVE,
          signed=True, why="a newer alive revives a suspect, dead or left member"),
    _rule({News.ALIVE}, {Held.ALIVE}, {Order.ABOVE}, Action.RENEW, signed=True, moved={False},
          why="a newer alive of an alive member renews it"),
    _rule({News.ALIVE}, {Held.ALIVE}, {Order.ABOVE}, Action.MOVE, signed=True, moved={True},
          why="a newer alive at another address or metadata moves an alive member"),
    _rule({News.SUSPECT}, {Held.ALIVE}, NOT_BELOW, Action.SUSPECT,
          why="a suspicion of an alive member makes it suspect"),
    _rule({News.SUSPECT}, {Held.SUSPECT}, NOT_BELOW, Action.CONFIRM,
          why="a suspicion of a suspect confirms it, at its incarnation even from a newer one"),
    _rule({News.SUSPECT}, {Held.DEAD}, NOT_BELOW, Action.IGNORE,
          why="a suspicion of a dead member changes nothing"),
    _rule({News.SUSPECT}, {Held.LEFT}, NOT_BELOW, Action.REPEAT_LEAVE,
          why="a suspicion of a member that left means its accuser missed the leave"),
    _rule({News.DEAD}, UP, NOT_BELOW, Action.FAIL,
          why="a death of an alive or suspect member fails it"),
    _rule({News.DEAD}, {Held.DEAD, Held.LEFT}, NOT_BELOW, Action.IGNORE,
          why="a death of a dead member, or of one that left, changes nothing"),
    _rule({News.LEAVE}, UP | {Held.DEAD}, NOT_BELOW, Action.DEPART, signed=True,
          why="a leave takes a member out, even one held dead (a leave beats a death)"),
    _rule({News.LEAVE}, {Held.LEFT}, NOT_BELOW, Action.IGNORE,
          why="a member that left has nothing more to leave"),
    # Ourselves.
    _rule({News.ALIVE}, {Held.SELF}, {Order.ABOVE}, Action.REFUTE, signed=True,
          why="a claim of a newer life of ours is outbid"),
    _rule({News.ALIVE}, {Held.SELF}, {Order.EQUAL}, Action.REFUTE, signed=True, moved={True},
          why="our incarnation at another address or metadata (an old life's) is outbid"),
    _rule({News.ALIVE}, {Held.SELF}, {Order.EQUAL}, Action.IGNORE, moved={False},
          why="our own alive changes nothing"),
    _rule({News.ALIVE}, {Held.SELF}, {Order.BELOW}, Action.IGNORE,
          why="an alive of an older life of ours changes nothing"),
    _rule({News.SUSPECT, News.DEAD}, {Held.SELF}, NOT_BELOW, Action.REFUTE,
          why="an accusation of our life is refuted"),
    _rule({News.LEAVE}, {Held.SELF}, NOT_BELOW, Action.REFUTE, signed=True,
          why="a leave in our name at our incarnation or above (an old process's) is refuted"),
    _rule({News.SUSPECT, News.DEAD}, {Held.SELF}, {Order.BELOW}, Action.ANSWER,
          why="an accusation of an older life: its sender missed our refutation"),
    _rule({News.LEAVE}, {Held.SELF}, {Order.BELOW}, Action.ANSWER, signed=True,
          why="a leave of an older life of ours: its sender missed our refutation"),
    _rule(EVERY_NEWS, {Held.SELF_LEAVING}, EVERY_ORDER, Action.IGNORE,
          why="while we leave, nothing said of us counts"),
)
# fmt: on


def _index(rules: tuple[Rule, ...]) -> dict[tuple[News, Held, Order, bool], Rule]:
    """Every case to its one rule: looking news up costs a dict access, and a table whose
    rows overlap or leave a case out does not load, nor one asking for the signature of
    news that has none (accusations)."""
    index: dict[tuple[News, Held, Order, bool], Rule] = {}
    for rule in rules:
        if rule.signed and rule.news - SELF_CLAIMS:
            raise ValueError(f"only self-claims are signed: {rule.why!r}")
        for case in rule.cases():
            if case in index:
                raise ValueError(f"{case} is ruled twice: {index[case].why!r}, {rule.why!r}")
            index[case] = rule
    every = itertools.product(News, Held, Order, (False, True))
    missing = [Case(*case) for case in every if Case(*case) not in index]
    if missing:
        raise ValueError(f"no rule for {missing}")
    return index


_BY_CASE = _index(RULES)

HELD = {
    MemberState.ALIVE: Held.ALIVE,
    MemberState.SUSPECT: Held.SUSPECT,
    MemberState.DEAD: Held.DEAD,
    MemberState.LEFT: Held.LEFT,
}


# Module globals for the members `decide` names: reading a member off its enum goes
# through the enum type's attribute hook, which costs more than the rest of a lookup
# (Python 3.11), and every piece of news received is looked up.
_ALIVE, _SUSPECT, _DEAD, _LEAVE = News.ALIVE, News.SUSPECT, News.DEAD, News.LEAVE
_BELOW, _EQUAL, _ABOVE = Order.BELOW, Order.EQUAL, Order.ABOVE


def decide(
    news: Alive | Suspect | Dead, held: Held, incarnation: int | None, meta: NodeMeta | None
) -> Rule:
    """The rule for `news` against what is held of its node: `held`, its `incarnation`
    and `meta` (None when nothing is held). One function, building a plain tuple rather
    than a `Case`, because every piece of news received comes through here."""
    moved = False
    if isinstance(news, Alive):
        kind = _ALIVE
        # Identity first: the simulator's tables share their metadata objects.
        moved = meta is not None and news.meta is not meta and news.meta != meta
    elif isinstance(news, Suspect):
        kind = _SUSPECT
    else:
        kind = _LEAVE if news.source == news.node else _DEAD
    if incarnation is None or news.incarnation > incarnation:
        order = _ABOVE
    else:
        order = _EQUAL if news.incarnation == incarnation else _BELOW
    return _BY_CASE[kind, held, order, moved]


def rule_for(case: Case) -> Rule:
    return _BY_CASE[case]
