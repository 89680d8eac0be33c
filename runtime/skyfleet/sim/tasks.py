"""A discrete-event queueing simulator of task routing, driving the real `Balancer`.

Theory of operation. Hosts have `slots` servers and one FIFO queue each. Clients arrive
as one Poisson stream at a uniformly random live host (the *origin*), whose own
`Balancer` — built from the policy, one per host, exactly what the agent runs — picks
the host that runs the task. The task travels there (one-way delay if the clouds differ),
waits for a slot, runs, and the result travels back; the origin then `record`s the
outcome, which feeds outlier ejection and learning strategies. A failed attempt is
retried by asking the balancer again with the attempt number raised.

What the origin sees of the others is gossip: every `gossip_period` each host publishes
(inflight, queued, latency EWMA); between two publications the origin adds its own sends
since the last one (`PeerLoad.sent_since_status`). The origin always sees itself fresh.
With `fresh_status` every view is the truth (the JSQ-with-fresh-information reference).

Trouble: `SlowCloud` multiplies service times in one cloud; `CloudFailure` kills every
host of one cloud (running and queued tasks fail back to their origin, new attempts are
refused at connect), and membership drops the dead hosts only after `detect_seconds`,
so until then only failures and outlier ejection move traffic away. Each task's retries
are the agent's own: a `TaskFlight` (`skyfleet.tasks.flight`) turns every attempt's
verdict into the next request, the shipped failover, never-reached and retry-budget
rules included.

Events are ordered by (time, sequence number): a run is a pure function of the scenario.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyfleet.balancing import Balancer, Locale, PeerLoad
from skyfleet.policy.model import PolicyDocument
from skyfleet.sim.task_scenario import CloudFailure, Scenario, SlowCloud
from skyfleet.sim.task_service import Draws, draw_service
from skyfleet.tasks.flight import Done, Retry, Send, TaskFlight
from skyfleet.tasks.verdict import AttemptResult, Verdict

TASK_KIND = "sim"
_EWMA_ALPHA = 0.1
"""Weight of the newest task in a host's own latency EWMA (what it gossips)."""

_ARRIVE, _DELIVER, _DONE, _REPLY, _GOSSIP, _EVENT = range(6)

_OK = AttemptResult(Verdict.OK)
_REFUSED = AttemptResult(Verdict.UNREACHABLE, error="connection refused")
_BROKEN = AttemptResult(Verdict.UNREACHABLE, error="the stream broke: the peer crashed")
"""What the agent's attempt sees: a dead peer refuses the connection; one that crashes
mid-task breaks the stream (gRPC UNAVAILABLE, no timeout), which the agent's rule also
counts as never reached."""


@dataclass(slots=True, eq=False)
class _Task:
    origin: int
    created: float
    flight: TaskFlight
    send: Send | None = None
    """The attempt in flight."""
    host: int = -1
    epoch: int = 0
    """Incarnation of `host` when the task reached it; a crash makes it stale."""
    started: float = 0.0


@dataclass(slots=True)
class _Host:
    name: str
    cloud: str
    region: str
    zone: str
    slots: int
    speed: float = 1.0
    up: bool = True
    epoch: int = 0
    busy: int = 0
    queue: deque[_Task] = field(default_factory=deque)
    running: set[_Task] = field(default_factory=set)
    latency_ewma: float = 0.0
    incoming: int = 0
    """Tasks on the wire towards this host (seen only with fresh status)."""


@dataclass(slots=True)
class TaskRun:
    """Raw outcome of a run; `skyfleet.sim.task_stats` summarises it."""

    latency: np.ndarray
    """Response time of each measured task that succeeded (creation to final reply)."""
    created: np.ndarray
    finished: np.ndarray
    failed: int
    """Measured tasks that ran out of attempts, budget or eligible peers."""
    unfinished: int
    """Measured tasks still in the system when the drain limit was hit."""
    measured: int
    retries: int
    sends: np.ndarray
    """(time, cloud index) of every attempt sent: the traffic share over time."""
    clouds: tuple[str, ...]


