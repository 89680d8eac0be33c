"""The `Balancer`: one node's routing decision for one task attempt, under the policy in
force. The agent and the simulator both drive it; it does no I/O.

Theory of operation. `choose(task, peers, now)` narrows the candidates in a fixed order,
each step with its own reason when nothing is left:

1. Attempts: the attempt number must be within `failover.max_attempts`, and a retry
   needs room in the retry budget.
2. Constraints — never relaxed, not even in panic: the task's handler (a peer must serve
   it; when none does the reason says so, apart from the other constraints), drained
   clouds, the first routing rule matching the task kind, the task's own allowed
   clouds/regions, peers this task already tried, and (with `failover.cross_cloud` off)
   the cloud of the first attempt.
3. Retries leave the clouds where this task already failed, if any other allowed cloud
   has a peer: traffic leaves a dead cloud on its first failures, not when gossip says so.
4. Health: membership's verdict (`PeerLoad.healthy`) and outlier ejection. When fewer
   than `panic_threshold_percent` of the eligible peers are healthy the node panics and
   ignores health, rather than crushing the few peers left (Envoy).
5. Locality (`skyfleet.balancing.locality`): the narrowest tier by health share, widened
   while busier than the spill threshold.
6. The strategy picks among what is left; but a task that names a session, under a policy
   whose `sessions.affinity` is on, goes to its session's peer on the hash ring of what is
   left (`skyfleet.balancing.affinity`), and a retry to the next peer on that ring. Such a
   task's locality draw (step 5) comes from its session too, so that while tiers split
   traffic by health each session stays in one.

`record(choice, ok=..., now=...)` closes the attempt: it frees the retry-budget slot,
feeds outlier detection and lets learning strategies observe the latency.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from skyfleet.balancing import affinity, locality
from skyfleet.balancing.outlier import OutlierDetector
from skyfleet.balancing.peers import Capacities, Locale, PeerLoad
from skyfleet.balancing.retry_budget import RetryBudget
from skyfleet.balancing.strategy_factory import make_strategy
from skyfleet.policy.model import PolicyDocument, RoutingRule


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRequest:
    """One attempt to place a task, as the router describes it."""

    kind: str
    handler: str = ""
    """The handler the task runs: only peers that serve it are eligible; empty = any
    (callers that place work by kind alone, whose peers all serve it)."""
    allowed_clouds: tuple[str, ...] = ()
    """The task's own restriction on top of the policy's routing rules; empty = any."""
    allowed_regions: tuple[str, ...] = ()
    attempt: int = 1
    """1 for the first try."""
    tried: tuple[str, ...] = ()
    """Peers earlier attempts of this task went to; never picked again."""
    failed_clouds: tuple[str, ...] = ()
    """Clouds where earlier attempts failed; a retry avoids them while it can."""
    first_cloud: str = ""
    """Cloud of the first attempt: retries stay there when cross-cloud failover is off."""
    session: str = ""
    """Tasks naming the same session go to the same peer while the policy asks for
    affinity (`sessions.affinity`); empty: none."""
    never_reached: bool = False
    """The previous attempt never reached its peer (connection refused, no route). Such a
    retry is not charged to the retry budget: the budget exists to stop retries from
    piling extra work onto struggling peers, and a refused connection did no work
    anywhere — while failing over from a dead cloud is the very retry the fleet is for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """The peer picked for an attempt; hand it back to `Balancer.record`."""

    peer: PeerLoad
    attempt: int
    sent_at: float
    tier: int
    """Locality tier the pick started from (0 = the preferred domain)."""
    panic: bool
    """Health was ignored because too few eligible peers were healthy."""
    budgeted: bool = False
    """This attempt holds a retry-budget retry slot."""


class NoPeerReason(StrEnum):
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    RETRY_BUDGET = "retry_budget"
    CONSTRAINTS = "constraints"
    HANDLER = "handler"
    """No peer in view serves the task's handler, whatever the other constraints."""
    NONE_HEALTHY = "none_healthy"


@dataclass(frozen=True, slots=True)
class NoEligiblePeer:
    """Why no peer can take the attempt; `detail` is a sentence for logs and clients."""

    reason: NoPeerReason
    detail: str


