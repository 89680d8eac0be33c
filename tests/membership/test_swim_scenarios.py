"""Fleet behaviour on the discrete-event simulator: the same `Swim` cores, virtual time, an
in-memory network, fixed seeds.

Every time bound comes from the formulas (`timing.py`) and the config, never from a
measured run: a test states what the protocol promises and lets the simulator check it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.members import EventKind
from skyfleet.membership.messages import MemberState, StatusReport
from skyfleet.membership.timing import push_pull_scale, retransmit_limit, suspicion_timeout
from skyfleet.sim import SimCluster

LAN = MembershipConfig()
# Lifeguard off: no local-health stretching and suspicion timers that do not start long.
NO_LIFEGUARD = replace(LAN, awareness_max_multiplier=1, suspicion_max_timeout_mult=1)


def names(n: int, start: int = 0) -> list[str]:
    return [f"n{i}" for i in range(start, start + n)]


def fleet(n: int, *, seed: int, config: MembershipConfig = LAN) -> SimCluster:
    """n nodes started together, all joining through n0."""
    cluster = SimCluster(config, seed=seed)
    cluster.add_node("n0", cloud="a")
    for i in range(1, n):
        cluster.add_node(f"n{i}", seeds=(cluster.address("n0"),), cloud="ab"[i % 2])
    return cluster


def gossip_bound(config: MembershipConfig, n: int) -> float:
    """Each gossip round sends news on, and news is sent retransmit_limit times: past
    that many rounds, gossip has done all it will for news born at the start."""
    return retransmit_limit(config.retransmit_mult, n) * config.gossip_interval


def suspicion_bounds(config: MembershipConfig, n: int) -> tuple[float, float]:
    lo = suspicion_timeout(config.suspicion_mult, n, config.probe_interval)
    return lo, config.suspicion_max_timeout_mult * lo


def converged_fleet(n: int, *, seed: int, config: MembershipConfig = LAN) -> SimCluster:
    cluster = fleet(n, seed=seed, config=config)
    # Gossip plus, for a straggler, the first anti-entropy round.
    bound = config.push_pull_interval + gossip_bound(config, n)
    assert cluster.run_until_true(cluster.converged, bound) is not None
    return cluster


def failed(cluster: SimCluster, subjects: list[str]) -> list[tuple[str, str, float]]:
    """(observer, subject, when) for every FAILED event about `subjects`, on any node."""
    return [
        (observer, event.node, round(event.at, 2))
        for observer in cluster.nodes
        for event in cluster.events(observer)
        if event.kind == EventKind.FAILED and event.node in subjects
    ]


def fraction_converged(cluster: SimCluster) -> float:
    live = cluster.live_names()
    seen = sum(cluster.view(o, s) == MemberState.ALIVE for o in live for s in live)
    return seen / len(live) ** 2


# ---------------------------------------------------------------------- join


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ten_nodes_joining_through_one_seed_converge_by_gossip(seed: int) -> None:
    cluster = fleet(10, seed=seed)
    took = cluster.run_until_true(cluster.converged, gossip_bound(LAN, 10), step=0.01)
    assert took is not None


@pytest.mark.parametrize("seed", [1, 5])
def test_fifty_nodes_joining_through_one_seed_converge(seed: int) -> None:
    # 49 nodes join within a millisecond: gossip spreads the burst of news to nearly every
    # pair; a node that missed an item (seed 5) gets it from the first push-pull.
    cluster = fleet(50, seed=seed)
    cluster.run_until(gossip_bound(LAN, 50))
    assert fraction_converged(cluster) >= 0.99
    took = cluster.run_until_true(cluster.converged, LAN.push_pull_interval, step=0.01)
    assert took is not None


@pytest.mark.parametrize("seed", [1, 5])
def test_a_burst_of_joins_converges_within_a_round_of_reaching_the_seed(seed: int) -> None:
    # The seed completes the snapshot each early joiner got (join catch-up): the burst
    # needs neither gossip to cover every pair nor the first push-pull (seed 5 above).
    cluster = fleet(50, seed=seed)
    took = cluster.run_until_true(cluster.converged, LAN.gossip_interval, step=0.01)
    assert took is not None


def test_without_join_catch_up_the_same_burst_waits_for_gossip() -> None:
    cluster = fleet(50, seed=5, config=replace(LAN, join_catch_up_window=0.0))
    assert cluster.run_until_true(cluster.converged, LAN.gossip_interval, step=0.01) is None


# ---------------------------------------------------------------------- crash detection


@pytest.mark.parametrize(("n", "seed"), [(10, 1), (10, 2), (50, 1)])
def test_crashed_node_is_declared_dead_by_all_within_the_suspicion_bounds(
    n: int, seed: int
) -> None:
    cluster = converged_fleet(n, seed=seed)
    cluster.run_for(5.0)
    lo, hi = suspicion_bounds(LAN, n)
    cluster.crash("n3")
    took = cluster.run_until_true(
        lambda: cluster.all_see("n3", MemberState.DEAD), LAN.probe_interval + hi
    )
    assert took is not None
    # Nobody can be sure before one minimal suspicion timeout, and independent
    # confirmations (Lifeguard) must have brought the timer down from its maximum.
    assert lo <= took < hi
    cluster.run_for(hi)
    assert failed(cluster, [x for x in cluster.live_names()]) == []
    assert cluster.converged()


def test_a_fleet_started_converged_behaves_like_one_that_joined() -> None:
    """`add_converged` is the simulator's shortcut for N = 10,000: it must start with
    nothing to gossip and still detect a crash within the same bounds as a joined fleet."""
    n = 40
    cluster = SimCluster(LAN, seed=3)
    cluster.add_converged(names(n))
    assert cluster.converged()
    cluster.run_for(3.0)
    quiet = 2.0 / LAN.probe_interval  # one ping and one ack per probe, no gossip at all
    sent = sum(node.packets_sent for node in cluster.nodes.values())
    assert sent <= 3.0 * n * quiet * 1.1
    lo, hi = suspicion_bounds(LAN, n)
    cluster.crash("n7")
    took = cluster.run_until_true(
        lambda: cluster.all_see("n7", MemberState.DEAD), LAN.probe_interval + hi
    )
    assert took is not None and lo <= took < hi
    assert failed(cluster, cluster.live_names()) == []
    assert cluster.converged()


def test_a_fleet_started_converged_spreads_push_pulls_over_the_scaled_interval() -> None:
    """A converged fleet's push-pulls are spread over the interval scaled for its size,
    not crowded into the unscaled one a node alone would use."""
    n = 200
    cluster = SimCluster(LAN, seed=5)
    cluster.add_converged(names(n))
    cluster.run_for(LAN.push_pull_interval)
    push_pulls = sum(node.swim.stats.push_pulls for node in cluster.nodes.values())
    expected = n * LAN.push_pull_interval / push_pull_scale(LAN.push_pull_interval, n)
    assert push_pulls <= 1.5 * expected < n


# ---------------------------------------------------------------------- suspicion, refutation


def isolate_outbound_until_suspected(seed: int) -> SimCluster:
    """n3's outgoing packets are dropped until someone suspects it, and one probe interval
    more; it can still hear, so it learns of the suspicion. The block lifts well before a
    minimal suspicion timeout has passed, so n3 has time to refute."""
    n = 10
    cluster = converged_fleet(n, seed=seed)
    cluster.run_for(2.0)
    others = [x for x in cluster.nodes if x != "n3"]
    cluster.network.block(["n3"], others, both_ways=False)
    suspected = cluster.run_until_true(
        lambda: any(cluster.view(o, "n3") == MemberState.SUSPECT for o in others),
        2 * (n - 1) * LAN.probe_interval,
    )
    assert suspected is not None
    cluster.run_for(LAN.probe_interval)
    assert LAN.probe_interval < suspicion_bounds(LAN, n)[0]
    cluster.network.heal()
    return cluster


def test_briefly_silent_node_refutes_and_is_never_declared_dead() -> None:
    cluster = isolate_outbound_until_suspected(seed=1)
    lo, hi = suspicion_bounds(LAN, 10)
    took = cluster.run_until_true(lambda: cluster.all_see("n3", MemberState.ALIVE), lo)
    cluster.run_for(hi)
    assert took is not None
    assert cluster.nodes["n3"].swim.incarnation > 0
    assert failed(cluster, ["n3"]) == []


def test_a_formerly_silent_node_does_not_get_healthy_peers_declared_dead() -> None:
    cluster = isolate_outbound_until_suspected(seed=1)
    cluster.run_for(2 * suspicion_bounds(LAN, 10)[1])
    healthy = [x for x in cluster.nodes if x != "n3"]
    assert failed(cluster, healthy) == []


# ---------------------------------------------------------------------- Lifeguard


def starve_one(config: MembershipConfig, *, seed: int) -> tuple[SimCluster, list[str]]:
    """n1 runs only at the ends of slots one probe timeout longer than the minimal
    suspicion timeout, for a minute; the other nine are healthy.

    The slot must exceed the minimal suspicion timeout: with a shorter one (2-3 s) the
    starved node always reads the refutation before its own timer fires, so even without
    Lifeguard nobody healthy is declared dead and the test could not fail.
    """
    n = 10
    cluster = converged_fleet(n, seed=seed, config=config)
    cluster.run_for(5.0)
    lo = suspicion_timeout(config.suspicion_mult, n, config.probe_interval)
    cluster.starve("n1", lo + config.probe_timeout)
    cluster.run_for(60.0)
    return cluster, [x for x in cluster.nodes if x != "n1"]


@pytest.mark.parametrize("seed", [1, 2])
def test_lifeguard_a_starved_node_gets_no_healthy_node_declared_dead(seed: int) -> None:
    cluster, healthy = starve_one(LAN, seed=seed)
    assert failed(cluster, healthy) == []
    assert cluster.nodes["n1"].swim.health_score > 0  # it learned to distrust itself


@pytest.mark.parametrize("seed", [1, 2])
def test_control_without_lifeguard_the_starved_node_declares_healthy_nodes_dead(
    seed: int,
) -> None:
    cluster, healthy = starve_one(NO_LIFEGUARD, seed=seed)
    assert cluster.nodes["n1"].swim.health_score == 0
    false_positives = failed(cluster, healthy)
    assert false_positives
    assert {observer for observer, _, _ in false_positives} == {"n1"}


# ---------------------------------------------------------------------- partitions


def both_sides_dead(cluster: SimCluster, a: list[str], b: list[str]) -> bool:
    return all(
        cluster.view(x, y) == MemberState.DEAD and cluster.view(y, x) == MemberState.DEAD
        for x in a
        for y in b
    )


def same_side_failures(cluster: SimCluster, sides: list[list[str]]) -> list[tuple]:
    side_of = {name: i for i, side in enumerate(sides) for name in side}
    return [
        (o, s, at) for o, s, at in failed(cluster, list(cluster.nodes)) if side_of[o] == side_of[s]
    ]


@pytest.mark.parametrize(
    "seed",
    [
        1,
        3,
        pytest.param(2),
    ],
)
def test_two_clouds_partitioned_both_ways_declare_each_other_dead_then_reconverge(
    seed: int,
) -> None:
    n = 10
    cluster = converged_fleet(n, seed=seed)
    a, b = names(5), names(5, start=5)
    cluster.run_for(2.0)
    cluster.network.block(a, b)
    _, hi = suspicion_bounds(LAN, n)
    # Every member is probed within two rounds of the round robin, then times out.
    took = cluster.run_until_true(
        lambda: both_sides_dead(cluster, a, b), 2 * (n - 1) * LAN.probe_interval + hi
    )
    assert took is not None
    assert same_side_failures(cluster, [a, b]) == []

    cluster.run_for(5.0)
    cluster.network.heal()
    # The next reconnect round re-links the sides; what the merge stirs up (suspicions
    # of one's own side) settles within one maximal suspicion timeout.
    healed = cluster.run_until_true(cluster.converged, LAN.reconnect_interval + hi)
    assert healed is not None
    cluster.run_for(hi)
    assert cluster.converged()
    assert same_side_failures(cluster, [a, b]) == []


@pytest.mark.parametrize("seed", [1, 2])
def test_one_way_loss_between_two_nodes_is_masked_by_indirect_probes(seed: int) -> None:
    cluster = converged_fleet(10, seed=seed)
    cluster.network.block(["n3"], ["n4"], both_ways=False)
    cluster.run_for(120.0)
    assert failed(cluster, list(cluster.nodes)) == []
    suspicions = [
        e for o in cluster.nodes for e in cluster.events(o) if e.kind == EventKind.SUSPECT
    ]
    assert suspicions == []
    assert cluster.nodes["n4"].swim.stats.indirect_probes > 0  # the detour was used


@pytest.mark.parametrize(
    "seed",
    [
        1,
        pytest.param(2),
    ],
)
def test_one_way_partition_between_clouds_then_heal(seed: int) -> None:
    n = 10
    cluster = converged_fleet(n, seed=seed)
    a, b = names(5), names(5, start=5)
    cluster.network.block(a, b, both_ways=False)  # a cannot send to b; b still reaches a
    _, hi = suspicion_bounds(LAN, n)
    took = cluster.run_until_true(
        lambda: all(cluster.view(y, x) == MemberState.DEAD for x in a for y in b),
        2 * (n - 1) * LAN.probe_interval + hi,
    )
    assert took is not None
    cluster.run_for(hi)
    assert same_side_failures(cluster, [a, b]) == []

    cluster.network.heal()
    healed = cluster.run_until_true(cluster.converged, LAN.reconnect_interval + hi)
    assert healed is not None


@pytest.mark.parametrize("seed", [1, 2])
def test_ten_percent_loss_between_clouds_kills_nobody(seed: int) -> None:
    cluster = converged_fleet(12, seed=seed)
    a, b = names(6), names(6, start=6)
    cluster.network.set_loss(a, b, 0.10)
    cluster.run_for(300.0)
    assert failed(cluster, list(cluster.nodes)) == []
    # Suspicions may be in flight at any instant under loss; none may stick.
    cluster.network.heal()
    max_suspicion = LAN.suspicion_max_timeout_mult * suspicion_timeout(
        LAN.suspicion_mult, 12, LAN.probe_interval
    )
    assert cluster.run_until_true(cluster.converged, max_suspicion) is not None
    assert failed(cluster, list(cluster.nodes)) == []
    # The loss was felt: some direct probes missed and went through helpers.
    assert sum(node.swim.stats.indirect_probes for node in cluster.nodes.values()) > 0


# ---------------------------------------------------------------------- restart, leave


def crash_until_dead(cluster: SimCluster, name: str, n: int) -> None:
    cluster.crash(name)
    _, hi = suspicion_bounds(LAN, n)
    dead = cluster.run_until_true(
        lambda: cluster.all_see(name, MemberState.DEAD), LAN.probe_interval + hi
    )
    assert dead is not None


@pytest.mark.parametrize("seed", [1, 2])
def test_restart_with_a_higher_incarnation_is_alive_everywhere(seed: int) -> None:
    cluster = converged_fleet(10, seed=seed)
    crash_until_dead(cluster, "n4", 10)
    cluster.run_for(5.0)
    swim = cluster.restart("n4", seeds=(cluster.address("n0"),), incarnation=1_000)
    took = cluster.run_until_true(cluster.converged, gossip_bound(LAN, 10))
    assert took is not None
    assert swim.incarnation == 1_000  # nothing to refute
    assert cluster.all_see("n4", MemberState.ALIVE)


@pytest.mark.parametrize("seed", [1, 2])
def test_restart_with_incarnation_zero_refutes_its_stale_death(seed: int) -> None:
    cluster = converged_fleet(10, seed=seed)
    crash_until_dead(cluster, "n4", 10)
    dead_incarnation = cluster.nodes["n0"].swim.member("n4").incarnation
    cluster.run_for(5.0)
    swim = cluster.restart("n4", seeds=(cluster.address("n0"),), incarnation=0)
    took = cluster.run_until_true(cluster.converged, gossip_bound(LAN, 10))
    assert took is not None
    assert swim.incarnation > dead_incarnation
    assert any(e.kind == EventKind.REFUTED for e in cluster.events("n4"))
    cluster.run_for(suspicion_bounds(LAN, 10)[1])
    assert cluster.all_see("n4", MemberState.ALIVE)


@pytest.mark.parametrize(
    "seed",
    [
        1,
        3,
        pytest.param(2),
    ],
)
def test_graceful_leave_is_seen_as_left_never_failed(seed: int) -> None:
    cluster = converged_fleet(10, seed=seed)
    cluster.leave("n4")
    cluster.run_for(LAN.leave_propagate_delay)
    cluster.crash("n4")  # the process exits after spreading the news
    # Long enough for any suspicion of the departed node to run out.
    cluster.run_for(LAN.probe_interval * 10 + suspicion_bounds(LAN, 10)[1])
    assert failed(cluster, ["n4"]) == []
    assert cluster.all_see("n4", MemberState.LEFT)
    assert cluster.converged()


# ---------------------------------------------------------------------- anti-entropy timing


def test_a_fleet_started_together_spreads_its_push_pulls() -> None:
    cluster = fleet(10, seed=1)
    first: dict[str, float] = {}

    def all_pushed() -> bool:
        for name, node in cluster.nodes.items():
            if node.swim.stats.push_pulls and name not in first:
                first[name] = cluster.now
        return len(first) == len(cluster.nodes)

    assert cluster.run_until_true(all_pushed, 2 * LAN.push_pull_interval) is not None
    assert max(first.values()) - min(first.values()) > LAN.probe_interval


@pytest.mark.parametrize("seed", [2, 9, 10])
def test_a_status_published_from_outside_the_loop_goes_out_at_once(seed: int) -> None:
    """A driver's call into a core (a status publication) may pull its next gossip round
    forward; `emit` must re-arm the node's wake-up, or the news waits for an old timer
    (these seeds' next wake-up was 90-160 ms away)."""
    cluster = SimCluster(LAN, seed=seed)
    cluster.add_converged(names(10))
    cluster.run_for(1.0)
    report = StatusReport(policy_version=1, policy_hash="h1")
    cluster.emit("n2", cluster.nodes["n2"].swim.publish_status(report, cluster.now))

    def holders() -> int:
        return sum("n2" in node.swim.statuses() for node in cluster.nodes.values())

    took = cluster.run_until_true(lambda: holders() >= 1 + LAN.gossip_nodes, 1.0, step=0.002)
    assert took is not None and took <= LAN.gossip_eager_gap


# ---------------------------------------------------------------------- simulated connections


def test_a_pair_is_connected_by_its_first_packet_until_either_end_crashes() -> None:
    cluster = SimCluster(LAN, seed=1)
    cluster.add_node("n0")
    cluster.add_node("n1")
    assert not cluster.connected("n0", "n1")
    cluster.add_node("n2", seeds=(cluster.address("n0"),))
    cluster.run_for(0.01)
    # One connection per pair, used both ways (as the agent's Exchange streams are).
    assert cluster.connected("n2", "n0") and cluster.connected("n0", "n2")
    assert not cluster.connected("n1", "n2")
    cluster.crash("n2")
    assert not cluster.connected("n0", "n2")


def test_a_converged_fleet_starts_connected_and_a_restarted_node_does_not() -> None:
    cluster = SimCluster(LAN, seed=1)
    cluster.add_converged(names(4))
    assert cluster.connected("n0", "n3") and cluster.connected("n3", "n0")
    cluster.crash("n3")
    cluster.restart("n3", seeds=(), incarnation=1)
    assert not cluster.connected("n0", "n3")


def test_without_the_connection_model_every_pair_counts_as_connected() -> None:
    cluster = SimCluster(LAN, seed=1, connections=False)
    cluster.add_node("n0")
    cluster.add_node("n1")
    assert cluster.connected("n0", "n1")
