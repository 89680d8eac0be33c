"""Table tests for the SWIM + Lifeguard formulas, against hashicorp/memberlist's own tables
(util_test.go, suspicion_test.go, awareness_test.go) where it has one.

memberlist truncates durations to whole milliseconds; these functions return floats, so the
memberlist figures are compared within a millisecond.
"""

from __future__ import annotations

import math

import pytest

from skyfleet.membership.timing import (
    push_pull_scale,
    remaining_suspicion_time,
    retransmit_limit,
    scale_by_health,
    suspicion_timeout,
)

MS = 1e-3


@pytest.mark.parametrize(
    ("mult", "n", "interval", "expected"),
    [
        # The figures of the brief / DESIGN.md (LAN: mult 4, interval 1 s).
        (4, 10, 1.0, 4.0),
        (4, 1000, 1.0, 12.0),
        # Below 10 nodes the log term is clamped to 1; n = 0 must not hit log10(0).
        (4, 0, 1.0, 4.0),
        (4, 1, 1.0, 4.0),
        (4, 5, 1.0, 4.0),
        (4, 100, 0.5, 4.0),
        # WAN preset: mult 6, interval 5 s.
        (6, 10_000, 5.0, 120.0),
    ],
)
def test_suspicion_timeout(mult: int, n: int, interval: float, expected: float) -> None:
    assert suspicion_timeout(mult, n, interval) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("n", "expected"),
    # memberlist TestSuspicionTimeout: suspicionTimeout(3, n, 1 s) / 3.
    [(5, 1.0), (10, 1.0), (50, 1.698), (100, 2.0), (500, 2.698), (1000, 3.0)],
)
def test_suspicion_timeout_memberlist_table(n: int, expected: float) -> None:
    assert suspicion_timeout(3, n, 1.0) / 3 == pytest.approx(expected, abs=MS)


@pytest.mark.parametrize(
    ("mult", "n", "expected"),
    [
        (4, 10, 8),
        (4, 1000, 16),
        # memberlist TestRetransmitLimit.
        (3, 0, 0),
        (3, 1, 3),
        (3, 99, 6),
        # The step is at powers of ten: log10(n + 1) crosses 1 at n = 9.
        (4, 8, 4),
        (4, 9, 4),
        (4, 99, 8),
        (4, 100, 12),
    ],
)
def test_retransmit_limit(mult: int, n: int, expected: int) -> None:
    assert retransmit_limit(mult, n) == expected


@pytest.mark.parametrize(
    ("confirmations", "k", "elapsed", "expected"),
    # memberlist TestSuspicion_remainingSuspicionTime (min 2 s, max 30 s).
    [
        (0, 3, 0.0, 30.0),
        (1, 3, 2.0, 14.0),
        (2, 3, 3.0, 4.810),
        (3, 3, 4.0, -2.0),
        (4, 3, 5.0, -3.0),
        (5, 3, 10.0, -8.0),
    ],
)
def test_remaining_suspicion_time_memberlist_table(
    confirmations: int, k: int, elapsed: float, expected: float
) -> None:
    remaining = remaining_suspicion_time(confirmations, k, elapsed, 2.0, 30.0)
    assert remaining == pytest.approx(expected, abs=MS)


@pytest.mark.parametrize("confirmations", [0, 1, 5])
def test_remaining_suspicion_time_without_confirmations_expected_is_the_minimum(
    confirmations: int,
) -> None:
    # k = 0: too few members to ever confirm, so the timer never starts long.
    assert remaining_suspicion_time(confirmations, 0, 1.0, 4.0, 24.0) == pytest.approx(3.0)


def test_remaining_suspicion_time_falls_logarithmically_and_never_below_min() -> None:
    k, lo, hi = 4, 4.0, 24.0
    timeouts = [remaining_suspicion_time(c, k, 0.0, lo, hi) for c in range(k + 3)]
    assert timeouts[0] == pytest.approx(hi)
    assert all(a > b for a, b in zip(timeouts[: k + 1], timeouts[1 : k + 1], strict=False))
    assert timeouts[k:] == pytest.approx([lo] * 3)
    # The first confirmation buys the most: log, not linear.
    assert timeouts[0] - timeouts[1] > timeouts[1] - timeouts[2] > timeouts[2] - timeouts[3]
    assert timeouts[1] == pytest.approx(hi - math.log(2) / math.log(k + 1) * (hi - lo))


@pytest.mark.parametrize(
    ("n", "multiplier"),
    # memberlist TestPushPullScale: x1 up to 32 nodes, x2 to 64, x3 to 128.
    [(0, 1), (1, 1), (32, 1), (33, 2), (64, 2), (65, 3), (128, 3), (129, 4), (10_000, 10)],
)
def test_push_pull_scale(n: int, multiplier: int) -> None:
    assert push_pull_scale(30.0, n) == pytest.approx(30.0 * multiplier)


def test_push_pull_scale_threshold_is_a_parameter() -> None:
    assert push_pull_scale(1.0, 8, threshold=4) == pytest.approx(2.0)
    assert push_pull_scale(1.0, 8, threshold=8) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("duration", "score", "expected"),
    [(1.0, 0, 1.0), (1.0, 1, 2.0), (1.0, 7, 8.0), (0.5, 3, 2.0), (0.2, 7, 1.6)],
)
def test_scale_by_health(duration: float, score: int, expected: float) -> None:
    assert scale_by_health(duration, score) == pytest.approx(expected)
