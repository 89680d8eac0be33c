"""The router wired to in-memory parts only: membership cores on the simulator's virtual
network, attempts through the in-memory side of the execute seam. What a gRPC run
proves end to end (tests/realproc), this proves without a socket, deterministically."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace

import pytest

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.balancing.affinity import HashRing
from skyfleet.config.membership import MembershipConfig
from skyfleet.config.tasks import TaskSettings
from skyfleet.membership.messages import MemberState
from skyfleet.policy.model import Locality, PolicyDocument, Sessions
from skyfleet.sim.cluster import SimCluster
from skyfleet.tasks.errors import Refusal, TaskRejected
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.handlers import Handler, HandlerContext, HandlerRegistry, StreamHandler, echo
from skyfleet.tasks.ledger import Outcome
from skyfleet.tasks.router import Result, Router
from skyfleet.transport.task_execute import LocalTaskExecute

CLOUDS = {"aws": ["a0", "a1"], "gcp": ["g0", "g1"]}


@dataclass
class Fleet:
    cluster: SimCluster
    routers: dict[str, Router]
    remote: LocalTaskExecute
    executors: dict[str, Executor]

    def gossip_statuses(self, seconds: float = 5.0, old: frozenset[str] = frozenset()) -> None:
        """Every executor publishes its status and gossip carries it to every router;
        those in `old` publish theirs as agents from before the handler list did."""
        for name, executor in self.executors.items():
            swim = self.cluster.nodes[name].swim
            report = executor.report(1, "h")
            if name in old:
                report = replace(report, handlers=())
            self.cluster.emit(name, swim.publish_status(report, self.cluster.now))
        self.cluster.run_for(seconds)


def fleet(
    policy: PolicyDocument | None = None,
    gpu: Mapping[str, Handler | StreamHandler] | None = None,
) -> Fleet:
    """Two nodes in each of two clouds, each serving echo; those in `gpu` serve "gpu"
    too, with the handler given."""
    cluster = SimCluster(MembershipConfig(), seed=3)
    for cloud, names in CLOUDS.items():
        for name in names:
            seeds = () if name == "a0" else (cluster.address("a0"),)
            cluster.add_node(name, seeds=seeds, cloud=cloud, zone=f"{cloud}-z0")
    cluster.run_for(5.0)
    gpu = gpu or {}
    executors = {
        name: Executor(
            HandlerRegistry({"echo": echo, **({"gpu": gpu[name]} if name in gpu else {})}),
            TaskSettings(capacity=2),
        )
        for names in CLOUDS.values() for name in names
    }
    remote = LocalTaskExecute(executors)
    policy = policy or PolicyDocument(version=1, locality=Locality(prefer="none"))
    routers = {
        name: Router(swim=cluster.nodes[name].swim, executor=executors[name], remote=remote,
                     policy=policy, clock=lambda: cluster.now, rng=random.Random(i))
        for i, name in enumerate(executors)
    }
    made = Fleet(cluster, routers, remote, executors)
    made.gossip_statuses()
    return made


def task(n: int, session: str = "", handler: str = "echo") -> tasks_pb2.SubmitTaskRequest:
    return tasks_pb2.SubmitTaskRequest(handler=handler, payload=b"%d" % n,
                                       idempotency_key=f"k{n}", session=session)


async def test_tasks_spread_over_every_peer_that_advertised_a_status() -> None:
    routers = fleet().routers
    ran = {(await routers["a0"].submit(task(n), timeout=5.0)).executed_by for n in range(40)}
    assert ran == {name for names in CLOUDS.values() for name in names}


async def test_a_peer_that_refuses_is_failed_over_and_ejected_at_once() -> None:
    f = fleet()
    router, remote = f.routers["a0"], f.remote
    remote.refusing = {"g0", "g1"}  # gcp is gone; membership has not noticed yet
    results = [await router.submit(task(n), timeout=5.0) for n in range(20)]
    assert all(r.outcome is Outcome.SUCCEEDED for r in results)
    assert {r.executed_by for r in results} <= {"a0", "a1"}
    retried = [r for r in results if r.attempts > 1]
    # Each gcp peer is tried once at most: the refusal ejects it for the next tasks.
    assert 1 <= len(retried) <= 2 and router.ledger.failed_over >= 1
    assert router.ledger.submitted == router.ledger.succeeded == 20


@pytest.mark.parametrize("affinity", ["hash", "bounded_hash"])
async def test_a_session_sticks_to_its_peer_and_moves_on_when_that_peer_refuses(
    affinity: str,
) -> None:
    f = fleet(PolicyDocument(version=1, locality=Locality(prefer="none"),
                             sessions=Sessions(affinity=affinity)))
    router = f.routers["a0"]
    sessions = [f"user-{i}" for i in range(12)]
    n = iter(range(1000))

    async def round_of_tasks() -> dict[str, tuple[str, int]]:
        """Each session's next task, one at a time: (where it ran, attempts). Statuses are
        measured after each task and gossiped (in a second: the victim's 30 s ejection
        outlasts the test), so the bound sees every executor idle again."""
        out = {}
        for s in sessions:
            result = await router.submit(task(next(n), session=s), timeout=5.0)
            assert result.outcome is Outcome.SUCCEEDED
            out[s] = (result.executed_by, result.attempts)
            f.cluster.run_for(0.1)  # a status measured at the send's instant would not cover it
            f.gossip_statuses(1.0)
        return out

    first = await round_of_tasks()
    owner = {s: ran for s, (ran, _) in first.items()}
    assert len(set(owner.values())) >= 3
    assert await round_of_tasks() == first
    victim = next(ran for ran in owner.values() if ran != "a0")  # a0 runs its own locally
    f.remote.refusing = {victim}  # it died; membership has not noticed yet
    ring = HashRing(dict.fromkeys(f.executors, 1.0), Sessions().virtual_nodes)
    after = await round_of_tasks()
    for s in sessions:
        order = list(ring.walk(s))
        assert order[0] == owner[s]
        assert after[s][0] == (order[1] if owner[s] == victim else owner[s])
    # The first of its sessions found it refusing and retried; that ejected it, so its other
    # sessions went straight to their next peer.
    assert sorted(attempts for _, attempts in after.values())[-2:] == [1, 2]
    assert await round_of_tasks() == {s: (ran, 1) for s, (ran, _) in after.items()}


GPU_NODES = {"a1": echo, "g1": echo}
"""One gpu node in each cloud."""


async def test_tasks_go_only_to_the_agents_that_serve_their_handler() -> None:
    router = fleet(gpu=GPU_NODES).routers["a0"]
    gpu = [await router.submit(task(n, handler="gpu"), timeout=5.0) for n in range(40)]
    assert {r.executed_by for r in gpu} == {"a1", "g1"}
    assert all(r.attempts == 1 for r in gpu)  # never sent where it cannot run
    echoed = {(await router.submit(task(n), timeout=5.0)).executed_by for n in range(40, 80)}
    assert echoed == {"a0", "a1", "g0", "g1"}


async def test_a_handler_whose_agents_are_all_down_is_unavailable_naming_them() -> None:
    f = fleet(gpu=GPU_NODES)
    router = f.routers["a0"]
    for name in GPU_NODES:
        f.cluster.crash(name)
    gone = f.cluster.run_until_true(
        lambda: all(f.cluster.view("a0", n) == MemberState.DEAD for n in GPU_NODES), 60.0
    )
    assert gone is not None
    with pytest.raises(TaskRejected) as refused:
        await router.submit(task(1, handler="gpu"), timeout=5.0)
    assert refused.value.why is Refusal.UNAVAILABLE
    assert str(refused.value) == "handler 'gpu': no live agent serves it (last served by a1, g1)"
    assert (router.ledger.rejected, router.ledger.attempts) == (1, 0)
    # The handlers the survivors serve still run.
    assert (await router.submit(task(2), timeout=5.0)).outcome is Outcome.SUCCEEDED


async def test_a_handler_no_agent_ever_served_is_invalid_naming_it() -> None:
    router = fleet(gpu=GPU_NODES).routers["g0"]
    with pytest.raises(TaskRejected) as refused:
        await router.submit(task(1, handler="gpu-typo"), timeout=5.0)
    assert refused.value.why is Refusal.INVALID
    assert str(refused.value) == "handler 'gpu-typo': served by no agent of the fleet"
    assert (router.ledger.rejected, router.ledger.attempts) == (1, 0)


async def test_when_every_agent_serving_the_handler_refuses_the_failure_names_them() -> None:
    f = fleet(gpu=GPU_NODES)
    f.remote.refusing = {"a1", "g1"}  # both died; membership has not noticed yet
    result = await f.routers["a0"].submit(task(1, handler="gpu"), timeout=5.0)
    assert result.outcome is Outcome.FAILED and result.attempts == 2
    assert "handler 'gpu' served by a1, g1 only" in result.error
    assert "already tried" in result.error


async def test_an_agent_from_before_the_handler_list_is_sent_any_handler() -> None:
    """Its status lists no handlers: it is taken to serve them all, as before the list,
    so a fleet of mixed versions keeps routing to it."""
    f = fleet(gpu={**GPU_NODES, "g0": echo})
    f.gossip_statuses(old=frozenset({"g0"}))
    router = f.routers["a0"]
    ran = {(await router.submit(task(n, handler="gpu"), timeout=5.0)).executed_by
           for n in range(40)}
    assert ran == {"a1", "g0", "g1"}


async def counting(payload: bytes, ctx: HandlerContext) -> AsyncGenerator[bytes, None]:
    """Streams `payload` (a number) chunks, each naming its session."""
    for i in range(int(payload)):
        yield f"{ctx.session}:{i}".encode()


async def streamed(router: Router, req: tasks_pb2.SubmitTaskRequest) -> tuple[list[bytes], Result]:
    items = [item async for item in router.stream(req, timeout=5.0)]
    *chunks, end = items
    assert isinstance(end, Result) and all(isinstance(c, bytes) for c in chunks)
    return [c for c in chunks if isinstance(c, bytes)], end


async def test_a_stream_fails_over_before_its_first_chunk_and_sticks_to_its_session() -> None:
    f = fleet(PolicyDocument(version=1, locality=Locality(prefer="none"),
                             sessions=Sessions(affinity="hash")),
              gpu={name: counting for name in ("a0", "a1", "g0", "g1")})
    router = f.routers["a0"]
    req = tasks_pb2.SubmitTaskRequest(handler="gpu", payload=b"3", session="chat-1")
    chunks, end = await streamed(router, req)
    owner = end.executed_by
    assert chunks == [b"chat-1:0", b"chat-1:1", b"chat-1:2"]
    assert (end.outcome, end.chunks, end.size, end.attempts) == (Outcome.SUCCEEDED, 3, 24, 1)
    # The session's next stream goes to the same executor; with it refusing, to the
    # session's next peer, before any chunk, so nothing is delivered twice.
    assert (await streamed(router, req))[1].executed_by == owner
    f.remote.refusing = {owner}
    chunks, end = await streamed(router, req)
    assert end.outcome is Outcome.SUCCEEDED and end.executed_by != owner
    assert end.attempts == 2 and len(chunks) == 3
    assert router.ledger.submitted == router.ledger.succeeded == 3


async def test_a_reader_that_hangs_up_closes_the_stream_with_one_outcome() -> None:
    f = fleet(gpu={"g0": counting})
    router = f.routers["a0"]
    stream = router.stream(tasks_pb2.SubmitTaskRequest(handler="gpu", payload=b"100"), 5.0)
    async with aclosing(stream):
        assert await anext(stream) == b":0"
    assert (router.ledger.submitted, router.ledger.failed) == (1, 1)
    assert f.executors["g0"].inflight == 0
    assert router.balancer.retry_budget.active == 0  # the attempt was closed, unblamed
    with pytest.raises(TaskRejected) as refused:
        [item async for item in router.stream(task(1, handler="gpu-typo"), 5.0)]
    assert refused.value.why is Refusal.INVALID
    assert (router.ledger.submitted, router.ledger.rejected) == (2, 1)
