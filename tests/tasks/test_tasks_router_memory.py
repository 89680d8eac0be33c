"""The router wired to in-memory parts only: membership cores on the simulator's virtual
network, attempts through the in-memory side of the execute seam. What a gRPC run
proves end to end (tests/realproc), this proves without a socket, deterministically."""

from __future__ import annotations

import random

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.config.membership import MembershipConfig
from skyfleet.config.tasks import TaskSettings
from skyfleet.policy.model import Locality, PolicyDocument
from skyfleet.sim.cluster import SimCluster
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.handlers import HandlerRegistry, echo
from skyfleet.tasks.ledger import Outcome
from skyfleet.tasks.router import Router
from skyfleet.transport.task_execute import LocalTaskExecute

CLOUDS = {"aws": ["a0", "a1"], "gcp": ["g0", "g1"]}


def fleet() -> tuple[SimCluster, dict[str, Router], LocalTaskExecute]:
    cluster = SimCluster(MembershipConfig(), seed=3)
    for cloud, names in CLOUDS.items():
        for name in names:
            seeds = () if name == "a0" else (cluster.address("a0"),)
            cluster.add_node(name, seeds=seeds, cloud=cloud, zone=f"{cloud}-z0")
    cluster.run_for(5.0)
    executors = {
        name: Executor(HandlerRegistry({"echo": echo}), TaskSettings(capacity=2))
        for names in CLOUDS.values() for name in names
    }
    remote = LocalTaskExecute(executors)
    policy = PolicyDocument(version=1, locality=Locality(prefer="none"))
    routers = {
        name: Router(swim=cluster.nodes[name].swim, executor=executors[name], remote=remote,
                     policy=policy, clock=lambda: cluster.now, rng=random.Random(i))
        for i, name in enumerate(executors)
    }
    for name, executor in executors.items():
        cluster.emit(name, cluster.nodes[name].swim.publish_status(executor.report(1, "h"),
                                                                   cluster.now))
    cluster.run_for(5.0)
    return cluster, routers, remote


def task(n: int) -> tasks_pb2.SubmitTaskRequest:
    return tasks_pb2.SubmitTaskRequest(handler="echo", payload=b"%d" % n,
                                       idempotency_key=f"k{n}")


async def test_tasks_spread_over_every_peer_that_advertised_a_status() -> None:
    _, routers, _ = fleet()
    ran = {(await routers["a0"].submit(task(n), timeout=5.0)).executed_by for n in range(40)}
    assert ran == {name for names in CLOUDS.values() for name in names}


async def test_a_peer_that_refuses_is_failed_over_and_ejected_at_once() -> None:
    _, routers, remote = fleet()
    router = routers["a0"]
    remote.refusing = {"g0", "g1"}  # gcp is gone; membership has not noticed yet
    results = [await router.submit(task(n), timeout=5.0) for n in range(20)]
    assert all(r.outcome is Outcome.SUCCEEDED for r in results)
    assert {r.executed_by for r in results} <= {"a0", "a1"}
    retried = [r for r in results if r.attempts > 1]
    # Each gcp peer is tried once at most: the refusal ejects it for the next tasks.
    assert 1 <= len(retried) <= 2 and router.ledger.failed_over >= 1
    assert router.ledger.submitted == router.ledger.succeeded == 20
