"""A refused connection as evidence (`Swim.refused`, `MembershipConfig.refused_timeout`):
the table of what a refusal does to a member, on a fake clock, and the same rule in the
simulated fleet, where a `kill -9` (port closed, host up) is told apart from silence."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.members import EventKind
from skyfleet.membership.messages import Alive, Dead, MemberState, NodeMeta, Suspect
from skyfleet.membership.swim import Swim
from skyfleet.membership.timing import suspicion_timeout
from skyfleet.sim import SimCluster, SimNetwork
from tests.membership.test_swim_unit import LAN, advance, introduce, keys_of, kinds, make, packet

T = LAN.refused_timeout


def fleet() -> tuple[Swim, Swim, list[Swim]]:
    """`a` holding `x` and four others alive."""
    a, x = make("a"), make("x")
    others = [make(n) for n in ("b", "c", "d", "e")]
    introduce(a, x, *others)
    kinds(a)
    return a, x, others


def test_a_refusal_makes_an_alive_member_suspect_at_once_and_dead_after_the_timeout() -> None:
    a, x, _ = fleet()
    a.refused("x", x.meta.address, 10.0)
    assert a.member("x").state == MemberState.SUSPECT
    assert kinds(a) == [(EventKind.SUSPECT, "x")]
    assert a.stats.refused_connections == 1
    advance(a, 10.0 + T - 1e-6)
    assert a.member("x").state == MemberState.SUSPECT
    advance(a, 10.0 + T)
    assert a.member("x").state == MemberState.DEAD
    assert kinds(a) == [(EventKind.FAILED, "x")]


def test_a_refusal_shortens_a_suspicion_already_running() -> None:
    a, x, others = fleet()
    a.handle(packet(others[0], None, Suspect("x", 0, "b")), 10.0)
    a.refused("x", x.meta.address, 11.0)
    advance(a, 11.0 + T - 1e-6)
    assert a.member("x").state == MemberState.SUSPECT
    advance(a, 11.0 + T)
    assert a.member("x").state == MemberState.DEAD


def test_later_refusals_never_push_the_deadline_back() -> None:
    a, x, _ = fleet()
    a.refused("x", x.meta.address, 10.0)
    a.refused("x", x.meta.address, 10.0 + T / 2)
    advance(a, 10.0 + T)
    assert a.member("x").state == MemberState.DEAD
    assert a.stats.refused_connections == 2


def test_a_suspicion_due_before_the_refusal_timeout_keeps_its_deadline() -> None:
    a, x, others = fleet()
    lo = suspicion_timeout(LAN.suspicion_mult, a.num_up(), LAN.probe_interval)
    a.handle(packet(others[0], None, Suspect("x", 0, "b")), 10.0)
    for name in ("c", "d", "e"):
        a.handle(packet(others[0], None, Suspect("x", 0, name)), 10.0)  # down to lo
    a.refused("x", x.meta.address, 10.0 + lo - T / 2)
    advance(a, 10.0 + lo)
    assert a.member("x").state == MemberState.DEAD


def test_a_refutation_within_the_timeout_keeps_the_member() -> None:
    a, x, _ = fleet()
    a.refused("x", x.meta.address, 10.0)
    refutation = Alive(x.meta, 1)
    a.handle(packet(x, None, refutation), 10.0 + T / 2)
    advance(a, 10.0 + 10 * T)
    assert a.member("x").state == MemberState.ALIVE
    assert a.member("x").incarnation == 1


@pytest.mark.parametrize(
    ("case", "node", "address"),
    [
        ("another address (a new life elsewhere)", "x", "mem://x-elsewhere"),
        ("ourselves", "a", "mem://a"),
        ("a member we never knew", "nobody", "mem://nobody"),
    ],
)
def test_a_refusal_that_is_no_evidence_about_a_member_held_up_changes_nothing(
    case: str, node: str, address: str
) -> None:
    a, _, _ = fleet()
    assert a.refused(node, address, 10.0) == [], case
    advance(a, 10.0 + 10 * T)
    assert a.member("x").state == MemberState.ALIVE
    assert a.member("a").state == MemberState.ALIVE
    assert a.stats.refused_connections == 0


@pytest.mark.parametrize("state", [MemberState.DEAD, MemberState.LEFT])
def test_a_refusal_by_a_member_already_down_changes_nothing(state: MemberState) -> None:
    a, x, others = fleet()
    source = "x" if state == MemberState.LEFT else "b"
    news = Dead("x", 0, source)
    a.handle(packet(x if state == MemberState.LEFT else others[0], None, news), 10.0)
    kinds(a)
    assert a.refused("x", x.meta.address, 11.0) == []
    assert a.member("x").state == state
    assert kinds(a) == []


def test_with_the_timeout_at_zero_the_rule_is_off() -> None:
    off = replace(LAN, refused_timeout=0.0)
    a = Swim(NodeMeta("a", "mem://a"), off, random.Random(0), keys=keys_of("a"))
    x = make("x")
    introduce(a, x)
    assert a.refused("x", x.meta.address, 10.0) == []
    assert a.member("x").state == MemberState.ALIVE


def test_a_leaving_node_accuses_nobody() -> None:
    a, x, _ = fleet()
    a.leave(10.0)
    assert a.refused("x", x.meta.address, 10.5) == []
    assert a.member("x").state == MemberState.ALIVE


# ---------------------------------------------------------------------- in a fleet

N = 20


def converged(seed: int, loss: float = 0.0) -> SimCluster:
    network = SimNetwork(random.Random(seed + 1), loss=loss)
    cluster = SimCluster(MembershipConfig(), seed=seed, network=network)
    cluster.add_converged([f"n{i}" for i in range(N)])
    cluster.run_for(5.0)
    return cluster


def dead_everywhere_after(cluster: SimCluster, victim: str, timeout: float) -> float | None:
    others = [n for n in cluster.live_names() if n != victim]
    return cluster.run_until_true(
        lambda: cluster.all_see(victim, MemberState.DEAD, others), timeout, step=0.01
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_killed_process_on_a_live_host_is_dead_everywhere_within_two_seconds(seed: int) -> None:
    cluster = converged(seed)
    cluster.crash("n7", port_closed=True)
    took = dead_everywhere_after(cluster, "n7", 2.0)
    assert took is not None and took <= 2.0
    failed = [e for n in cluster.live_names() for e in cluster.events(n) if e.node == "n7"]
    assert any(e.kind == EventKind.FAILED for e in failed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_silent_node_still_gets_lifeguards_full_suspicion(seed: int) -> None:
    """The same crash behind a blackhole: nothing refuses, so nothing is faster than the
    minimum suspicion timeout (what `test_swim_scenarios` measures as before)."""
    cluster = converged(seed)
    cluster.crash("n7")
    lo = suspicion_timeout(LAN.suspicion_mult, N, LAN.probe_interval)
    assert dead_everywhere_after(cluster, "n7", lo) is None
    assert all(cluster.nodes[n].swim.stats.refused_connections == 0 for n in cluster.live_names())


def test_loss_and_a_starved_node_give_no_refusals_and_no_deaths() -> None:
    """10 % loss everywhere and one node running only every 2 s (a SIGSTOP-like stall
    shorter than the suspicion timeout): suspicions may come and go, deaths may not."""
    cluster = converged(4, loss=0.10)
    cluster.starve("n3", 2.0)
    cluster.run_for(2.5)
    cluster.starve("n3", 0.0)
    cluster.run_for(30.0)
    for name in cluster.live_names():
        assert all(e.kind != EventKind.FAILED for e in cluster.events(name)), name
        assert cluster.nodes[name].swim.stats.refused_connections == 0
    assert cluster.converged()


def test_a_restart_on_the_same_port_rejoins_over_the_refusal() -> None:
    cluster = converged(5)
    cluster.crash("n7", port_closed=True)
    assert dead_everywhere_after(cluster, "n7", 2.0) is not None
    cluster.restart("n7", seeds=("sim://n0",), incarnation=1_000)
    took = cluster.run_until_true(cluster.converged, 10.0)
    assert took is not None
    for name in cluster.live_names():
        assert cluster.nodes[name].swim.member("n7").incarnation >= 1_000
