"""The pooled-queue limit, simulated: every slot of the fleet behind one FIFO queue.

Used where Erlang C is not exact: non-exponential service, and the slow-cloud event
(slots of different speeds; a free slot of the fastest cloud is taken first). No network
delay, no gossip: the best any balancer could do with the same hardware. Failed clouds
are not modelled here (the pooled limit of a failure is the pooled queue of the survivors).
"""

from __future__ import annotations

import heapq
import random
from collections import deque

import numpy as np

from skyfleet.sim.task_scenario import Scenario, SlowCloud
from skyfleet.sim.task_service import Draws, draw_service
from skyfleet.sim.tasks import TaskRun


def simulate_pooled(scenario: Scenario) -> TaskRun:
    """Run `scenario`'s arrivals and service times through one pooled queue."""
    s = scenario
    master = random.Random(s.seed)
    np_rng = np.random.default_rng(master.getrandbits(64))
    interarrival = Draws(lambda g, k: g.exponential(1.0 / s.arrival_rate, k), np_rng)
    service = Draws(lambda g, k: draw_service(s.service, g, k), np_rng)
    names = [c.name for c in s.clouds]
    free = {c.name: c.hosts * c.slots for c in s.clouds}
    slow = [e for e in s.events if isinstance(e, SlowCloud)]

    def speed(cloud: str, t: float) -> float:
        return next((e.factor for e in slow if e.cloud == cloud and e.start <= t < e.end), 1.0)

    waiting: deque[float] = deque()
    done: list[tuple[float, str, float, float]] = []  # (finish, cloud, created, service)
    latency: list[float] = []
    served: list[float] = []
    created: list[float] = []
    finished: list[float] = []
    measured = 0
    t_next = interarrival.next()

    def start(created_at: float, now: float) -> None:
        cloud = min((c for c in names if free[c] > 0), key=lambda c: speed(c, now))
        free[cloud] -= 1
        took = service.next() * speed(cloud, now)
        heapq.heappush(done, (now + took, cloud, created_at, took))

    while t_next <= s.duration or done:
        if done and (t_next > s.duration or done[0][0] <= t_next):
            now, cloud, born, took = heapq.heappop(done)
            free[cloud] += 1
            if born >= s.warmup:
                latency.append(now - born)
                served.append(took)
                created.append(born)
                finished.append(now)
            if waiting:
                start(waiting.popleft(), now)
            continue
        now = t_next
        t_next = now + interarrival.next()
        measured += now >= s.warmup
        if any(free.values()):
            start(now, now)
        else:
            waiting.append(now)
    return TaskRun(
        latency=np.asarray(latency),
        service=np.asarray(served),
        created=np.asarray(created),
        finished=np.asarray(finished),
        failed=0,
        unfinished=0,
        measured=measured,
        retries=0,
        sends=np.zeros((0, 2)),
        clouds=tuple(names),
        pick_age=np.zeros(0),
    )
