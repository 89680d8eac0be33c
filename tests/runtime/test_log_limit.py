"""The log limiter: one line per key per interval, then how many were held back."""

from __future__ import annotations

import pytest

from skyfleet.observability.log_limit import LogLimiter


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([(0.0, "a")], [0]),
        ([(0.0, "a"), (1.0, "a"), (2.0, "a")], [0, None, None]),
        ([(0.0, "a"), (1.0, "a"), (2.0, "a"), (10.0, "a")], [0, None, None, 2]),
        ([(0.0, "a"), (1.0, "b"), (2.0, "a")], [0, 0, None]),
        ([(0.0, "a"), (9.99, "a"), (10.0, "a"), (19.0, "a"), (20.0, "a")], [0, None, 1, None, 1]),
    ],
)
def test_one_line_per_key_per_interval(calls, expected) -> None:
    now = [0.0]
    limiter = LogLimiter(10.0, lambda: now[0])
    got = []
    for at, key in calls:
        now[0] = at
        got.append(limiter.allow(key))
    assert got == expected
