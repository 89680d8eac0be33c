"""A signed policy envelope as text, in the two forms it takes outside memory.

The wire form (compact, keys sorted) is what Fetch serves, what the cloud stores publish
and what the simulator's pulls carry: stable bytes, so an unchanged policy is an unchanged
object and every node serves the same bytes. The file form (indented, keys sorted) is for
the files people read: the adopted copy an agent persists, and the CLI's signed output.
Neither is what the signature covers: that is the document's canonical form
(`skyfleet.policy.canonical`), so either text verifies the same.
"""

from __future__ import annotations

import json
from typing import Any


def wire_text(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"))


def wire_bytes(envelope: dict[str, Any]) -> bytes:
    return wire_text(envelope).encode()


def file_text(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
