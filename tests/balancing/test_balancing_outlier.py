"""Consecutive-failure ejection of peers and whole clouds."""

from __future__ import annotations

import random

import pytest
from balancing_helpers import fleet

from skyfleet.balancing import Balancer, Choice, Locale, TaskRequest
from skyfleet.balancing.outlier import OutlierDetector, ejection_seconds
from skyfleet.policy.model import Locality, OutlierDetection, PolicyDocument

FLEET = {"aws": 3, "azure": 3, "gcp": 3}


@pytest.mark.parametrize(
    ("base", "times", "expected"), [(30, 1, 30), (30, 2, 60), (30, 10, 300), (30, 25, 300)]
)
def test_ejection_seconds(base: float, times: int, expected: float) -> None:
    assert ejection_seconds(base, times) == expected


def fail(d: OutlierDetector, peer: str, cloud: str, n: int, now: float) -> None:
    for _ in range(n):
        d.record(peer, cloud, False, now, FLEET)


def test_consecutive_failures_eject_and_a_success_resets_the_count() -> None:
    d = OutlierDetector(OutlierDetection(consecutive_failures=3))
    fail(d, "a", "aws", 2, 0.0)
    d.record("a", "aws", True, 0.0, FLEET)
    fail(d, "a", "aws", 2, 0.0)
    assert not d.is_ejected("a", "aws", 0.0)
    fail(d, "a", "aws", 1, 0.0)
    assert d.is_ejected("a", "aws", 0.0)


def test_ejection_grows_with_repeats_and_expires() -> None:
    d = OutlierDetector(OutlierDetection(consecutive_failures=1, base_ejection_seconds=30))
    fail(d, "a", "aws", 1, 0.0)
    assert d.is_ejected("a", "aws", 29.9) and not d.is_ejected("a", "aws", 30.0)
    fail(d, "a", "aws", 1, 30.0)  # straight back in trouble: 2 x base
    assert d.is_ejected("a", "aws", 89.9) and not d.is_ejected("a", "aws", 90.0)


def test_failures_spread_over_a_cloud_eject_the_whole_cloud() -> None:
    d = OutlierDetector(OutlierDetection(consecutive_failures=3))
    for name in ("aws-0", "aws-1", "aws-2"):
        d.record(name, "aws", False, 0.0, FLEET)
    assert d.ejected_clouds(0.0) == ["aws"]
    assert d.is_ejected("aws-7", "aws", 1.0)  # every peer of it, even one never tried
    assert not d.is_ejected("gcp-0", "gcp", 1.0)


def test_max_ejection_percent_caps_ejection() -> None:
    d = OutlierDetector(OutlierDetection(consecutive_failures=1, max_ejection_percent=20.0))
    fail(d, "a", "aws", 1, 0.0)  # 1/9 = 11 %: allowed; the cloud (3/9) is not
    assert d.ejected_peers(0.0) == ["a"] and d.ejected_clouds(0.0) == []
    fail(d, "b", "gcp", 1, 0.0)  # would make 22 %
    assert d.ejected_peers(0.0) == ["a"]


def test_disabled_detection_never_ejects() -> None:
    d = OutlierDetector(OutlierDetection(enabled=False, consecutive_failures=1))
    fail(d, "a", "aws", 10, 0.0)
    assert not d.is_ejected("a", "aws", 0.0)


def test_traffic_leaves_a_dead_cloud_after_its_first_failures() -> None:
    """No gossip, no membership change: only this node's failed attempts to gcp."""
    policy = PolicyDocument(version=1, locality=Locality(prefer="none"))
    b = Balancer(local=Locale(cloud="aws"), policy=policy, rng=random.Random(3))
    peers = fleet()
    sent_to_gcp = 0
    for i in range(300):  # 300 tasks within 3 s, well inside one ejection
        now = i * 0.01
        choice = b.choose(TaskRequest(kind="k"), peers, now)
        assert isinstance(choice, Choice)
        dead = choice.peer.cloud == "gcp"
        sent_to_gcp += dead
        b.record(choice, ok=not dead, now=now + 0.005)
    assert sent_to_gcp == policy.outlier_detection.consecutive_failures
    assert b.outliers.ejected_clouds(3.0) == ["gcp"]
    assert b.outliers.ejected_clouds(3.0 + policy.outlier_detection.base_ejection_seconds) == []


def test_unreachable_peers_are_ejected_at_once_and_two_take_their_cloud() -> None:
    d = OutlierDetector(OutlierDetection())
    d.record("gcp-0", "gcp", False, 0.0, FLEET, unreachable=True)
    assert d.ejected_peers(0.0) == ["gcp-0"] and d.ejected_clouds(0.0) == []
    d.record("gcp-1", "gcp", False, 0.0, FLEET, unreachable=True)
    assert d.ejected_clouds(0.0) == ["gcp"]
    # A success in between breaks the pattern.
    e = OutlierDetector(OutlierDetection())
    e.record("gcp-0", "gcp", False, 0.0, FLEET, unreachable=True)
    e.record("gcp-2", "gcp", True, 0.0, FLEET)
    e.record("gcp-1", "gcp", False, 0.0, FLEET, unreachable=True)
    assert e.ejected_clouds(0.0) == []
