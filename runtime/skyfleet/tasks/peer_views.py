"""What a router's balancer sees of its peers: membership's verdict, each peer's last
gossiped status, and the router's own sends since that status was measured.

One rule for the agent's router and the task simulator alike. A status is dated by when
its origin measured it (`NodeStatus.measured_at`, on this node's clock: the wire carries
its age hop by hop), not by when it arrived: a status that spent half a second in gossip
describes the peer half a second ago. The sends this router made since then are not in it,
so those still in flight are added (`PeerLoad.sent_since_status`): sends made before the
measurement are in the report, and forgetting them is what keeps the estimate from
counting a task twice; sends that have come back are on the peer no more. Counting by
time rather than by "sends since the last status arrived" is what matters under lag: a
status that arrives after ten more sends must not wipe those ten from the view; and
leaving out what came back is what matters on a quiet fleet, whose statuses are re-sent
only every 30 s: a peer that ran fifty short tasks since is idle, not fifty deep.

The age leaves out the time a status spent on the wire, hop after hop, so a status is
dated a little after it was measured, by its gossip path's transit; sends made in that
window, and those still on their way when the peer measured, are in neither, and tasks
that finished but whose answer is still on its way back count: the estimate is off by
those, milliseconds' worth on a LAN (the simulator hands statuses over exactly, so it does
not model this error).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from skyfleet.balancing.peers import PeerLoad
from skyfleet.membership.members import MemberView
from skyfleet.membership.messages import MemberState, NodeStatus, StatusReport


class PeerViews:
    def __init__(self, me: str) -> None:
        self._me = me
        self._sends: dict[str, dict[int, float]] = {}
        """Per peer: our attempts to it in flight and not yet covered by a status (by
        token), with their send times, oldest first."""
        self._tokens = itertools.count()

    def sent(self, peer: str, now: float) -> int:
        """We sent `peer` a task attempt at `now` (not called for ourselves); hand the
        token back to `returned` when the attempt ends, however it ends."""
        token = next(self._tokens)
        self._sends.setdefault(peer, {})[token] = now
        return token

    def returned(self, peer: str, token: int) -> None:
        times = self._sends.get(peer)
        if times is not None:
            times.pop(token, None)
            if not times:
                del self._sends[peer]

    def since(self, peer: str, measured_at: float) -> int:
        """Our attempts to `peer` in flight sent at or after `measured_at`; older ones
        are forgotten, since every status we will see from now on is at least that new."""
        times = self._sends.get(peer)
        if not times:
            return 0
        covered = [token for token, at in times.items() if at < measured_at]
        for token in covered:
            del times[token]
        return len(times)

    def views(
        self,
        members: Iterable[MemberView],
        statuses: Mapping[str, tuple[NodeStatus, float]],
        own: StatusReport,
        now: float,
    ) -> list[PeerLoad]:
        """Every member that is up and has advertised an executor, ourselves from `own`
        (exact, measured now). A suspect member stays a candidate but unhealthy: the
        balancer's panic threshold decides whether to use it."""
        views = []
        for m in members:
            if not m.is_up:
                continue
            if m.name == self._me:
                if own.capacity > 0:
                    views.append(peer_load(m, own, now))
                continue
            known = statuses.get(m.name)
            if known is None or known[0].report.capacity == 0:
                continue  # no executor advertised yet
            status = known[0]
            views.append(
                peer_load(
                    m,
                    status.report,
                    status.measured_at,
                    sent_since_status=self.since(m.name, status.measured_at),
                    healthy=m.state == MemberState.ALIVE,
                )
            )
        return views

    def advertisers(
        self,
        handler: str,
        members: Iterable[MemberView],
        statuses: Mapping[str, tuple[NodeStatus, float]],
        own: StatusReport,
    ) -> list[str]:
        """The members, in any state, whose last status says they serve `handler`
        (ourselves from `own`): when no live peer serves a handler, these tell a fleet
        that has it but has lost its servers from a handler no agent has. A member
        forgotten by membership (reaped after `dead`) has taken its status along."""
        names = []
        for m in members:
            known = statuses.get(m.name)
            report = own if m.name == self._me else known[0].report if known else None
            if report is None or report.capacity == 0:
                continue
            handlers = served(report)
            if handlers is None or handler in handlers:
                names.append(m.name)
        return names


    def unheard(
        self, members: Iterable[MemberView], statuses: Mapping[str, tuple[NodeStatus, float]]
    ) -> list[str]:
        """Up members, ourselves aside, whose status has not reached us yet: what a
        router that just joined, or a member just started, does not know of the fleet."""
        return [m.name for m in members
                if m.is_up and m.name != self._me and m.name not in statuses]


def served(report: StatusReport) -> frozenset[str] | None:
    """The handlers of an executor's report; None (every handler) for a report that
    lists none: agents that predate the list send none (an executor that serves no
    handler advertises no capacity and is no candidate at all)."""
    return frozenset(report.handlers) if report.handlers else None


def peer_load(
    member: MemberView,
    report: StatusReport,
    status_at: float,
    *,
    sent_since_status: int = 0,
    healthy: bool = True,
) -> PeerLoad:
    """The balancer's view of a member from a status report (latency in seconds)."""
    return PeerLoad(
        name=member.name,
        cloud=member.meta.cloud,
        region=member.meta.region,
        zone=member.meta.zone,
        capacity=report.capacity,
        inflight=report.inflight,
        queued=report.queued,
        latency_ewma=report.latency_ms / 1000.0,
        error_rate=report.error_rate,
        status_at=status_at,
        sent_since_status=sent_since_status,
        healthy=healthy,
        handlers=served(report),
    )
