"""The member table: one record per known node, and the views the core hands out."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from skyfleet.membership.messages import UP_STATES, MemberRecord, MemberState, NodeMeta


@dataclass(frozen=True, slots=True)
class MemberView:
    """One node as seen from here. Immutable: a change replaces the entry, so tables may
    share entries (the simulator starts 10,000 nodes from one converged table)."""

    meta: NodeMeta
    state: MemberState
    incarnation: int
    state_since: float
    """Time of the last state change, for reaping and for `state_age`."""
    signature: bytes = b""
    """The node's signature on its latest self-claim held: alive at (meta, incarnation)
    while alive or suspect, its leave once LEFT; relayed with the record."""

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def is_up(self) -> bool:
        """Alive or suspect: still probed and still a valid gossip target."""
        return self.state in UP_STATES

    def record(self, *, signed: bool = True) -> MemberRecord:
        """Our row for a table; `signed` adds the node's signature where its state is a
        self-claim (alive, left)."""
        signed = signed and self.state in (MemberState.ALIVE, MemberState.LEFT)
        return MemberRecord(
            self.meta, self.state, self.incarnation, self.signature if signed else b""
        )


class EventKind(enum.Enum):
    JOIN = "join"
    UPDATE = "update"
    SUSPECT = "suspect"
    ALIVE = "alive"
    FAILED = "failed"
    LEFT = "left"
    REAPED = "reaped"
    REFUTED = "refuted"
    REVOKED = "revoked"
    """Dropped because its certificate was revoked by the policy in force."""
    FORGED = "forged"
    """A self-claim (alive, leave) not signed by its node; `source` names the sender."""


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """Something observers (logs, metrics, the balancer) should know happened."""

    kind: EventKind
    node: str
    incarnation: int
    at: float
    source: str = ""


class MemberTable:
    """Every node we know, ourselves included. Changes go through `add`, `put` and
    `remove` so that what every send and every gossip round ask of the table stays a
    field rather than a scan: how many members are up (the N of the formulas), and the
    other members' names to sample targets from."""

    def __init__(self, me: MemberView) -> None:
        self._members: dict[str, MemberView] = {me.name: me}
        self.members: Mapping[str, MemberView] = self._members
        """By name, to read: the dict itself rather than wrappers around it, since every
        piece of news looks a member up."""
        self.names: list[str] = []
        """Other members' names, for sampling without a scan."""
        self.up = 1 if me.is_up else 0
        """Alive or suspect members, self included."""

    def add(self, member: MemberView) -> None:
        """A node not in the table yet."""
        name = member.meta.name
        self._members[name] = member
        self.names.append(name)
        self.up += member.is_up

    def adopt(self, members: Iterable[MemberView]) -> None:
        """`add` each of `members` not in the table yet, in one loop: the simulator starts
        10,000 nodes this way, each adopting the other 9,999."""
        held, names = self._members, self.names
        for m in members:
            name = m.meta.name
            if name not in held:
                held[name] = m
                names.append(name)
                self.up += m.is_up

    def put(self, member: MemberView) -> None:
        """A new view of a node already in the table."""
        name = member.meta.name
        old = self._members[name]
        self._members[name] = member
        self.up += member.is_up - old.is_up

    def remove(self, name: str) -> MemberView:
        member = self._members.pop(name)
        self.names.remove(name)
        self.up -= member.is_up
        return member
