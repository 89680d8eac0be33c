"""A discrete-event queueing simulator of task routing, driving the agent's own cores.

Theory of operation. Hosts have `slots` servers and one FIFO queue each. Clients arrive
as one Poisson stream at a uniformly random live host (the *origin*), whose own
`Balancer` — built from the policy, one per host, exactly what the agent runs — picks
the host that runs the task. The task travels there (one-way delay if the clouds differ),
waits for a slot, runs, and the result travels back; the origin then `record`s the
outcome, which feeds outlier ejection and learning strategies.

What the origin sees of the others is what an agent sees: every host runs the agent's
membership core (`Swim`, on `skyfleet.sim.cluster`'s virtual network, with the shipped
`MembershipConfig`), publishes its status when its `StatusAdvertiser` says so (checked
every `status_interval`), and the status reaches the others by SWIM's own dissemination
— piggybacked, a share of the retransmits, hop by hop — dated by when it was measured.
The origin's view is `skyfleet.tasks.peer_views`, the router's: the members membership
says are up, their statuses, and the origin's own sends since each was measured that are
still in flight. The
origin always sees itself fresh. With `fresh_status` every view is the truth (the
JSQ-with-fresh-information reference); membership still decides who is a member.

Time. Scenarios are written in mean service times; membership runs in seconds, as
configured. A scenario's `gossip_period` is the status interval in mean service times, so
one mean service time is `status_interval / gossip_period` seconds, and the simulation
runs in seconds throughout (the balancer's clock, the policy's outlier and retry timings,
membership's rounds). Results are converted back to mean service times.

Trouble: `SlowCloud` multiplies service times in one cloud; `CloudFailure` kills every
host of one cloud — its processes stop (running and queued tasks fail back to their
origin, new attempts are refused at connect), membership finds out as agents would, by
probes and suspicion — and restarts them at the event's end, rejoining through a live
host. Each task's retries are the agent's own: a `TaskFlight` (`skyfleet.tasks.flight`)
turns every attempt's verdict into the next request, the shipped failover, never-reached
and retry-budget rules included.

Events are ordered by (time, sequence number), membership's before the tasks' at equal
times: a run is a pure function of the scenario.
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
from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.messages import StatusReport
from skyfleet.policy.model import PolicyDocument
from skyfleet.sim.cluster import SimCluster
from skyfleet.sim.network import SimNetwork
from skyfleet.sim.task_scenario import CloudFailure, Scenario, SlowCloud
from skyfleet.sim.task_service import Draws, draw_service
from skyfleet.status.publication import StatusAdvertiser
from skyfleet.tasks.flight import Done, Retry, Send, TaskFlight
from skyfleet.tasks.peer_views import PeerViews
from skyfleet.tasks.verdict import AttemptResult, Verdict

TASK_KIND = "sim"
_EWMA_ALPHA = 0.1
"""Weight of the newest task in a host's own latency EWMA (what it gossips)."""

_ARRIVE, _DELIVER, _DONE, _REPLY, _STATUS, _EVENT = range(6)

_OK = AttemptResult(Verdict.OK)
_REFUSED = AttemptResult(Verdict.UNREACHABLE, error="connection refused")
_BROKEN = AttemptResult(Verdict.UNREACHABLE, error="the stream broke: the peer crashed")
"""What the agent's attempt sees: a dead peer refuses the connection; one that crashes
mid-task breaks the stream (gRPC UNAVAILABLE, no timeout), which the agent's rule also
counts as never reached."""


@dataclass(slots=True, eq=False)
class _Task:
    origin: int
    origin_epoch: int
    """The origin's process life: if it died since, nobody is left to retry or answer."""
    created: float
    flight: TaskFlight
    send: Send | None = None
    """The attempt in flight."""
    host: int = -1
    epoch: int = 0
    """Incarnation of `host` when the task reached it; a crash makes it stale."""
    service: float = 0.0
    """Service time of the attempt running (seconds)."""
    token: int = -1
    """The origin's `PeerViews` token of the attempt in flight to another host."""


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
    running: dict[_Task, None] = field(default_factory=dict)
    """The tasks in service, in the order they started: a set would order them by memory
    address, and a crash replies to them in this order (the run's determinism)."""
    latency_ewma: float = 0.0
    """Seconds, as the agent's executor keeps it."""
    incoming: int = 0
    """Tasks on the wire towards this host (seen only with fresh status)."""


