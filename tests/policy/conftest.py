"""Fixtures for the policy tests: fixed keys (see policy_keys) and a small valid document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy_keys import KeyPair, fixed_key


@pytest.fixture
def old_key() -> KeyPair:
    return fixed_key(1)


@pytest.fixture
def new_key() -> KeyPair:
    return fixed_key(2)


@pytest.fixture
def rogue_key() -> KeyPair:
    """A well-formed key no agent trusts."""
    return fixed_key(3)


@pytest.fixture
def make_doc() -> Callable[..., dict[str, Any]]:
    """A small valid document; keyword arguments replace top-level fields."""

    def make(version: int = 1, **fields: Any) -> dict[str, Any]:
        return {"version": version, "strategy": {"name": "p2c"}, **fields}

    return make
