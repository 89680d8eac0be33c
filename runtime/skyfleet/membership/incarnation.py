"""Which incarnation claims a member accepts: every victim keeps room to refute.

A node's incarnation is its start time in milliseconds (about 2^41 today) plus one per
refutation, and a refutation answers an accusation at incarnation i with i + 1. Before
this rule any member could gossip "a1 alive at 2^63 - 1" (the wire's maximum): a1's
refutation, 2^63, was past what anyone accepts, so the forged life stood until every
agent restarted. Two limits close that:

- nothing at or above `CEILING` is accepted, which is `MAX_STEP` below `BOUND`, so a
  refutation of anything accepted stays below the bound;
- a claim may raise the incarnation a receiver holds for a node by at most `MAX_STEP`.
  A restart raises it by the node's downtime in milliseconds, so the step is set far above
  any downtime (2^44 ms is 557 years) and far below the room between today's incarnations
  and the ceiling (2^62 - 2^44 - 2^41: over 250,000 maximal steps).

A node also refuses to be talked up: an accusation about itself above its own incarnation
plus the step is not a life it ever had, so it is dropped rather than refuted. Claims
about members a receiver does not know yet are held to the ceiling only (a joiner's
incarnation is whatever its clock says). What only a node may say about itself (alive,
leaving) is for signatures to settle; this rule bounds what the numbers can do meanwhile.
"""

from __future__ import annotations

BOUND = 2**62
"""No incarnation reaches this."""
MAX_STEP = 2**44
"""The most one claim may raise the incarnation a receiver holds for a node."""
CEILING = BOUND - MAX_STEP
"""No claim at or above it is accepted: what is accepted can always be refuted."""


def admissible(held: int | None, claimed: int) -> bool:
    """Whether a claim of `claimed` about a node is accepted by a receiver holding `held`
    for it (None: the receiver does not know the node)."""
    if not 0 <= claimed < CEILING:
        return False
    return held is None or claimed <= held + MAX_STEP
