"""Lifeguard local health: a score clamped to [0, max - 1] that scales one's own timeouts."""

from __future__ import annotations

import pytest

from skyfleet.membership.awareness import Awareness
from skyfleet.membership.timing import scale_by_health


def test_memberlist_table() -> None:
    # memberlist TestAwareness: (delta, score, scaled 1 s timeout), applied in order.
    cases = [
        (0, 0, 1.0),
        (-1, 0, 1.0),
        (-10, 0, 1.0),
        (1, 1, 2.0),
        (-1, 0, 1.0),
        (10, 7, 8.0),
        (-1, 6, 7.0),
        (-1, 5, 6.0),
        (-1, 4, 5.0),
        (-1, 3, 4.0),
        (-1, 2, 3.0),
        (-1, 1, 2.0),
        (-1, 0, 1.0),
        (-1, 0, 1.0),
    ]
    awareness = Awareness(8)
    for delta, score, timeout in cases:
        assert awareness.apply_delta(delta) == score
        assert awareness.score == score
        assert scale_by_health(1.0, awareness.score) == pytest.approx(timeout)


@pytest.mark.parametrize("max_multiplier", [1, 2, 8])
def test_score_is_clamped(max_multiplier: int) -> None:
    awareness = Awareness(max_multiplier)
    assert awareness.apply_delta(100) == max_multiplier - 1
    assert awareness.apply_delta(-100) == 0


def test_multiplier_one_disables_lifeguard_health() -> None:
    awareness = Awareness(1)
    for delta in (1, 3, 7):
        assert awareness.apply_delta(delta) == 0