class TaskSim:
    def __init__(self, scenario: Scenario, policy: PolicyDocument) -> None:
        self.s = scenario
        self.now = 0.0
        master = random.Random(scenario.seed)
        np_rng = np.random.default_rng(master.getrandbits(64))
        self.hosts: list[_Host] = []
        for spec in scenario.clouds:
            for i in range(spec.hosts):
                zone = f"{spec.name}-z{i % spec.zones}"
                name = f"{spec.name}-{i}"
                self.hosts.append(_Host(name, spec.name, f"{spec.name}-r1", zone, spec.slots))
        self.cloud_names = tuple(c.name for c in scenario.clouds)
        self._cloud_index = {c: i for i, c in enumerate(self.cloud_names)}
        n = len(self.hosts)
        self.balancers = [
            Balancer(
                local=Locale(cloud=h.cloud, region=h.region, zone=h.zone),
                policy=policy,
                rng=random.Random(master.getrandbits(64)),
            )
            for h in self.hosts
        ]
        self.members: list[int] = list(range(n))
        self._index = {h.name: i for i, h in enumerate(self.hosts)}
        self._rng = master
        self._interarrival = Draws(
            lambda g, k: g.exponential(1.0 / scenario.arrival_rate, k), np_rng
        )
        self._service = Draws(lambda g, k: draw_service(scenario.service, g, k), np_rng)
        # Gossip state: the last published status of each host, and each origin's sends
        # since it; `_version` changes on every publication so cached views expire.
        self._snap: list[tuple[int, int, float, float]] = [(0, 0, 0.0, 0.0)] * n
        self._version = [0] * n
        self._own = [[0] * n for _ in range(n)]
        self._cache: list[list[tuple[int, int, PeerLoad] | None]] = [[None] * n for _ in range(n)]
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self._latency: list[float] = []
        self._created: list[float] = []
        self._finished: list[float] = []
        self._sends: list[tuple[float, int]] = []
        self.failed = 0
        self.retries = 0
        self._measured = 0

    # ------------------------------------------------------------------ scheduling

    def _at(self, t: float, kind: int, obj: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, obj))

    def _delay(self, a: int, b: int) -> float:
        return 0.0 if self.hosts[a].cloud == self.hosts[b].cloud else self.s.cross_cloud_delay

    def run(self, drain_factor: float = 0.5) -> TaskRun:
        """Run arrivals until `duration`, then drain for at most `drain_factor` x duration."""
        s = self.s
        self._at(self._interarrival.next(), _ARRIVE, None)
        for h in range(len(self.hosts)):
            self._at(self._rng.random() * s.gossip_period, _GOSSIP, h)
        for ev in s.events:
            self._at(ev.start, _EVENT, (ev, True))
            self._at(ev.end, _EVENT, (ev, False))
        limit = s.duration * (1.0 + drain_factor)
        handlers: dict[int, Callable[[Any], None]] = {
            _ARRIVE: self._arrive,
            _DELIVER: self._deliver,
            _DONE: self._done,
            _REPLY: self._reply,
            _GOSSIP: self._gossip,
            _EVENT: self._event,
        }
        heap = self._heap
        while heap:
            t, _, kind, obj = heapq.heappop(heap)
            if t > limit:
                break
            self.now = t
            handlers[kind](obj)
            if t > s.duration and self._outstanding() == 0:
                break
        return self._result()

    def _outstanding(self) -> int:
        return self._measured - len(self._latency) - self.failed

    # ------------------------------------------------------------------ views

    def _view(self, origin: int, h: int) -> PeerLoad:
        host = self.hosts[h]
        if h == origin or self.s.fresh_status:
            return PeerLoad(
                name=host.name,
                cloud=host.cloud,
                region=host.region,
                zone=host.zone,
                capacity=host.slots,
                inflight=host.busy,
                queued=len(host.queue) + (host.incoming if self.s.fresh_status else 0),
                latency_ewma=host.latency_ewma,
                status_at=self.now,
            )
        own = self._own[origin][h]
        cached = self._cache[origin][h]
        if cached is not None and cached[0] == self._version[h] and cached[1] == own:
            return cached[2]
        inflight, queued, at, ewma = self._snap[h]
        view = PeerLoad(
            name=host.name,
            cloud=host.cloud,
            region=host.region,
            zone=host.zone,
            capacity=host.slots,
            inflight=inflight,
            queued=queued,
            latency_ewma=ewma,
            status_at=at,
            sent_since_status=own,
        )
        self._cache[origin][h] = (self._version[h], own, view)
        return view

    # ------------------------------------------------------------------ handlers

    def _arrive(self, _: object) -> None:
        live = [i for i, h in enumerate(self.hosts) if h.up]
        if self.now <= self.s.duration:
            self._at(self.now + self._interarrival.next(), _ARRIVE, None)
        if not live:
            return
        origin = live[self._rng.randrange(len(live))]
        task = _Task(origin, self.now, TaskFlight(self.balancers[origin], TASK_KIND))
        if self.now >= self.s.warmup:
            self._measured += 1
        self._dispatch(task)

    def _dispatch(self, task: _Task) -> None:
        o = task.origin
        peers = [self._view(o, h) for h in self.members]
        step = task.flight.next(peers, self.now)
        if not isinstance(step, Send):
            if task.created >= self.s.warmup:
                self.failed += 1
            return
        self.retries += step.retry
        h = self._index[step.choice.peer.name]
        task.send = step
        task.host = h
        self._own[o][h] += 1
        self.hosts[h].incoming += 1
        if self.s.series_bin > 0:
            self._sends.append((self.now, self._cloud_index[self.hosts[h].cloud]))
        self._at(self.now + self._delay(o, h), _DELIVER, task)

    def _deliver(self, task: _Task) -> None:
        host = self.hosts[task.host]
        host.incoming -= 1
        if not host.up:
            self._at(self.now + self._delay(task.host, task.origin), _REPLY, (task, _REFUSED))
            return
        task.epoch = host.epoch
        if host.busy < host.slots:
            self._start(host, task)
        else:
            host.queue.append(task)

    def _start(self, host: _Host, task: _Task) -> None:
        host.busy += 1
        host.running.add(task)
        task.started = self.now
        self._at(self.now + self._service.next() * host.speed, _DONE, task)

    def _done(self, task: _Task) -> None:
        host = self.hosts[task.host]
        if task.epoch != host.epoch or task not in host.running:
            return  # the host crashed while this task ran; its failure was sent already
        host.running.discard(task)
        host.busy -= 1
        if host.queue:
            self._start(host, host.queue.popleft())
        assert task.send is not None
        local = self.now - task.send.choice.sent_at - self._delay(task.origin, task.host)
        host.latency_ewma += _EWMA_ALPHA * (local - host.latency_ewma)
        self._at(self.now + self._delay(task.host, task.origin), _REPLY, (task, _OK))

    def _reply(self, payload: tuple[_Task, AttemptResult]) -> None:
        task, result = payload
        assert task.send is not None
        end = task.flight.settle(task.send, result, self.now)
        if isinstance(end, Done):
            if task.created >= self.s.warmup:
                self._latency.append(self.now - task.created)
                self._created.append(task.created)
                self._finished.append(self.now)
            return
        if isinstance(end, Retry) and self.hosts[task.origin].up:
            self._dispatch(task)
        elif task.created >= self.s.warmup:
            # Refused, or the origin died too: nobody is left to retry or answer.
            self.failed += 1

    def _gossip(self, h: int) -> None:
        host = self.hosts[h]
        self._at(self.now + self.s.gossip_period, _GOSSIP, h)
        if not host.up:
            return
        self._snap[h] = (host.busy, len(host.queue), self.now, host.latency_ewma)
        self._version[h] += 1
        for own in self._own:
            own[h] = 0

    def _event(self, payload: tuple[SlowCloud | CloudFailure | _Membership, bool]) -> None:
        ev, starting = payload
        if isinstance(ev, _Membership):
            if ev.alive:
                self.members = sorted(set(self.members) | set(ev.hosts))
            else:
                self.members = [m for m in self.members if m not in ev.hosts]
            return
        hosts = [i for i, h in enumerate(self.hosts) if h.cloud == ev.cloud]
        if isinstance(ev, SlowCloud):
            for i in hosts:
                self.hosts[i].speed = ev.factor if starting else 1.0
        elif starting:
            for i in hosts:
                self._crash(i)
            self._at(self.now + ev.detect_seconds, _EVENT, (_Membership(tuple(hosts), False), True))
        else:
            for i in hosts:
                self.hosts[i].up = True
            self._at(self.now + ev.rejoin_seconds, _EVENT, (_Membership(tuple(hosts), True), True))

    def _crash(self, h: int) -> None:
        host = self.hosts[h]
        host.up = False
        host.epoch += 1
        lost = [*host.running, *host.queue]
        host.running.clear()
        host.queue.clear()
        host.busy = 0
        for task in lost:
            self._at(self.now + self._delay(h, task.origin), _REPLY, (task, _BROKEN))

    def _result(self) -> TaskRun:
        return TaskRun(
            latency=np.asarray(self._latency),
            created=np.asarray(self._created),
            finished=np.asarray(self._finished),
            failed=self.failed,
            unfinished=self._outstanding(),
            measured=self._measured,
            retries=self.retries,
            sends=np.asarray(self._sends).reshape(-1, 2),
            clouds=self.cloud_names,
        )


@dataclass(frozen=True, slots=True)
class _Membership:
    """Internal event: membership drops (`alive` False) or re-adds `hosts`."""

    hosts: tuple[int, ...]
    alive: bool
