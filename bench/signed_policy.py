"""A signed policy envelope from a policy file with some fields changed: what the
namespace benches publish (the local demo builds its own through the stack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skyfleet.policy.signing import sign_policy


def signed_policy(path: Path, version: int, key: bytes, **changes: Any) -> bytes:
    """The document at `path`, at `version`, with `changes` over its top-level fields,
    signed with the private `key` (PEM), as the bytes of an envelope."""
    doc = {**json.loads(path.read_text()), **changes, "version": version}
    return json.dumps(sign_policy(doc, key)).encode()
