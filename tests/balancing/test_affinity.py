"""The session-affinity core: a hash ring of the candidates, weighted by capacity, with the
bounded-load walk (Mirrokni, Thorup and Zadimoghaddam). Every figure is deterministic:
the hashes are blake2b, the same in every process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from skyfleet.balancing import PeerLoad
from skyfleet.balancing import affinity as affinity_module
from skyfleet.balancing.affinity import HashRing, SessionAffinity, for_policy, tier_draw
from skyfleet.balancing.peers import Capacities
from skyfleet.policy.model import Sessions

SESSIONS = [f"session-{i}" for i in range(5000)]
ROOT = Path(__file__).resolve().parents[2]


def ring(n: int, **capacities: float) -> HashRing:
    return HashRing({f"p{i}": capacities.get(f"p{i}", 1.0) for i in range(n)}, 160)


def owners(r: HashRing, sessions: list[str] = SESSIONS) -> dict[str, str]:
    return {s: r.owner(s) for s in sessions}


def test_a_session_has_one_owner_however_the_set_is_listed() -> None:
    names = [f"p{i}" for i in range(9)]
    forward = HashRing({n: 1.0 for n in names}, 160)
    backward = HashRing({n: 1.0 for n in reversed(names)}, 160)
    assert owners(forward) == owners(backward) == owners(ring(9))


# Pinned: a change of hash, encoding or point layout moves every fleet's sessions at the
# upgrade, so it must be deliberate.
GOLDEN = {"alice": "p4", "bob": "p3", "carol": "p0", "dave": "p1", "erin": "p0"}


def test_owners_are_pinned_across_releases() -> None:
    r = ring(5)
    assert owners(r, list(GOLDEN)) == GOLDEN
    assert list(r.walk("alice")) == ["p4", "p1", "p0", "p2", "p3"]


def test_owners_are_the_same_in_another_process_whatever_its_hash_seed() -> None:
    script = (
        "import json; from skyfleet.balancing.affinity import HashRing, tier_draw\n"
        "r = HashRing({f'p{i}': 1.0 + i % 3 for i in range(30)}, 160)\n"
        "keys = [f'session-{i}' for i in range(200)]\n"
        "print(json.dumps([[r.owner(k) for k in keys], [tier_draw(k) for k in keys]]))\n"
    )
    r = HashRing({f"p{i}": 1.0 + i % 3 for i in range(30)}, 160)
    keys = SESSIONS[:200]
    mine = [[r.owner(k) for k in keys], [tier_draw(k) for k in keys]]
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT / "runtime")}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
        )
        assert json.loads(out.stdout) == mine


@pytest.mark.parametrize("n", [3, 9, 30])
def test_removing_a_peer_moves_only_the_sessions_it_owned(n: int) -> None:
    before = owners(ring(n))
    lost = "p1"
    after = owners(HashRing({f"p{i}": 1.0 for i in range(n) if f"p{i}" != lost}, 160))
    moved = {s for s in SESSIONS if before[s] != after[s]}
    assert moved == {s for s in SESSIONS if before[s] == lost}
    assert len(moved) > 0


@pytest.mark.parametrize("n", [3, 9, 30])
def test_adding_a_peer_moves_about_one_in_n_plus_one_all_to_it(n: int) -> None:
    before = owners(ring(n))
    after = owners(ring(n + 1))
    moved = [s for s in SESSIONS if before[s] != after[s]]
    assert {after[s] for s in moved} == {f"p{n}"}
    assert 0.7 / (n + 1) < len(moved) / len(SESSIONS) < 1.3 / (n + 1)


def test_sessions_split_in_proportion_to_capacity() -> None:
    r = HashRing({"small": 1.0, "medium": 2.0, "large": 4.0}, 160)
    counts = Counter(owners(r).values())
    for name, capacity in (("small", 1), ("medium", 2), ("large", 4)):
        assert counts[name] / len(SESSIONS) == pytest.approx(capacity / 7, rel=0.15)


def test_the_next_peer_of_a_retry_is_the_next_on_the_ring() -> None:
    r = ring(9)
    for s in SESSIONS[:300]:
        first, second, *_ = r.walk(s)
        without = HashRing({f"p{i}": 1.0 for i in range(9) if f"p{i}" != first}, 160)
        assert without.owner(s) == second


def place(r: HashRing, keys: list[str], factor: float, caps: dict[str, float]) -> None:
    """Place `keys` one task each, in order, checking the bound after every placement."""
    loads = dict.fromkeys(caps, 0)
    c = Fraction(str(factor))  # the factor as written: 1.1 is 11/10
    total = Fraction(str(sum(caps.values())))
    share = {name: Fraction(str(cap)) / total for name, cap in caps.items()}
    for m, key in enumerate(keys, start=1):
        loads[r.pick(key, loads, factor)] += 1
        for name, load in loads.items():
            assert load <= math.ceil(c * m * share[name]), (m, name)


@pytest.mark.parametrize("factor", [1.1, 1.25, 2.0])
@pytest.mark.parametrize("n", [5, 30])
def test_no_peer_goes_above_the_bound(n: int, factor: float) -> None:
    caps = {f"p{i}": 1.0 for i in range(n)}
    place(HashRing(caps, 160), SESSIONS[:2000], factor, caps)


def test_the_bound_follows_capacity() -> None:
    caps = {"p0": 1.0, "p1": 2.0, "p2": 4.0, "p3": 0.5}
    place(HashRing(caps, 160), SESSIONS[:2000], 1.25, caps)


def test_a_hot_session_overflows_clockwise_and_plain_hashing_does_not() -> None:
    r = ring(10)
    loads = {f"p{i}": 0 for i in range(10)}
    for _ in range(100):
        loads[r.pick("hot", loads, 1.25)] += 1
    order = list(r.walk("hot"))
    # Each peer in ring order fills to its bound before the next is used.
    assert max(loads.values()) <= math.ceil(1.25 * 100 / 10)
    used = [loads[name] > 0 for name in order]
    assert used == sorted(used, reverse=True) and sum(used) >= 8
    plain = dict.fromkeys(loads, 0)
    for _ in range(100):
        plain[r.pick("hot", plain, 0.0)] += 1
    assert plain[order[0]] == 100


def test_bad_arguments_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="at least one peer"):
        HashRing({}, 160)
    with pytest.raises(ValueError, match="virtual_nodes: must be at least 1"):
        HashRing({"a": 1.0}, 0)
    with pytest.raises(ValueError, match="'a': capacity must be > 0"):
        HashRing({"a": 0.0}, 10)
    with pytest.raises(ValueError, match="load_factor: must be 0 .* or > 1, got 0.5"):
        ring(3).pick("s", {"p0": 0, "p1": 0, "p2": 0}, 0.5)


def test_tier_draws_are_uniform_and_independent_of_the_ring_point() -> None:
    draws = [tier_draw(s) for s in SESSIONS]
    assert all(0.0 <= u < 1.0 for u in draws)
    assert sum(u < 0.7 for u in draws) / len(draws) == pytest.approx(0.7, abs=0.03)
    # Sessions drawn into the first 70 % still spread over the whole ring.
    r = ring(9)
    counts = Counter(r.owner(s) for s, u in zip(SESSIONS, draws, strict=True) if u < 0.7)
    assert len(counts) == 9 and max(counts.values()) < 2 * min(counts.values())


def peers(n: int, **loads: int) -> list[PeerLoad]:
    return [PeerLoad(name=f"p{i}", cloud="aws", inflight=loads.get(f"p{i}", 0)) for i in range(n)]


def test_a_ring_is_built_only_for_a_candidate_set_not_seen_lately(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []

    class Counting(HashRing):
        def __init__(self, capacities: dict[str, float], virtual_nodes: int) -> None:
            built.append(len(capacities))
            super().__init__(capacities, virtual_nodes)

    monkeypatch.setattr(affinity_module, "HashRing", Counting)
    a = SessionAffinity(capacities=Capacities({}), virtual_nodes=160, load_factor=1.25)
    nine, eight = peers(9), peers(8)
    for s in SESSIONS[:50]:
        a.pick(s, nine)
        a.pick(s, list(reversed(nine)))
        a.pick(s, peers(9, p3=2))  # loads are not part of the key
        a.pick(s, eight)
    assert built == [9, 8]
    a.pick("s", [PeerLoad(name=p.name, cloud="aws", capacity=2.0) for p in nine])
    assert built == [9, 8, 9]  # a capacity changed: a new ring


def test_cloud_weights_weigh_the_ring() -> None:
    fleet = [PeerLoad(name=f"{c}-{i}", cloud=c) for c in ("aws", "gcp") for i in range(3)]
    a = SessionAffinity(capacities=Capacities({"gcp": 3.0}), virtual_nodes=160, load_factor=0.0)
    counts = Counter(a.pick(s, fleet).cloud for s in SESSIONS)
    assert counts["gcp"] / len(SESSIONS) == pytest.approx(0.75, rel=0.1)


@pytest.mark.parametrize(
    ("sessions", "factor"),
    [
        (Sessions(affinity="none"), None),
        (Sessions(affinity="hash", load_factor=1.5), 0.0),
        (Sessions(affinity="bounded_hash", load_factor=1.5), 1.5),
    ],
)
def test_the_policy_names_the_affinity(sessions: Sessions, factor: float | None) -> None:
    a = for_policy(sessions, Capacities({}))
    if factor is None:
        assert a is None
        return
    assert a is not None
    # Owner p_k of "hot" at load 10 on an otherwise idle set: over a 1.5 bound, not over none.
    owner = ring(4).owner("hot")
    picked = a.pick("hot", peers(4, **{owner: 10})).name
    assert (picked == owner) == (factor == 0.0)
