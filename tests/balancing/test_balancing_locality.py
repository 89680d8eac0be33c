"""Locality tiers and spill, constraints (never violated), panic, and the Balancer's
"no eligible peer" reasons."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from balancing_helpers import fleet, peer

from skyfleet.balancing import Balancer, Choice, Locale, NoEligiblePeer, NoPeerReason, TaskRequest
from skyfleet.balancing.locality import tier_shares, tiers
from skyfleet.policy.model import (
    CloudSettings,
    Failover,
    Locality,
    PolicyDocument,
    Routing,
    RoutingRule,
)

HOME = Locale(cloud="aws", region="aws-r1", zone="aws-z0")


def balancer(policy: PolicyDocument | None = None, seed: int = 1) -> Balancer:
    return Balancer(local=HOME, policy=policy or PolicyDocument(version=1), rng=random.Random(seed))


def picks(b: Balancer, peers: list, n: int = 300, task: TaskRequest | None = None) -> Counter:
    out: Counter = Counter()
    for _ in range(n):
        choice = b.choose(task or TaskRequest(kind="k"), peers, 0.0)
        assert isinstance(choice, Choice), choice
        b.record(choice, ok=True, now=0.0)
        out[choice.peer.name] += 1
    return out


@pytest.mark.parametrize(
    ("health", "factor", "expected"),
    [
        ([1.0], 1.4, [1.0]),
        ([1.0, 1.0], 1.4, [1.0, 0.0]),
        ([0.75, 1.0], 1.4, [1.0, 0.0]),  # 0.75 x 1.4 > 1: losing a quarter moves nothing
        ([0.5, 1.0], 1.4, [0.7, 0.3]),
        ([0.0, 0.5, 1.0], 1.4, [0.0, 0.7, 0.3]),
        ([0.2, 0.2], 1.0, [0.5, 0.5]),  # short of health overall: scaled up to sum to 1
        ([0.0, 0.0], 1.4, [0.0, 0.0]),
    ],
)
def test_tier_shares(health: list[float], factor: float, expected: list[float]) -> None:
    assert tier_shares(health, factor) == pytest.approx(expected)


def test_tiers_go_zone_region_cloud_then_other_clouds_cheapest_first() -> None:
    peers = [
        peer("same-zone", "aws", zone="aws-z0"),
        peer("same-region", "aws", zone="aws-z1"),
        peer("same-cloud", "aws", region="aws-r2", zone="aws-z9"),
        peer("gcp", "gcp"),
        peer("azure", "azure"),
    ]
    costs = {"aws": 1.0, "azure": 2.0, "gcp": 0.5}
    got = [[p.name for p in t] for t in tiers(HOME, peers, "zone", costs)]
    assert got == [["same-zone"], ["same-region"], ["same-cloud"], ["gcp"], ["azure"]]
    assert len(tiers(HOME, peers, "none", costs)) == 1
    by_cloud = tiers(HOME, peers, "cloud", {"azure": 1.0, "gcp": 1.0})
    assert [len(t) for t in by_cloud] == [3, 2]


def test_idle_home_zone_keeps_every_task() -> None:
    peers = fleet()
    assert set(picks(balancer(), peers)) == {"aws-0"}


def test_busy_home_zone_spills_to_its_region_first() -> None:
    peers = [
        peer("aws-0", "aws", zone="aws-z0", capacity=2, inflight=2),  # 100 % > 80 %
        peer("aws-1", "aws", zone="aws-z1", capacity=2),
        peer("gcp-0", "gcp", capacity=2),
    ]
    got = picks(balancer(), peers)
    assert got["aws-1"] > 0 and got["gcp-0"] == 0
    # Whole cloud busy: the next tier (other clouds) joins.
    busy = [replace(p, inflight=2) if p.cloud == "aws" else p for p in peers]
    assert picks(balancer(), busy)["gcp-0"] > 0


def test_unhealthy_home_zone_sends_traffic_out_by_overprovisioning() -> None:
    peers = [
        *(peer(f"aws-{i}", "aws", zone="aws-z0", healthy=i != 0) for i in range(2)),
        peer("gcp-0", "gcp"),
        peer("gcp-1", "gcp"),
    ]
    policy = PolicyDocument(version=1, locality=Locality(prefer="cloud"))
    got = picks(balancer(policy), peers, n=4000)
    # aws is half healthy: it keeps 0.5 x 1.4 = 70 % of the traffic, all on aws-1.
    assert got["aws-0"] == 0
    assert got["aws-1"] / 4000 == pytest.approx(0.7, abs=0.03)


def test_a_task_restricted_to_two_clouds_never_runs_in_the_third() -> None:
    rule = RoutingRule(task_kind="gpu/*", allowed_clouds=("aws", "gcp"))
    policy = PolicyDocument(version=1, routing=Routing(rules=(rule,)))
    b = balancer(policy)
    # Even with aws and gcp overloaded and azure idle, and even in panic.
    peers = [
        *(peer(f"aws-{i}", "aws", zone=f"aws-z{i}", inflight=50, healthy=False) for i in range(3)),
        *(peer(f"gcp-{i}", "gcp", inflight=50) for i in range(3)),
        *(peer(f"azure-{i}", "azure") for i in range(3)),
    ]
    got = picks(b, peers, task=TaskRequest(kind="gpu/train"))
    assert not any(name.startswith("azure") for name in got)
    # Other kinds are free to go anywhere.
    assert any(n.startswith("azure") for n in picks(b, peers, task=TaskRequest(kind="cpu")))


def test_task_constraints_drained_clouds_and_tried_peers_are_respected() -> None:
    policy = PolicyDocument(version=1, drained_clouds=("gcp",), locality=Locality(prefer="none"))
    peers = fleet()
    got = picks(balancer(policy), peers, task=TaskRequest(kind="k", allowed_regions=("aws-r1",)))
    assert set(got) <= {"aws-0", "aws-1", "aws-2"}
    tried = TaskRequest(kind="k", allowed_clouds=("aws",), tried=("aws-0", "aws-1"), attempt=2)
    assert set(picks(balancer(policy), peers, n=5, task=tried)) == {"aws-2"}


def test_no_eligible_peer_names_the_rule_that_excluded_everyone() -> None:
    rule = RoutingRule(task_kind="eu/*", allowed_regions=("eu-west-1",))
    b = balancer(PolicyDocument(version=1, routing=Routing(rules=(rule,))))
    result = b.choose(TaskRequest(kind="eu/report"), fleet(), 0.0)
    assert isinstance(result, NoEligiblePeer)
    assert result.reason is NoPeerReason.CONSTRAINTS
    assert "'eu/*'" in result.detail and "eu-west-1" in result.detail
    assert "aws (3)" in result.detail
    empty = b.choose(TaskRequest(kind="x"), [], 0.0)
    assert isinstance(empty, NoEligiblePeer) and "no peers known" in empty.detail


def test_retries_stay_home_when_cross_cloud_failover_is_off() -> None:
    policy = PolicyDocument(
        version=1, failover=Failover(cross_cloud=False), locality=Locality(prefer="none")
    )
    task = TaskRequest(
        kind="k", attempt=2, tried=("aws-0",), failed_clouds=("aws",), first_cloud="aws"
    )
    assert set(picks(balancer(policy), fleet(), n=100, task=task)) == {"aws-1", "aws-2"}


def test_a_retry_leaves_the_cloud_where_the_task_failed() -> None:
    policy = PolicyDocument(version=1, locality=Locality(prefer="cloud"))
    task = TaskRequest(
        kind="k", attempt=2, tried=("aws-0",), failed_clouds=("aws",), first_cloud="aws"
    )
    got = picks(balancer(policy), fleet(), n=100, task=task)
    assert not any(n.startswith("aws") for n in got)


def test_panic_spreads_over_all_when_most_peers_are_unhealthy() -> None:
    policy = PolicyDocument(version=1, locality=Locality(prefer="none"))
    peers = [peer(f"p{i}", healthy=i == 0) for i in range(4)]  # 25 % healthy < 50 %
    b = balancer(policy)
    assert len(picks(b, peers, n=400)) == 4
    first = b.choose(TaskRequest(kind="k"), peers, 0.0)
    assert isinstance(first, Choice) and first.panic
    calm = [peer(f"p{i}", healthy=i != 0) for i in range(4)]  # 75 % healthy
    assert "p0" not in picks(balancer(policy), calm, n=400)


def test_cloud_weight_scales_capacity() -> None:
    clouds = {"aws": CloudSettings(weight=3.0), "azure": CloudSettings(), "gcp": CloudSettings()}
    policy = PolicyDocument(version=1, locality=Locality(prefer="none"), clouds=clouds)
    from skyfleet.policy.model import NoParams, Strategy

    policy = replace(policy, strategy=Strategy(name="weighted", params=NoParams()))
    got = picks(balancer(policy), [peer("a", "aws"), peer("g", "gcp")], n=8000)
    assert got["a"] / 8000 == pytest.approx(0.75, abs=0.02)
