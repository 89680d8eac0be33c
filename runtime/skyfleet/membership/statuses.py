"""Status adverts (a node's load and the policy it runs), carried by membership gossip.

A node stamps its own reports (incarnation, seq) and is the only authority on them;
every other node keeps the newest it heard per node and passes it on. Load reports go
out at a share of the usual retransmits, but at least `status_min_transmits` times (why:
its docstring). A policy version above any advertised so far, or our own adoption of a
new one, is news like membership news: full retransmits, and an early gossip round
(`Gossip.news`).
"""

from __future__ import annotations

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.gossip import Gossip
from skyfleet.membership.messages import NodeStatus, StatusReport


class Statuses:
    def __init__(self, me: str, config: MembershipConfig, gossip: Gossip) -> None:
        self._me = me
        self._cfg = config
        self._gossip = gossip
        self.by_node: dict[str, tuple[NodeStatus, float]] = {}
        """The newest status known per node, with the local time it arrived."""
        self._seq = 0
        self._policy_seen = 0
        """Highest policy version any status advertised so far: a status above it is
        urgent news."""
        self.received = 0
        """Newer statuses of other nodes accepted so far: drivers watch it to react to
        adverts (a newer policy) at once instead of polling."""

    def publish(self, report: StatusReport, incarnation: int, now: float) -> None:
        self._seq += 1
        status = NodeStatus(self._me, incarnation, self._seq, report, measured_at=now)
        previous = self.by_node.get(self._me)
        self.by_node[self._me] = (status, now)
        policy_changed = previous is None or _policy(previous[0]) != _policy(status)
        self._queue(status, now, urgent=policy_changed and report.policy_version > 0)

    def heard(self, status: NodeStatus, now: float) -> None:
        if status.node == self._me:
            return  # we are the authority on ourselves
        known = self.by_node.get(status.node)
        if status.supersedes(known[0] if known else None):
            self.by_node[status.node] = (status, now)
            self.received += 1
            self._queue(status, now, urgent=False)

    def forget(self, node: str) -> None:
        self.by_node.pop(node, None)

    def _queue(self, status: NodeStatus, now: float, *, urgent: bool) -> None:
        newer = status.report.policy_version > self._policy_seen
        self._policy_seen = max(self._policy_seen, status.report.policy_version)
        if urgent or newer:
            self._gossip.news(f"status:{status.node}", status, now)
        else:
            cfg = self._cfg
            self._gossip.queue(
                f"status:{status.node}",
                status,
                share=cfg.status_retransmit_share,
                least=cfg.status_min_transmits,
            )


def _policy(status: NodeStatus) -> tuple[int, str]:
    return status.report.policy_version, status.report.policy_hash