class Balancer:
    def __init__(self, *, local: Locale, policy: PolicyDocument, rng: random.Random) -> None:
        self._local = local
        self._rng = rng
        self._outliers = OutlierDetector(policy.outlier_detection)
        self._budget = RetryBudget(policy.failover.retry_budget)
        self._last_peers: Sequence[PeerLoad] = ()
        self._policy = policy
        self._apply(policy)

    @property
    def policy(self) -> PolicyDocument:
        return self._policy

    @property
    def retry_budget(self) -> RetryBudget:
        return self._budget

    @property
    def outliers(self) -> OutlierDetector:
        return self._outliers

    def set_policy(self, policy: PolicyDocument) -> None:
        """Adopt a new policy. Outlier ejections and attempts in flight carry over; the
        strategy is rebuilt (and forgets what it learned) only if its settings changed."""
        old = self._policy
        self._policy = policy
        self._outliers.reconfigure(policy.outlier_detection)
        self._budget.reconfigure(policy.failover.retry_budget)
        if policy.strategy != old.strategy or policy.clouds != old.clouds:
            self._apply(policy)
        elif policy.sessions != old.sessions:
            self._affinity = affinity.for_policy(policy.sessions, self._capacities)
        self._rules.clear()

    def _apply(self, policy: PolicyDocument) -> None:
        weights = {name: c.weight for name, c in policy.clouds.items()}
        self._costs = {name: c.relative_cost for name, c in policy.clouds.items()}
        self._capacities = Capacities(weights)
        self.strategy = make_strategy(policy.strategy, weights=weights, rng=self._rng)
        self._affinity = affinity.for_policy(policy.sessions, self._capacities)
        self._rules: dict[str, RoutingRule | None] = {}

    def _capacity(self, peer: PeerLoad) -> float:
        return self._capacities.of(peer)

    def choose(
        self, task: TaskRequest, peers: Sequence[PeerLoad], now: float
    ) -> Choice | NoEligiblePeer:
        """Pick the peer for this attempt, or say why none can take it."""
        failover = self._policy.failover
        if task.attempt > failover.max_attempts:
            return NoEligiblePeer(
                NoPeerReason.ATTEMPTS_EXHAUSTED,
                f"task {task.kind!r}: attempt {task.attempt} exceeds failover.max_attempts "
                f"({failover.max_attempts})",
            )
        retry = task.attempt > 1
        budgeted = retry and not task.never_reached
        if budgeted and not self._budget.can_retry():
            return NoEligiblePeer(
                NoPeerReason.RETRY_BUDGET,
                f"task {task.kind!r}: retry budget spent ({self._budget.active_retries} "
                f"retries of {self._budget.active} attempts in flight)",
            )
        self._last_peers = peers
        eligible = self._eligible(task, peers)
        if not eligible:
            if task.handler and peers and not any(p.serves(task.handler) for p in peers):
                return NoEligiblePeer(
                    NoPeerReason.HANDLER,
                    f"task {task.kind!r}: no live peer serves handler {task.handler!r}",
                )
            return NoEligiblePeer(NoPeerReason.CONSTRAINTS, self._explain(task, peers))
        if retry and task.failed_clouds:
            elsewhere = [p for p in eligible if p.cloud not in task.failed_clouds]
            eligible = elsewhere or eligible
        healthy = [
            p for p in eligible if p.healthy and not self._outliers.is_ejected(p.name, p.cloud, now)
        ]
        panic = 100.0 * len(healthy) < self._policy.locality.panic_threshold_percent * len(eligible)
        if panic:
            healthy = eligible
        if not healthy:
            return NoEligiblePeer(
                NoPeerReason.NONE_HEALTHY,
                f"task {task.kind!r}: all {len(eligible)} eligible peers are ejected or "
                "suspect, and the panic threshold is 0",
            )
        sticky = self._affinity if task.session else None
        pool, tier = self._locality(eligible, healthy, task.session if sticky else "")
        if sticky is None:
            peer = self.strategy.pick(pool, now)
        else:
            peer = sticky.pick(task.session, pool)
        self._budget.started(retry=budgeted)
        return Choice(
            peer=peer, attempt=task.attempt, sent_at=now, tier=tier, panic=panic, budgeted=budgeted
        )

    def record(self, choice: Choice, *, ok: bool, now: float, unreachable: bool = False) -> None:
        """The attempt in `choice` ended (`ok` False: failed or timed out). Set
        `unreachable` when the peer was never reached (connection refused, no route):
        outlier detection then ejects it at once."""
        self._budget.finished(retry=choice.budgeted)
        peer = choice.peer
        # The fleet size per cloud (for the max-ejection cap) is only needed on failures.
        fleet = Counter(p.cloud for p in self._last_peers) if not ok else Counter()
        self._outliers.record(peer.name, peer.cloud, ok, now, fleet, unreachable=unreachable)
        self.strategy.observe(peer, now - choice.sent_at, ok, now)

    def release(self, choice: Choice) -> None:
        """The attempt ended with no verdict on the peer (the task's own deadline, a
        cancelled caller): only its retry-budget slot is freed."""
        self._budget.finished(retry=choice.budgeted)

    def _rule(self, kind: str) -> RoutingRule | None:
        if kind not in self._rules:
            self._rules[kind] = self._policy.routing.rule_for(kind)
        return self._rules[kind]

    def _eligible(self, task: TaskRequest, peers: Sequence[PeerLoad]) -> list[PeerLoad]:
        rule = self._rule(task.kind)
        drained = self._policy.drained_clouds
        same_cloud = "" if self._policy.failover.cross_cloud else task.first_cloud
        return [
            p
            for p in peers
            if (not task.handler or p.serves(task.handler))
            and p.cloud not in drained
            and (rule is None or rule.allows(p.cloud, p.region))
            and (not task.allowed_clouds or p.cloud in task.allowed_clouds)
            and (not task.allowed_regions or p.region in task.allowed_regions)
            and (not same_cloud or p.cloud == same_cloud)
            and p.name not in task.tried
        ]

    def _explain(self, task: TaskRequest, peers: Sequence[PeerLoad]) -> str:
        if not peers:
            return f"task {task.kind!r}: no peers known"
        clouds = ", ".join(f"{c} ({n})" for c, n in sorted(Counter(p.cloud for p in peers).items()))
        limits = []
        if task.handler:
            servers = [p.name for p in peers if p.serves(task.handler)]
            if len(servers) < len(peers):
                limits.append(f"handler {task.handler!r} served by {name_list(servers)} only")
        if self._policy.drained_clouds:
            limits.append(f"drained clouds {', '.join(self._policy.drained_clouds)}")
        rule = self._rule(task.kind)
        if rule is not None:
            limits.append(
                f"routing rule {rule.task_kind!r} allows clouds "
                f"{', '.join(rule.allowed_clouds) or 'any'}, regions "
                f"{', '.join(rule.allowed_regions) or 'any'}"
            )
        if task.allowed_clouds or task.allowed_regions:
            limits.append(
                f"task allows clouds {', '.join(task.allowed_clouds) or 'any'}, regions "
                f"{', '.join(task.allowed_regions) or 'any'}"
            )
        if task.tried:
            limits.append(f"already tried {', '.join(task.tried)}")
        if task.first_cloud and not self._policy.failover.cross_cloud:
            limits.append(f"cross-cloud failover is off (first attempt in {task.first_cloud})")
        return f"task {task.kind!r}: no eligible peer among {clouds}: " + "; ".join(limits)

    def _locality(
        self, eligible: list[PeerLoad], healthy: list[PeerLoad], session: str
    ) -> tuple[list[PeerLoad], int]:
        """The pool and its tier; the tier drawn from `session` if it is not empty."""
        loc = self._policy.locality
        if loc.prefer == "none":
            return healthy, 0
        all_tiers = locality.tiers(self._local, eligible, loc.prefer, self._costs)
        ok = {p.name for p in healthy}
        healthy_tiers = [[p for p in t if p.name in ok] for t in all_tiers]
        u = affinity.tier_draw(session) if session else self._rng.random()
        pool, tier = locality.select(all_tiers, healthy_tiers, loc, self._capacity, u)
        return pool, tier


def name_list(names: Sequence[str], shown: int = 5) -> str:
    """Names for a message, the first few of a long list: a refusal in a large fleet
    should name examples, not every peer."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