@dataclass(slots=True)
class TaskRun:
    """Raw outcome of a run, in mean service times; `skyfleet.sim.task_stats` summarises
    it."""

    latency: np.ndarray
    """Response time of each measured task that succeeded (creation to final reply)."""
    service: np.ndarray
    """The service time of each of those tasks' successful attempt: `latency - service`
    is its waiting (queues, the network, failed attempts)."""
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
    pick_age: np.ndarray
    """Seconds: for every attempt of a measured task sent to another host, how old the
    status it was chosen on was (from its measurement): what gossip's delivery costs the
    balancer."""


class _Fleet(SimCluster):
    """The hosts' membership cores; member events reach the hosts' advertisers."""

    def __init__(
        self,
        config: MembershipConfig,
        *,
        seed: int,
        network: SimNetwork,
        on_step: Callable[[str], None],
    ) -> None:
        super().__init__(config, seed=seed, network=network)
        self._on_step = on_step

    def after_step(self, name: str) -> None:
        self._on_step(name)


class TaskSim:
    def __init__(self, scenario: Scenario, policy: PolicyDocument) -> None:
        self.s = scenario
        cfg = scenario.membership
        self.unit = cfg.status_interval / scenario.gossip_period
        """Seconds per mean service time."""
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
        self._index = {h.name: i for i, h in enumerate(self.hosts)}
        self._cross_delay = scenario.cross_cloud_delay * self.unit
        self._duration = scenario.duration * self.unit
        self._warmup = scenario.warmup * self.unit
        cloud_of = {h.name: h.cloud for h in self.hosts}
        network = SimNetwork(
            random.Random(master.getrandbits(64)),
            link_delay=lambda a, b: 0.0 if cloud_of[a] == cloud_of[b] else self._cross_delay,
        )
        self.fleet = _Fleet(
            cfg, seed=master.getrandbits(32), network=network, on_step=self._member_events
        )
        self.fleet.add_converged(
            [h.name for h in self.hosts],
            placement={h.name: (h.cloud, h.region, h.zone) for h in self.hosts},
        )
        self.balancers = [
            Balancer(
                local=Locale(cloud=h.cloud, region=h.region, zone=h.zone),
                policy=policy,
                rng=random.Random(master.getrandbits(64)),
            )
            for h in self.hosts
        ]
        n = len(self.hosts)
        self._policy_version = policy.version
        self._views = [PeerViews(h.name) for h in self.hosts]
        self._advertisers = [StatusAdvertiser(cfg.status_refresh_interval) for _ in range(n)]
        self._events_seen = [0] * n
        self._rng = master
        self._interarrival = Draws(
            lambda g, k: g.exponential(1.0 / scenario.arrival_rate, k), np_rng
        )
        self._service = Draws(lambda g, k: draw_service(scenario.service, g, k), np_rng)
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self._latency: list[float] = []
        self._served: list[float] = []
        self._created: list[float] = []
        self._finished: list[float] = []
        self._sends: list[tuple[float, int]] = []
        self._pick_age: list[float] = []
        self.failed = 0
        self.retries = 0
        self._measured = 0

    # ------------------------------------------------------------------ scheduling

    def _at(self, t: float, kind: int, obj: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, obj))

    def _delay(self, a: int, b: int) -> float:
        return 0.0 if self.hosts[a].cloud == self.hosts[b].cloud else self._cross_delay

    def run(self, drain_factor: float = 0.5) -> TaskRun:
        """Run arrivals until `duration`, then drain for at most `drain_factor` x duration."""
        s, unit = self.s, self.unit
        self._at(self._interarrival.next() * unit, _ARRIVE, None)
        for h in range(len(self.hosts)):
            self._start_status(h)
        for ev in s.events:
            self._at(ev.start * unit, _EVENT, (ev, True))
            self._at(ev.end * unit, _EVENT, (ev, False))
        limit = self._duration * (1.0 + drain_factor)
        handlers: dict[int, Callable[[Any], None]] = {
            _ARRIVE: self._arrive,
            _DELIVER: self._deliver,
            _DONE: self._done,
            _REPLY: self._reply,
            _STATUS: self._status_tick,
            _EVENT: self._event,
        }
        heap, fleet = self._heap, self.fleet
        while heap:
            t, _, kind, obj = heapq.heappop(heap)
            if t > limit:
                break
            fleet.run_until(t)
            self.now = t
            handlers[kind](obj)
            if t > self._duration and self._outstanding() == 0:
                break
        return self._result()

    def _outstanding(self) -> int:
        return self._measured - len(self._latency) - self.failed

    # ------------------------------------------------------------------ status

    def _report(self, h: int) -> StatusReport:
        host = self.hosts[h]
        return StatusReport(
            policy_version=self._policy_version,
            inflight=host.busy,
            queued=len(host.queue),
            capacity=host.slots,
            latency_ms=host.latency_ewma * 1000.0,
        )

    def _start_status(self, h: int) -> None:
        """An agent publishes its status as it starts, then checks it every
        `status_interval` (its own phase)."""
        interval = self.s.membership.status_interval
        self._publish(h, self._report(h))
        self._at(self.now + self._rng.random() * interval, _STATUS, (h, self.hosts[h].epoch))

    def _status_tick(self, payload: tuple[int, int]) -> None:
        h, epoch = payload
        host = self.hosts[h]
        if not host.up or host.epoch != epoch:
            return  # that process is gone; a restarted one runs its own loop
        self._at(self.now + self.s.membership.status_interval, _STATUS, payload)
        report = self._report(h)
        if self._advertisers[h].tick(report, self.now):
            self._send_status(h, report)

    def _publish(self, h: int, report: StatusReport) -> None:
        self._advertisers[h].published(report, self.now)
        self._send_status(h, report)

    def _send_status(self, h: int, report: StatusReport) -> None:
        name = self.hosts[h].name
        self.fleet.emit(name, self.fleet.nodes[name].swim.publish_status(report, self.now))

    def _member_events(self, name: str) -> None:
        h = self._index[name]
        events = self.fleet.nodes[name].events
        advertiser = self._advertisers[h]
        for event in events[self._events_seen[h]:]:
            advertiser.on_member_event(event.kind)
        self._events_seen[h] = len(events)

    # ------------------------------------------------------------------ views

    def _peers(self, origin: int) -> list[PeerLoad]:
        host = self.hosts[origin]
        swim = self.fleet.nodes[host.name].swim
        if not self.s.fresh_status:
            return self._views[origin].views(
                swim.members(), swim.statuses(), self._report(origin), self.now
            )
        views = []
        for m in swim.members():
            if m.is_up:
                peer = self.hosts[self._index[m.name]]
                views.append(
                    PeerLoad(
                        name=peer.name,
                        cloud=peer.cloud,
                        region=peer.region,
                        zone=peer.zone,
                        capacity=peer.slots,
                        inflight=peer.busy,
                        queued=len(peer.queue) + peer.incoming,
                        latency_ewma=peer.latency_ewma,
                        status_at=self.now,
                    )
                )
        return views

    # ------------------------------------------------------------------ handlers

    def _arrive(self, _: object) -> None:
        live = [i for i, h in enumerate(self.hosts) if h.up]
        if self.now <= self._duration:
            self._at(self.now + self._interarrival.next() * self.unit, _ARRIVE, None)
        if not live:
            return
        origin = live[self._rng.randrange(len(live))]
        task = _Task(
            origin,
            self.hosts[origin].epoch,
            self.now,
            TaskFlight(self.balancers[origin], TASK_KIND),
        )
        if self.now >= self._warmup:
            self._measured += 1
        self._dispatch(task)

    def _dispatch(self, task: _Task) -> None:
        o = task.origin
        step = task.flight.next(self._peers(o), self.now)
        if not isinstance(step, Send):
            if task.created >= self._warmup:
                self.failed += 1
            return
        self.retries += step.retry
        h = self._index[step.choice.peer.name]
        task.send = step
        task.host = h
        task.token = -1
        if h != o:
            task.token = self._views[o].sent(self.hosts[h].name, self.now)
            if task.created >= self._warmup:
                self._pick_age.append(self.now - step.choice.peer.status_at)
        self.hosts[h].incoming += 1
        if self.s.series_bin > 0:
            self._sends.append((self.now / self.unit, self._cloud_index[self.hosts[h].cloud]))
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
        host.running[task] = None
        task.service = self._service.next() * self.unit * host.speed
        self._at(self.now + task.service, _DONE, task)

    def _done(self, task: _Task) -> None:
        host = self.hosts[task.host]
        if task.epoch != host.epoch or task not in host.running:
            return  # the host crashed while this task ran; its failure was sent already
        del host.running[task]
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
        if task.token >= 0 and task.origin_epoch == self.hosts[task.origin].epoch:
            self._views[task.origin].returned(self.hosts[task.host].name, task.token)
        end = task.flight.settle(task.send, result, self.now)
        origin = self.hosts[task.origin]
        answered = origin.up and origin.epoch == task.origin_epoch
        if isinstance(end, Done) and answered:
            if task.created >= self._warmup:
                self._latency.append(self.now - task.created)
                self._served.append(task.service)
                self._created.append(task.created)
                self._finished.append(self.now)
            return
        if isinstance(end, Retry) and answered:
            self._dispatch(task)
        elif task.created >= self._warmup:
            # Refused, or the origin died: its caller's call broke with it, whatever the
            # attempt's end, and nobody is left to retry or answer.
            self.failed += 1

    def _event(self, payload: tuple[SlowCloud | CloudFailure, bool]) -> None:
        ev, starting = payload
        hosts = [i for i, h in enumerate(self.hosts) if h.cloud == ev.cloud]
        if isinstance(ev, SlowCloud):
            for i in hosts:
                self.hosts[i].speed = ev.factor if starting else 1.0
        elif starting:
            for i in hosts:
                self._crash(i)
        else:
            for i in hosts:
                self._restart(i)

    def _crash(self, h: int) -> None:
        host = self.hosts[h]
        host.up = False
        host.epoch += 1
        self.fleet.crash(host.name)
        lost = [*host.running, *host.queue]
        host.running.clear()
        host.queue.clear()
        host.busy = 0
        for task in lost:
            self._at(self.now + self._delay(h, task.origin), _REPLY, (task, _BROKEN))

    def _restart(self, h: int) -> None:
        """A new agent process on the host: fresh membership (joining through a live host
        of another cloud), advertiser and views; its balancer and EWMA start over too."""
        host = self.hosts[h]
        host.up = True
        host.epoch += 1
        host.latency_ewma = 0.0
        old = self.fleet.nodes[host.name].swim
        # Through a live host of another cloud, else any live one (of this cloud, restarted
        # a moment ago); the first host back in a fleet that died whole starts it anew.
        live = [x for x in self.hosts if x.up and x is not host]
        live.sort(key=lambda x: x.cloud == host.cloud)
        seeds = tuple(self.fleet.address(x.name) for x in live[:1])
        self.fleet.restart(host.name, seeds=seeds, incarnation=old.incarnation + 1)
        self._events_seen[h] = 0
        self._advertisers[h] = StatusAdvertiser(self.s.membership.status_refresh_interval)
        self._views[h] = PeerViews(host.name)
        old_balancer = self.balancers[h]
        self.balancers[h] = Balancer(
            local=Locale(cloud=host.cloud, region=host.region, zone=host.zone),
            policy=old_balancer.policy,
            rng=random.Random(self._rng.getrandbits(64)),
        )
        self._start_status(h)

    def _result(self) -> TaskRun:
        unit = self.unit
        return TaskRun(
            latency=np.asarray(self._latency) / unit,
            service=np.asarray(self._served) / unit,
            created=np.asarray(self._created) / unit,
            finished=np.asarray(self._finished) / unit,
            failed=self.failed,
            unfinished=self._outstanding(),
            measured=self._measured,
            retries=self.retries,
            sends=np.asarray(self._sends).reshape(-1, 2),
            clouds=self.cloud_names,
            pick_age=np.asarray(self._pick_age),
        )
