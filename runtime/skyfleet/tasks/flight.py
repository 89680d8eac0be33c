"""One task's flight through its attempts: which request to put to the balancer next,
and, on each attempt's verdict, whether to retry, answer or refuse.

This is the failover rule as it ships, and the only copy of it: the agent's router runs
it around real attempts, the task simulator around simulated ones, so the strategy
benchmarks measure exactly the retries the fleet makes. Pure: no clock (callers pass
`now`), no I/O; the `Balancer` it is given is the only state it touches besides its own.

| attempt ended | flight                        | balancer told                        |
|---------------|-------------------------------|--------------------------------------|
| OK            | `Done`                        | success                              |
| CLIENT        | `Refused(INVALID)`            | success (not the peer's fault)       |
| DEADLINE      | `Refused(DEADLINE)`           | nothing (its slot released)          |
| FULL          | `Retry` elsewhere             | success (not the peer's fault)       |
| FAILED        | `Retry` elsewhere             | failure                              |
| UNREACHABLE   | `Retry` avoiding that cloud;  | failure; if never reached, ejected   |
|               | free of the retry budget if   | at once                              |
|               | never reached                 |                                      |
| any but OK,   | `Cut`: no retry, the output   | as its verdict says                  |
| after output  | would repeat                  |                                      |
| was delivered |                               |                                      |

When the balancer finds no peer for the next attempt: a first attempt is refused
UNAVAILABLE, a retry after only FULL peers EXHAUSTED (the caller should back off), any
other retry `Failed` with the last error. The task's deadline, checked before each
attempt, refuses it DEADLINE.

A first attempt whose handler no live peer serves is told apart by the fleet's history
(`advertisers`: the members, in any state, whose last status lists it): if one did, the
fleet has the handler but not now (UNAVAILABLE, naming them); if none did, no agent of
the fleet has it and asking again will not help (INVALID: the caller's mistake, a typo
or a handler not deployed), unless some up members' statuses have not arrived yet
(`unheard`: a router that just joined): the handler may be theirs, so UNAVAILABLE,
naming them, and a retry will know.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from skyfleet.balancing.balancer import (
    Balancer,
    Choice,
    NoEligiblePeer,
    NoPeerReason,
    TaskRequest,
    name_list,
)
from skyfleet.balancing.peers import PeerLoad
from skyfleet.tasks.errors import Refusal
from skyfleet.tasks.verdict import AttemptResult, Verdict


@dataclass(frozen=True, slots=True)
class Send:
    """Run the next attempt on `choice.peer` within `timeout` seconds."""

    choice: Choice
    timeout: float
    timeout_is_deadline: bool
    """The timeout is what is left of the task's deadline, not the policy's per-attempt
    limit: running out of it is the caller's deadline, not the peer's fault."""
    retry: bool
    failover: bool
    """A retry in another cloud than the previous attempt's."""


@dataclass(frozen=True, slots=True)
class Retry:
    """The attempt failed; ask `next` again. `error` names the peer and the cause."""

    verdict: Verdict
    error: str


@dataclass(frozen=True, slots=True)
class Done:
    output: bytes
    peer: str
    attempts: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Cut:
    """A streamed attempt ended badly after some of its output reached the caller:
    running it again would repeat that output, so the task ends here, saying how."""

    verdict: Verdict
    error: str
    peer: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Failed:
    """Out of attempts, retry budget or eligible peers after at least one failure."""

    error: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Refused:
    why: Refusal
    detail: str


