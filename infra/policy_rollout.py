"""What a policy publication may replace: the rule `pulumi preview` applies to a rollout.

Agents adopt only a newer version, and a version names one document forever (a second
document under a version some agent already runs would split the fleet: agents that have
it keep theirs). So a publication may move forward to a new version, or stay exactly
where it is; anything else is refused before a single agent sees it, naming the key the
operator changes. A rollback is a new version whose document is the old one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Published:
    version: int
    hash: str
    """Canonical hash of the document (skyfleet.policy.canonical.policy_hash)."""


def refusal(current: Published | None, proposed: Published) -> str | None:
    """Why `proposed` may not replace `current` (None: it may); `current` is None for a
    stack that has published nothing yet."""
    if current is None or proposed.version > current.version:
        return None
    if proposed.version == current.version:
        if proposed.hash == current.hash:
            return None
        return (f"skyfleet:policyVersion: version {proposed.version} is already published "
                f"with another document (hash {current.hash[:12]}); a changed document needs "
                f"a new version")
    return (f"skyfleet:policyVersion: {proposed.version} is older than the published "
            f"version {current.version}; agents never go back, so a rollback is a new "
            f"version {current.version + 1} with the old document")
