"""Session affinity: the tasks of one session go to one host, chosen by consistent hashing
with bounded loads over the peers the balancer's other rules leave.

A session keeps state on the host that served it (a conversation's context, a warm cache,
an open sandbox), so its next task is cheapest there. Every router must name the same host
without asking anyone, and each sees the same members through gossip: a deterministic
function of (session, candidate set) does that, and a change of the set must move only
the sessions it has to.

The ring (Karger et al. 1997; libketama; Envoy's ring_hash). Each peer hashes points onto
a 64-bit circle: `virtual_nodes` of them for a peer of average capacity, others in
proportion (capacity = slots x the cloud's weight, `Capacities`). A session hashes to a
point and belongs to the owner of the first peer point clockwise. A peer that leaves hands
each of its arcs to the owner of the next point, so only its sessions move, spread over
the rest; a new peer takes ~1/N of the sessions, a little from each. With bounded loads
(Mirrokni, Thorup and Zadimoghaddam 2018; Envoy's `hash_balance_factor`) the walk goes on
clockwise past every peer whose load has reached its bound

    bound(p) = ceil(c x (L + 1) x capacity(p) / total capacity)

L being the candidates' total load (`PeerLoad.load`: reported plus own sends since) and c
the `load_factor`: the average load per unit of capacity, counting the task being placed,
times c, times p's capacity. The bounds sum to at least c (L + 1) > L, so some peer is
always below its own; they are computed in exact fractions of the decimals the policy
writes, so no rounding breaks that. A retry leaves out the peers it tried and walks from
the same point, so it lands on the next peer clockwise: over the same candidates, a
session fails over in the same order from every router.

Why a ring rather than:
- Maglev (Eisenbud et al. 2016): O(1) lookups in a table of M >= 100 N entries and
  near-perfect balance, but a change refills the table and moves some keys between
  survivors (disruption near minimal, not minimal), and weights become entry counts.
- Rendezvous, highest random weight (Thaler and Ravishankar 1998; weighted by -w / ln h):
  exactly minimal disruption and exact weights with nothing to build, and a per-session
  order for free, but a lookup hashes every candidate: O(N) per attempt, on the routing
  path, against one hash and a bisect here.
The ring makes the frequent thing cheap (a pick per attempt) and the rare thing cached (a
rebuild per change of the candidate set: N x virtual_nodes hashes and a sort, ~16 ms for
100 peers; the latest few rings are kept, keyed on the peers' names and capacities, so a
retry's smaller set or another task kind's rules do not throw out the first set's ring).
Its costs: N x virtual_nodes integers of memory; plain hashing balances only within about
1/sqrt(virtual_nodes) per host (the bound caps what that leaves); and with unequal
capacities the mean capacity shifts when a peer leaves, adding or dropping a few of the
others' last points, so a sliver more than the leaver's sessions moves (and a retry's
next peer is the next clockwise but for that sliver). With equal capacities both are exact.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Final

from skyfleet.balancing.peers import Capacities, PeerLoad
from skyfleet.policy.model import Sessions

RINGS_KEPT: Final = 8
"""Rings an affinity keeps, least recently used dropped first: the full candidate set, the
sets its retries leave, and those of other task kinds' routing rules."""

_SESSION: Final = b"skyfleet/session"
_PEER: Final = b"skyfleet/peer"
_TIER: Final = b"skyfleet/tier"
"""blake2b personalisations: a session's ring point, a peer's points and a session's
locality draw are independent hashes of their inputs."""


