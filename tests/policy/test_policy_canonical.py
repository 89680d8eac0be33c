"""Canonical bytes: one encoding per document, and values without one are refused."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from skyfleet.policy.canonical import CanonicalizationError, canonical_bytes, policy_hash
from skyfleet.policy.errors import PolicyValidationError


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"a": {"z": [1, 2.5, True, None], "y": "x"}}, b'{"a":{"y":"x","z":[1,2.5,true,null]}}'),
        ({"name": "Zürich ☁"}, '{"name":"Zürich ☁"}'.encode()),
        ({"q": 'say "hi"\n'}, b'{"q":"say \\"hi\\"\\n"}'),
        ({}, b"{}"),
    ],
)
def test_canonical_bytes(data: dict[str, Any], expected: bytes) -> None:
    assert canonical_bytes(data) == expected


def test_key_order_and_formatting_do_not_change_the_hash() -> None:
    a = {"version": 3, "failover": {"max_attempts": 2, "cross_cloud": True}}
    b = {"failover": {"cross_cloud": True, "max_attempts": 2}, "version": 3}
    assert policy_hash(a) == policy_hash(b)
    assert policy_hash(a) == hashlib.sha256(canonical_bytes(a)).hexdigest()
    assert policy_hash(a) != policy_hash({**a, "version": 4})


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"locality": {"panic_threshold_percent": math.nan}}, "locality.panic_threshold_percent"),
        ({"x": [1.0, math.inf]}, "x[1]"),
        ({"x": -math.inf}, "x"),
        ({"clouds": {1: "aws"}}, "clouds.1"),
        ({"s": "\ud800"}, "s"),
        ({"b": b"bytes"}, "b"),
    ],
)
def test_values_without_one_encoding_are_refused(data: dict[str, Any], path: str) -> None:
    with pytest.raises(CanonicalizationError) as info:
        canonical_bytes(data)
    assert info.value.path == path
    assert isinstance(info.value, PolicyValidationError)
