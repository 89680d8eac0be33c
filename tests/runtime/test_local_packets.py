"""The asyncio protocol driver (`SwimLoop`) over the in-memory side of the packet seam:
every packet through the protobuf wire contract, no gRPC. What tests/realproc proves with
processes and mTLS, this proves in one event loop: joins, a status crossing the wire with
its age, a cut-off member found dead."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.messages import MemberState, NodeMeta, StatusReport
from skyfleet.membership.swim import Swim
from skyfleet.sim.claim_keys import SimClaimKeys, SimKeyRegistry
from skyfleet.transport.local_packets import LocalPackets
from skyfleet.transport.swim_loop import SwimLoop

FAST = MembershipConfig(
    probe_interval=0.05,
    probe_timeout=0.02,
    gossip_interval=0.01,
    gossip_eager_gap=0.005,
    push_pull_interval=0.5,
    suspicion_mult=1,
    leave_propagate_delay=0.05,
)
NAMES = ("a", "b", "c")


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition the loops make true (checked every few ms), or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def address_of(name: str) -> str:
    """An address as the wire contract wants it (host:port); nothing listens there."""
    return f"127.0.0.1:{7000 + NAMES.index(name)}"


def fleet(net: LocalPackets) -> dict[str, SwimLoop]:
    registry = SimKeyRegistry(7)
    loops = {}
    for i, name in enumerate(NAMES):
        address = address_of(name)
        swim = Swim(
            NodeMeta(name, address, cloud="aws"),
            FAST,
            random.Random(i),
            keys=SimClaimKeys(name, registry, frozenset(NAMES)),
        )
        loops[name] = SwimLoop(swim, net.sender(address), time.monotonic)
        net.attach(address, loops[name])
    return loops


def sees(loop: SwimLoop, name: str, state: MemberState) -> bool:
    member = loop.swim.member(name)
    return member is not None and member.state == state


async def test_loops_join_share_statuses_and_find_a_cut_off_member_dead() -> None:
    net = LocalPackets(delay=0.001)
    loops = fleet(net)
    runners = [asyncio.create_task(loop.run()) for loop in loops.values()]
    try:
        loops["a"].start(())
        for name in ("b", "c"):
            loops[name].start((address_of("a"),))
        await until(
            lambda: all(sees(x, n, MemberState.ALIVE) for x in loops.values() for n in NAMES)
        )

        loops["a"].publish_status(StatusReport(inflight=3, capacity=4))
        published = loops["a"].swim.statuses()["a"][0]
        await until(lambda: "a" in loops["b"].swim.statuses())
        status, arrived = loops["b"].swim.statuses()["a"]
        assert (status.seq, status.report) == (published.seq, published.report)
        # Dated on b's clock from the age that crossed the wire: no earlier than a
        # measured it (but for the age's rounding to whole milliseconds) and no later
        # than it arrived (the transit is not in the age, so it lands in between).
        assert published.measured_at - 0.0005 <= status.measured_at <= arrived

        net.cut(address_of("c"))
        await until(
            lambda: sees(loops["a"], "c", MemberState.DEAD)
            and sees(loops["b"], "c", MemberState.DEAD)
        )
        assert net.delivered > 0 and net.dropped > 0 and net.refused == 0
    finally:
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
