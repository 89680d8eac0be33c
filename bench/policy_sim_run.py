"""One simulated policy rollout at fleet size N, with the membership yardsticks measured
in the same simulation (`skyfleet.sim.policy.PolicyCluster`: the agents' own SWIM core,
`PolicyAdopter` and `PolicySync`, real ed25519 envelopes).

Phases of a run:
1. Build: N nodes join (the membership benchmark's join plan) until all see all alive,
   then run until the join news has drained (the packet rate is the quiet one); or, for
   large N (memory), start converged (`SimCluster.add_converged`).
2. Status loops start on every node (status every `status_interval`, policy polls every
   250 ms); a few status periods pass.
3. Fresh alive: one node refutes a suspicion with a new incarnation; time until every
   live node holds it (the membership benchmark's dissemination phase).
4. Fresh status: one node publishes a status out of turn; time until every live node
   holds that status or a newer one of that node. Skipped for a converged start (large
   N): a load-only status crawls at a quarter of the retransmits until push-pull repairs
   it, and at N = 1,000 this phase alone costs six minutes of wall time.
5. Policy: version 2, signed once, is offered to one node (an admin's Publish); time
   until every live node runs it, having pulled it and verified its signature.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from membership_sim_phases import (
    EventTally,
    JoinPlan,
    advance_until,
    build_fleet,
    disseminate_refutation,
    node_names,
    quiet_packet_rate,
)

from skyfleet.config import MembershipConfig
from skyfleet.membership.timing import push_pull_scale
from skyfleet.policy.adoption import PolicyAdopter
from skyfleet.policy.signing import TrustedKeys, generate_signing_key, sign_policy
from skyfleet.sim.policy import PolicyCluster

ROOT = Path(__file__).resolve().parent.parent
STEP = 0.01
"""Virtual seconds between observations: every time is late by at most this much."""


@dataclass(slots=True)
class SimRun:
    n: int
    seed: int
    join_s: float | None = None
    alive_all_s: float | None = None
    status_all_s: float | None = None
    policy_all_s: float | None = None
    policy_half_s: float | None = None
    pull_rtt_s: float | None = None
    """Median request-to-verified-reply time of the pulls of the rollout."""
    pulls: int = 0
    pull_failures: int = 0
    wall_s: dict[str, float] = field(default_factory=dict)


def signed_pair(key: bytes) -> tuple[dict[str, Any], bytes]:
    """(version 1 envelope, version 2 envelope as Fetch/Publish bytes) of the example
    policy, each signed once."""
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    v1 = sign_policy({**doc, "version": 1}, key)
    v2 = sign_policy({**doc, "version": 2, "description": "bench rollout"}, key)
    return v1, json.dumps(v2, sort_keys=True, separators=(",", ":")).encode()


def verify_cost(envelope: bytes, trusted: TrustedKeys, repeat: int = 200) -> float:
    """Seconds one node spends parsing and verifying the envelope (fresh adopters, so
    each offer is a full check)."""
    start = time.perf_counter()
    for _ in range(repeat):
        PolicyAdopter(trusted_keys=trusted).offer(envelope, "bench", 0.0)
    return (time.perf_counter() - start) / repeat


def settle(cluster: PolicyCluster, step: float = 2.0, limit: float = 600.0) -> None:
    """Run until the fleet sends no more than the quiet packet rate (join news drained)."""
    live = cluster.live_names()
    quiet = quiet_packet_rate(cluster, len(live))
    start = cluster.now
    while cluster.now - start < limit:
        before = sum(cluster.nodes[n].packets_sent for n in live)
        cluster.run_for(step)
        sent = sum(cluster.nodes[n].packets_sent for n in live) - before
        if sent / (len(live) * step) <= 1.02 * quiet:
            return
    raise RuntimeError(f"N={len(live)}: join news still draining after {limit} virtual s")


def status_spread(cluster: PolicyCluster, tally: EventTally, subject: str) -> float | None:
    """Virtual seconds until every live node holds `subject`'s fresh status. Gossip at a
    quarter of the retransmits reaches about four nodes in five; push-pull repairs the
    rest, and every node starts one per (scaled) push-pull interval, so two of those
    intervals bound the wait (a fixed 60 s fell short past N = 32, where it is 60 s)."""
    seq = cluster.advertise_now(subject)
    swims = [cluster.nodes[n].swim for n in cluster.live_names() if n != subject]
    timeout = 2 * push_pull_scale(cluster.config.push_pull_interval, len(swims) + 1)

    def everyone() -> bool:
        for swim in swims:
            known = swim.statuses().get(subject)
            if known is None or known[0].seq < seq:
                return False
        return True

    return advance_until(cluster, tally, everyone, timeout=timeout, step=STEP)


def policy_spread(
    cluster: PolicyCluster, tally: EventTally, publisher: str, envelope: bytes
) -> tuple[float | None, float | None]:
    """(time to half, time to all live nodes on version 2) from the Publish."""
    decision = cluster.offer(publisher, envelope, "admin:bench")
    if not decision.adopted:
        raise RuntimeError(f"{publisher} refused the rollout: {decision.log_message()}")
    n = len(cluster.live_names())
    half: list[float] = []

    def observe(elapsed: float) -> None:
        if not half and cluster.on_version(2) * 2 >= n:
            half.append(elapsed)

    took = advance_until(cluster, tally, lambda: cluster.on_version(2) == n, 120.0, STEP, observe)
    return (half[0] if half else None), took


def run_size(
    n: int, seed: int, config: MembershipConfig, *, plan: JoinPlan, converged: bool = False
) -> SimRun:
    key, public = generate_signing_key()
    trusted = TrustedKeys.from_pems([public])
    v1, v2 = signed_pair(key)
    cluster = PolicyCluster(config, trusted_keys=trusted, initial_envelope=v1, seed=seed)
    tally, run, names = EventTally(), SimRun(n, seed), node_names(n)
    clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        run.wall_s[phase] = round(now - clock, 2)
        clock = now
        print(f"  sim N={n}: {phase} done in {run.wall_s[phase]} s wall", flush=True)

    if converged:
        cluster.add_converged(names)
    else:
        run.join_s = build_fleet(cluster, tally, n, plan)
        if run.join_s is None:
            raise RuntimeError(f"N={n}: the fleet did not converge")
        settle(cluster)
    lap("join")
    cluster.start_advertising()
    cluster.run_for(3 * config.status_interval)
    lap("warm")
    run.alive_all_s = disseminate_refutation(
        cluster, tally, names[n // 2], step=STEP, timeout=60.0
    ).t_all
    lap("alive")
    if not converged:
        run.status_all_s = status_spread(cluster, tally, names[n // 3])
        lap("status")
    pulls_before = len(cluster.pull_seconds)
    run.policy_half_s, run.policy_all_s = policy_spread(cluster, tally, names[n // 4], v2)
    lap("policy")
    rollout = sorted(cluster.pull_seconds[pulls_before:])
    run.pull_rtt_s = rollout[len(rollout) // 2] if rollout else None
    run.pulls = sum(p.pulls for p in cluster.policy.values())
    run.pull_failures = sum(p.pull_failures for p in cluster.policy.values())
    invalid = [d for _, d in cluster.decisions if d.outcome == "invalid"]
    if invalid:
        raise RuntimeError(f"a node rejected the rollout: {invalid[0].log_message()}")
    return run