class TaskFlight:
    def __init__(
        self,
        balancer: Balancer,
        kind: str,
        *,
        handler: str = "",
        advertisers: Callable[[str], Sequence[str]] = lambda handler: (),
        unheard: Callable[[], Sequence[str]] = lambda: (),
        clouds: Sequence[str] = (),
        regions: Sequence[str] = (),
        session: str = "",
        deadline: float | None = None,
    ) -> None:
        """`handler`: only peers that serve it are tried (empty: any peer). `advertisers`
        is asked, only when no live peer serves it, which members ever advertised it
        (`PeerViews.advertisers`), and then which up members it has no status of yet
        (`PeerViews.unheard`)."""
        self._balancer = balancer
        self._kind = kind
        self._handler = handler
        self._advertisers = advertisers
        self._unheard = unheard
        self._clouds = tuple(clouds)
        self._regions = tuple(regions)
        self._session = session
        self._deadline = deadline
        self.attempt = 0
        """Attempts sent so far."""
        self._tried: list[str] = []
        self._failed_clouds: list[str] = []
        self._first_cloud = ""
        self._last_cloud = ""
        self._last_error = ""
        self._all_full = True
        self._never_reached = False

    def next(self, peers: Sequence[PeerLoad], now: float) -> Send | Failed | Refused:
        """The next attempt, or the task's end if none can be made."""
        if self._deadline is not None and now >= self._deadline:
            return Refused(
                Refusal.DEADLINE,
                f"deadline exceeded after {self.attempt} attempt(s): {self._last_error}",
            )
        request = TaskRequest(
            kind=self._kind,
            handler=self._handler,
            allowed_clouds=self._clouds,
            allowed_regions=self._regions,
            attempt=self.attempt + 1,
            tried=tuple(self._tried),
            failed_clouds=tuple(self._failed_clouds),
            first_cloud=self._first_cloud,
            session=self._session,
            never_reached=self._never_reached,
        )
        choice = self._balancer.choose(request, peers, now)
        if isinstance(choice, NoEligiblePeer):
            return self._no_peer(choice)
        peer = choice.peer
        retry = self.attempt > 0
        failover = retry and peer.cloud != self._last_cloud
        self.attempt += 1
        self._tried.append(peer.name)
        self._first_cloud = self._first_cloud or peer.cloud
        self._last_cloud = peer.cloud
        timeout = self._balancer.policy.failover.per_attempt_timeout_seconds
        by_deadline = self._deadline is not None and self._deadline - now <= timeout
        if self._deadline is not None:
            timeout = min(timeout, self._deadline - now)
        return Send(choice, timeout, by_deadline, retry, failover)

    def settle(
        self, send: Send, result: AttemptResult, now: float, *, delivered: bool = False
    ) -> Retry | Done | Refused | Cut:
        """Close the attempt `send` with its result: the balancer learns of it (always,
        or a retry-budget slot would be held forever), and the flight says what next.
        `delivered`: some of the attempt's output already reached the caller (a stream)."""
        verdict = result.verdict
        peer = send.choice.peer.name
        if verdict is Verdict.DEADLINE:
            self._balancer.release(send.choice)
        else:
            self._balancer.record(
                send.choice, ok=not verdict.blames_peer, now=now,
                unreachable=result.never_reached,
            )
        if delivered and verdict is not Verdict.OK:
            return Cut(verdict, f"{peer}: {result.error}", peer, self.attempt)
        if verdict is Verdict.DEADLINE:
            return Refused(
                Refusal.DEADLINE,
                f"deadline exceeded during attempt {self.attempt} on {peer}: {result.error}",
            )
        if verdict is Verdict.OK:
            return Done(result.output, peer, self.attempt, result.duplicate)
        if verdict is Verdict.CLIENT:
            return Refused(Refusal.INVALID, result.error)
        self._all_full = self._all_full and verdict is Verdict.FULL
        self._last_error = f"{peer}: {result.error}"
        cloud = send.choice.peer.cloud
        if verdict is Verdict.UNREACHABLE and cloud not in self._failed_clouds:
            self._failed_clouds.append(cloud)
        self._never_reached = result.never_reached
        return Retry(verdict, self._last_error)

    def abandon(self, send: Send) -> None:
        """The attempt was cancelled before it ended: no verdict on the peer."""
        self._balancer.release(send.choice)

    def _no_peer(self, why: NoEligiblePeer) -> Failed | Refused:
        if self.attempt == 0 and why.reason is NoPeerReason.HANDLER:
            return self._unserved()
        if self.attempt == 0:
            return Refused(Refusal.UNAVAILABLE, why.detail)
        if self._all_full:
            return Refused(Refusal.EXHAUSTED, f"every peer tried is full: {self._last_error}")
        return Failed(f"{self._last_error}; {why.detail}", self.attempt)

    def _unserved(self) -> Refused:
        handler = self._handler
        last = self._advertisers(handler)
        if not last:
            unheard = self._unheard()
            if unheard:
                return Refused(Refusal.UNAVAILABLE, (
                    f"handler {handler!r}: no agent known to serve it yet (no status so far "
                    f"from {name_list(unheard)})"))
            return Refused(Refusal.INVALID, f"handler {handler!r}: served by no agent of the fleet")
        return Refused(
            Refusal.UNAVAILABLE,
            f"handler {handler!r}: no live agent serves it (last served by {name_list(last)})",
        )
