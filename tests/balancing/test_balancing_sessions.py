"""Sessions through the Balancer: with affinity on, a session's tasks go to one peer after
constraints, health and locality, and move only when that peer is gone, ejected or over
its bound; with affinity off, a session changes nothing."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from balancing_helpers import fleet, peer

from skyfleet.balancing import Balancer, Choice, Locale, PeerLoad, TaskRequest
from skyfleet.balancing.affinity import HashRing
from skyfleet.policy.model import (
    Locality,
    OutlierDetection,
    PolicyDocument,
    Routing,
    RoutingRule,
    Sessions,
)

HOME = Locale(cloud="aws", region="aws-r1", zone="aws-z0")
SESSIONS = [f"user-{i}" for i in range(60)]


def policy(affinity: str = "bounded_hash", prefer: str = "none", **kw: object) -> PolicyDocument:
    return PolicyDocument(
        version=1,
        locality=Locality(prefer=prefer),
        sessions=Sessions(affinity=affinity),
        **kw,  # type: ignore[arg-type]
    )


def balancer(doc: PolicyDocument | None = None, seed: int = 1, home: Locale = HOME) -> Balancer:
    return Balancer(local=home, policy=doc or policy(), rng=random.Random(seed))


def pick(b: Balancer, peers: list[PeerLoad], session: str, now: float = 0.0, **kw: object) -> str:
    choice = b.choose(TaskRequest(kind="chat", session=session, **kw), peers, now)  # type: ignore[arg-type]
    assert isinstance(choice, Choice), choice
    b.record(choice, ok=True, now=now)
    return choice.peer.name


def placement(b: Balancer, peers: list[PeerLoad], now: float = 0.0) -> dict[str, str]:
    return {s: pick(b, peers, s, now) for s in SESSIONS}


@pytest.mark.parametrize("affinity", ["hash", "bounded_hash"])
def test_a_session_sticks_and_every_router_agrees(affinity: str) -> None:
    peers = fleet()
    first = placement(balancer(policy(affinity)), peers)
    assert len(set(first.values())) > 3  # the sessions spread
    for seed in (1, 2, 3):
        b = balancer(policy(affinity), seed=seed, home=Locale(cloud="gcp"))
        for _ in range(3):
            assert placement(b, peers) == first


def test_a_session_moves_only_when_its_peer_is_gone() -> None:
    peers = fleet()
    b = balancer()
    before = placement(b, peers)
    gone = before[SESSIONS[0]]
    after = placement(b, [p for p in peers if p.name != gone])
    assert {s for s in SESSIONS if after[s] != before[s]} == {
        s for s in SESSIONS if before[s] == gone
    }
    assert placement(b, peers) == before  # it came back: so did its sessions


def test_a_session_moves_only_while_its_peer_is_ejected() -> None:
    peers = fleet()
    b = balancer()
    before = placement(b, peers)
    bad = before[SESSIONS[0]]
    choice = b.choose(TaskRequest(kind="chat", session=SESSIONS[0]), peers, 0.0)
    assert isinstance(choice, Choice) and choice.peer.name == bad
    b.record(choice, ok=False, now=0.0, unreachable=True)  # ejected at once, alone
    during = placement(b, peers, now=1.0)
    assert {s for s in SESSIONS if during[s] != before[s]} == {
        s for s in SESSIONS if before[s] == bad
    }
    assert b.outliers.ejected_peers(1.0) == [bad]
    assert placement(b, peers, now=1.0 + OutlierDetection().base_ejection_seconds) == before


def test_a_retry_takes_the_next_peer_on_the_ring() -> None:
    peers = fleet()
    ring = HashRing({p.name: 1.0 for p in peers}, Sessions().virtual_nodes)
    for session in SESSIONS:
        order = list(ring.walk(session))
        b = balancer(seed=len(session))
        tried: tuple[str, ...] = ()
        for attempt in (1, 2, 3):
            got = pick(b, peers, session, attempt=attempt, tried=tried)
            assert got == order[attempt - 1]
            tried += (got,)


def test_a_session_leaves_its_peer_while_that_peer_is_over_the_bound() -> None:
    peers = fleet()
    session = SESSIONS[0]
    owner = pick(balancer(), peers, session)
    busy = [peer(p.name, p.cloud, zone=p.zone, inflight=8 if p.name == owner else 0)
            for p in peers]
    # 8 tasks in a fleet of 9 idle peers: the bound is ceil(1.25 x 9 / 9) = 2.
    assert pick(balancer(), busy, session) != owner
    assert pick(balancer(policy("hash")), busy, session) == owner


def test_constraints_come_first() -> None:
    peers = fleet()
    rules = Routing(rules=(RoutingRule(task_kind="chat", allowed_clouds=("gcp",)),))
    b = balancer(policy(routing=rules))
    assert {pick(b, peers, s)[:3] for s in SESSIONS} == {"gcp"}


def test_while_tiers_split_by_health_each_session_keeps_to_one_tier() -> None:
    # Home zone: two peers, one suspect, so it takes 0.5 x 1.4 = 70 % of the tasks.
    peers = [
        peer("home-0", "aws", zone="aws-z0"),
        peer("home-1", "aws", zone="aws-z0", healthy=False),
        *(peer(f"near-{i}", "aws", zone="aws-z1") for i in range(3)),
    ]
    b = balancer(policy(prefer="zone"))
    first = placement(b, peers)
    assert all(placement(b, peers) == first for _ in range(3))
    home = sum(first[s] == "home-0" for s in SESSIONS) / len(SESSIONS)
    assert home == pytest.approx(0.7, abs=0.15)


def test_without_affinity_a_session_changes_nothing() -> None:
    peers = fleet(inflight=1)
    for affinity, session in (("none", "s"), ("bounded_hash", "")):
        plain, named = balancer(policy("none"), seed=5), balancer(policy(affinity), seed=5)
        got = [pick(plain, peers, "") for _ in range(200)]
        assert [pick(named, peers, session) for _ in range(200)] == got
        assert len(set(got)) > 1


def test_a_new_policy_turns_affinity_on_and_keeps_the_strategy() -> None:
    peers = fleet()
    b = balancer(policy("none"))
    strategy = b.strategy
    assert len(Counter(pick(b, peers, "s") for _ in range(50))) > 1
    b.set_policy(policy("hash"))
    assert b.strategy is strategy
    assert len(Counter(pick(b, peers, "s") for _ in range(50))) == 1
