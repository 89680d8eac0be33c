"""The phases of one simulated run, each driving a `SimCluster` only through its public
API and the cores only through `Swim.handle`, the way a received packet would.

Events are drained from the nodes as the run goes (`EventTally`): a 10,000-node join
emits 10^8 JOIN events, which must not sit in memory at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from skyfleet.membership import EventKind, MemberState, Packet
from skyfleet.membership.messages import Suspect
from skyfleet.membership.timing import push_pull_scale, suspicion_timeout
from skyfleet.sim import SimCluster


@dataclass(slots=True)
class EventTally:
    """FAILED and SUSPECT events, split into true ones (about a node crashed before the
    event) and false ones (about a node that was alive)."""

    crashed_at: dict[str, float] = field(default_factory=dict)
    false_failed: list[tuple[str, str, float]] = field(default_factory=list)
    """(observer, subject, virtual time) of each FAILED event about a live node."""
    false_suspects: int = 0
    failed_at: dict[str, dict[str, float]] = field(default_factory=dict)
    """subject -> observer -> time the observer marked the (crashed) subject dead."""

    def drain(self, cluster: SimCluster) -> None:
        for observer, node in cluster.nodes.items():
            if not node.events:
                continue
            for ev in node.events:
                if ev.kind not in (EventKind.FAILED, EventKind.SUSPECT):
                    continue
                crashed = self.crashed_at.get(ev.node)
                true = crashed is not None and ev.at >= crashed
                if ev.kind is EventKind.SUSPECT:
                    self.false_suspects += not true
                elif true:
                    self.failed_at.setdefault(ev.node, {})[observer] = ev.at
                else:
                    self.false_failed.append((observer, ev.node, ev.at))
            node.events.clear()


def advance_until(
    cluster: SimCluster,
    tally: EventTally,
    done: Callable[[], bool],
    timeout: float,
    step: float,
    on_step: Callable[[float], None] | None = None,
) -> float | None:
    """Run in `step`s until `done()`; the virtual time it took, or None after `timeout`.
    `on_step(elapsed)` observes the fleet before each check (the dissemination curve)."""
    start = cluster.now
    while True:
        tally.drain(cluster)
        if on_step is not None:
            on_step(cluster.now - start)
        if done():
            return cluster.now - start
        if cluster.now - start >= timeout:
            return None
        cluster.run_for(step)


# ---------------------------------------------------------------------- 1. build


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinPlan:
    seeds: int = 8
    """Nodes 0..seeds-1 form the seed group (joined through node 0); every later node
    joins through one of them, round robin, so no single seed answers every join."""
    batch: int = 500
    """Nodes started together; a batch starts every `gap` virtual seconds."""
    gap: float = 1.0
    timeout: float = 600.0
    """Virtual seconds for the whole fleet to converge."""


def node_names(n: int) -> list[str]:
    return [f"n{i:05d}" for i in range(n)]


def fully_converged(cluster: SimCluster, names: list[str]) -> bool:
    """Every node sees every node alive. The cheap count goes first and short-circuits,
    so the O(N^2) state check runs only once the counts already agree."""
    n = len(names)
    swims = [cluster.nodes[name].swim for name in names]
    if any(s.num_up() != n for s in swims):
        return False
    return all(v.state == MemberState.ALIVE for s in swims for v in s.members())


def build_fleet(cluster: SimCluster, tally: EventTally, n: int, plan: JoinPlan) -> float | None:
    """Start `n` nodes by `plan`; the virtual time from the first start to convergence."""
    names = node_names(n)
    seeds = names[: max(1, min(plan.seeds, n))]
    start = cluster.now
    for name in seeds:
        cluster.add_node(name, seeds=(cluster.address(seeds[0]),))
    rest = names[len(seeds) :]
    for first in range(0, len(rest), plan.batch):
        cluster.run_for(plan.gap)
        for i, name in enumerate(rest[first : first + plan.batch], start=first):
            cluster.add_node(name, seeds=(cluster.address(seeds[i % len(seeds)]),))
    took = advance_until(
        cluster, tally, lambda: fully_converged(cluster, names), plan.timeout, step=0.5
    )
    return None if took is None else cluster.now - start


# ---------------------------------------------------------------------- 2. steady state


@dataclass(frozen=True, slots=True)
class Traffic:
    settle_s: float | None
    """Virtual seconds until the join news drained; None if it never did."""
    bytes_per_node_s: float
    packets_per_node_s: float


def _totals(cluster: SimCluster) -> tuple[int, int]:
    nodes = [node for node in cluster.nodes.values() if node.up]
    return sum(x.bytes_sent for x in nodes), sum(x.packets_sent for x in nodes)


def quiet_packet_rate(cluster: SimCluster, n: int) -> float:
    """Packets per node per second once no news is queued: gossip rounds then send
    nothing, leaving one ping and one ack per probe interval plus the push-pull pair."""
    cfg = cluster.config
    return 2.0 / cfg.probe_interval + 2.0 / push_pull_scale(cfg.push_pull_interval, n)


def measure_traffic(
    cluster: SimCluster,
    tally: EventTally,
    *,
    settle_step: float,
    max_settle: float,
    window: float | None = None,
) -> Traffic:
    """Wait (in `settle_step`s) until the fleet's packet rate is within 2 % of the quiet
    rate, then count bytes and packets over `window` seconds, by default one push-pull
    period: after a join the push-pulls of the whole fleet may fire close together, so a
    shorter window would hold a storm of them or none. A converged start spreads them
    evenly over the period, so a shorter window is a fair sample there."""
    live = len(cluster.live_names())
    quiet = quiet_packet_rate(cluster, live)
    start = cluster.now
    settle: float | None = None
    while cluster.now - start < max_settle:
        _, p0 = _totals(cluster)
        cluster.run_for(settle_step)
        tally.drain(cluster)
        if (_totals(cluster)[1] - p0) / (live * settle_step) <= 1.02 * quiet:
            settle = cluster.now - start
            break
    window = window or push_pull_scale(cluster.config.push_pull_interval, live)
    b0, p0 = _totals(cluster)
    cluster.run_for(window)
    tally.drain(cluster)
    b1, p1 = _totals(cluster)
    return Traffic(settle, (b1 - b0) / (live * window), (p1 - p0) / (live * window))


# ---------------------------------------------------------------------- 3. dissemination


@dataclass(frozen=True, slots=True)
class Dissemination:
    subject: str
    incarnation: int
    curve: list[tuple[float, float]]
    """(virtual seconds since the refutation, fraction of live nodes holding it)."""
    t50: float | None
    t99: float | None
    t9999: float | None
    """Time until ceil(0.9999 N) nodes hold the news: every node for N < 10,000."""
    t_all: float | None


def _first_at(held: list[tuple[float, int]], fraction: float, n: int) -> float | None:
    need = math.ceil(fraction * n - 1e-9)
    return next((t for t, count in held if count >= need), None)


def disseminate_refutation(
    cluster: SimCluster, tally: EventTally, subject: str, *, step: float, timeout: float
) -> Dissemination:
    """`subject` hears, as any packet could tell it, that it is suspected; it refutes
    with a new incarnation, the only fresh news in a quiet fleet."""
    swim = cluster.nodes[subject].swim
    accusation = Suspect(subject, swim.incarnation, "bench")
    cluster.deliver_now(subject, Packet("bench", "sim://bench", None, (accusation,)))
    if swim.incarnation <= accusation.incarnation:
        raise RuntimeError(f"{subject}: did not refute {accusation}")
    incarnation = swim.incarnation
    live = [cluster.nodes[name].swim for name in cluster.live_names()]
    n = len(live)
    held: list[tuple[float, int]] = []

    def observe(elapsed: float) -> None:
        count = sum(1 for s in live if (m := s.member(subject)) and m.incarnation >= incarnation)
        held.append((elapsed, count))

    advance_until(cluster, tally, lambda: held[-1][1] == n, timeout, step, observe)
    return Dissemination(
        subject,
        incarnation,
        [(t, count / n) for t, count in held],
        _first_at(held, 0.5, n),
        _first_at(held, 0.99, n),
        _first_at(held, 0.9999, n),
        _first_at(held, 1.0, n),
    )


# ---------------------------------------------------------------------- 4. detection


@dataclass(frozen=True, slots=True)
class Detection:
    victim: str
    first_dead_s: float | None
    all_dead_s: float | None


def detect_crash(cluster: SimCluster, tally: EventTally, victim: str) -> Detection:
    """Crash `victim`; wait until every live node has marked it dead. The bound is the
    longest a lone suspicion can last (the Lifeguard maximum) plus a minute."""
    crashed = cluster.now
    cluster.crash(victim)
    tally.crashed_at[victim] = crashed
    observers = set(cluster.live_names())
    cfg = cluster.config
    longest = cfg.suspicion_max_timeout_mult * suspicion_timeout(
        cfg.suspicion_mult, len(observers) + 1, cfg.probe_interval
    )
    seen = tally.failed_at.setdefault(victim, {})
    advance_until(cluster, tally, lambda: observers <= seen.keys(), longest + 60.0, step=0.05)
    first = min(seen.values(), default=None)
    last = max(seen.values()) if observers <= seen.keys() else None
    return Detection(
        victim,
        None if first is None else first - crashed,
        None if last is None else last - crashed,
    )
