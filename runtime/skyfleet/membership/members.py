"""The member table: one record per known node, and the views the core hands out."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from skyfleet.membership.messages import MemberRecord, MemberState, NodeMeta


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
        return self.state in (MemberState.ALIVE, MemberState.SUSPECT)

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
