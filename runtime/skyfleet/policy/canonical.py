"""Canonical bytes of a policy document: what is signed and what is hashed.

Signatures must survive any re-serialisation on the way (pretty-printing by an operator,
gossip through protobuf bytes, a cloud bucket), so they are computed over a canonical form
rather than over whatever bytes arrived: JSON with sorted keys, no insignificant
whitespace, UTF-8 with non-ASCII characters kept as is. Values JSON cannot carry exactly
(NaN, infinities, non-string keys, lone surrogates) are rejected with their path, because a
value with two encodings would make the hash ambiguous.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from skyfleet.policy.errors import PolicyValidationError
from skyfleet.policy.fields import ROOT, join, json_type


class CanonicalizationError(PolicyValidationError):
    """The data holds a value with no single JSON encoding."""


def _check(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalizationError(
                    join(path, key), f"object keys must be strings, got {json_type(key)}"
                )
            _check(item, join(path, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalizationError(path or ROOT, f"{value} has no JSON encoding")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CanonicalizationError(path or ROOT, "string is not valid Unicode") from None
    elif value is not None and not isinstance(value, bool | int):
        raise CanonicalizationError(path or ROOT, f"{json_type(value)} is not a JSON value")


def canonical_bytes(data: dict[str, Any]) -> bytes:
    """The canonical JSON encoding of `data`; raises CanonicalizationError naming the path
    of a value that has none."""
    _check(data, "")
    text = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def policy_hash(data: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical bytes: the identity of a document's content."""
    return hashlib.sha256(canonical_bytes(data)).hexdigest()
