"""The policy keeper's decisions, pure: which adverts count, which pull to make, and what
a pull's reply means. The agent's keeper (`transport.policy_loop`) and the rollout
simulator (`sim.policy`) both run this, around real Fetch calls and simulated ones.

What a shell does with a `Decision` that adopted a document (persist it, re-advertise
at once) stays the shell's: the one is a file and a gossip message, the other a table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skyfleet.membership.members import MemberView
from skyfleet.membership.messages import StatusReport
from skyfleet.policy.adoption import Decision, PolicyAdopter
from skyfleet.policy.sync import Advert, FetchPlan, PolicySync


def advert(
    holder: str, report: StatusReport, member: MemberView | None, *, own: str
) -> Advert | None:
    """What `holder`'s gossiped status advertises, if it counts: only an up member's,
    never our own, and only once it runs a policy at all."""
    if holder == own or member is None or not member.is_up or report.policy_version <= 0:
        return None
    return Advert(report.policy_version, report.policy_hash, holder)


class PolicyKeeping:
    def __init__(self, adopter: PolicyAdopter, sync: PolicySync) -> None:
        self.adopter = adopter
        self._sync = sync

    @property
    def version(self) -> int:
        doc = self.adopter.current
        return doc.version if doc else 0

    def offer(self, raw: bytes | dict[str, Any], origin: str, now: float) -> Decision:
        return self.adopter.offer(raw, origin, now)

    def next_fetch(self, adverts: Iterable[Advert], now: float) -> FetchPlan | None:
        return self._sync.next_fetch(self.version, adverts, now)

    def served(self, plan: FetchPlan, envelope: bytes, now: float) -> Decision | None:
        """The peer answered the pull with `envelope`. Nothing served counts as a failed
        pull (the peer is skipped for a while), as does a document the adopter refuses
        (that advert is never pulled again); None when there was nothing to offer."""
        if not envelope:
            self._sync.fetch_failed(plan, now)
            return None
        decision = self.offer(envelope, f"peer:{plan.node}", now)
        self._sync.fetched(plan, decision.outcome, now)
        return decision

    def fetch_failed(self, plan: FetchPlan, now: float) -> None:
        """No answer: unreachable, timed out, or no longer a member."""
        self._sync.fetch_failed(plan, now)