def _hash(data: bytes, person: bytes) -> int:
    """64 bits of blake2b: the same in every process and release, unlike `hash()`."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=person).digest(), "big")


def _exact(value: float) -> Fraction:
    """The decimal a policy writes (1.1 is 11/10), not its binary neighbour, which is a
    hair above and would let a bound that should be 33 be 34."""
    return Fraction(repr(value))


def tier_draw(session: str) -> float:
    """A uniform number in [0, 1) fixed by the session: the locality draw of its tasks, so
    that while tiers split traffic by health each session keeps to one tier. Independent of
    the ring point, or the sessions sent to one tier would all sit on one arc of its ring."""
    return _hash(session.encode(), _TIER) / 2**64


class HashRing:
    """Peers' points on the circle; built once per candidate set, then read by every pick."""

    def __init__(self, capacities: Mapping[str, float], virtual_nodes: int) -> None:
        if not capacities:
            raise ValueError("a hash ring needs at least one peer")
        if virtual_nodes < 1:
            raise ValueError(f"virtual_nodes: must be at least 1, got {virtual_nodes}")
        for name, capacity in capacities.items():
            if not capacity > 0:
                raise ValueError(f"peer {name!r}: capacity must be > 0, got {capacity}")
        # Shares in exact arithmetic: the mapping's order can vary with hash randomisation
        # (a set of peers), and a float sum in another order could round a count otherwise.
        exact = {name: _exact(capacity) for name, capacity in capacities.items()}
        total = sum(exact.values())
        self._share = {name: capacity / total for name, capacity in exact.items()}
        ring = sorted(
            (_hash(name.encode() + i.to_bytes(4, "big"), _PEER), name)
            for name, share in self._share.items()
            for i in range(max(1, round(virtual_nodes * len(exact) * share)))
        )
        self._points = [point for point, _ in ring]
        self._owners = [name for _, name in ring]

    def walk(self, key: str) -> Iterator[str]:
        """Every peer once, clockwise from `key`'s point: its owner first, then the order
        its tasks go in while the owner is full or gone."""
        owners = self._owners
        start = bisect.bisect_left(self._points, _hash(key.encode(), _SESSION))
        seen: set[str] = set()
        for i in range(start, start + len(owners)):
            name = owners[i % len(owners)]
            if name not in seen:
                seen.add(name)
                yield name
                if len(seen) == len(self._share):
                    return

    def owner(self, key: str) -> str:
        return next(self.walk(key))

    def pick(self, key: str, loads: Mapping[str, int], load_factor: float) -> str:
        """The peer for `key`: with `load_factor` 0 its owner (plain consistent hashing),
        else the first peer clockwise whose load is below its bound (module docstring).
        `loads` holds every peer of the ring."""
        if load_factor == 0:
            return self.owner(key)
        if not load_factor > 1:
            raise ValueError(f"load_factor: must be 0 (no bound) or > 1, got {load_factor}")
        scale = _exact(load_factor) * (sum(loads[name] for name in self._share) + 1)
        # The bounds sum to at least scale > total load, so the walk always finds one.
        return next(
            name for name in self.walk(key) if loads[name] < math.ceil(scale * self._share[name])
        )


class SessionAffinity:
    """The balancer's side: which peer of its pool serves a session. Rings are built
    only for a candidate set not seen lately."""

    def __init__(
        self, *, capacities: Capacities, virtual_nodes: int, load_factor: float
    ) -> None:
        self._capacities = capacities
        self._virtual_nodes = virtual_nodes
        self._load_factor = load_factor
        self._ring = functools.lru_cache(maxsize=RINGS_KEPT)(self._build)

    def _build(self, members: frozenset[tuple[str, float]]) -> HashRing:
        return HashRing(dict(members), self._virtual_nodes)

    def pick(self, session: str, peers: Sequence[PeerLoad]) -> PeerLoad:
        """One of `peers` (never empty) for `session`."""
        by_name = {p.name: p for p in peers}
        ring = self._ring(frozenset((p.name, self._capacities.of(p)) for p in peers))
        name = ring.pick(session, {n: p.load for n, p in by_name.items()}, self._load_factor)
        return by_name[name]


def for_policy(sessions: Sessions, capacities: Capacities) -> SessionAffinity | None:
    """The affinity `sessions` asks for; None when sessions are ignored."""
    if sessions.affinity == "none":
        return None
    bounded = sessions.affinity == "bounded_hash"
    return SessionAffinity(
        capacities=capacities,
        virtual_nodes=sessions.virtual_nodes,
        load_factor=sessions.load_factor if bounded else 0.0,
    )
