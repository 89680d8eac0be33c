"""Task routing through real agent processes while peers and a whole cloud are killed
with SIGKILL: every task gets exactly one outcome, none is lost, none runs twice on one
executor, and the agents' books (read from their Prometheus endpoints) add up."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.config import load_stack_config
from infra.stack_files import stack_config
from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.client import tls_files_in
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial, secure_channel

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SUCCEEDED = tasks_pb2.TASK_OUTCOME_SUCCEEDED
FAST_STATUS = {"status_refresh_interval": 1.0}
"""Idle agents re-advertise their status every second, so routers learn every peer's
capacity soon after the start (the default waits for a change or 30 s)."""


def specs(placement: list[tuple[str, str]], ports: list[int]) -> list[AgentSpec]:
    """(name, cloud) per agent; every agent has its own zone and metrics endpoint."""
    n = len(placement)
    seeds = (f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}")
    return [
        AgentSpec(
            name=name,
            cloud=cloud,
            zone=f"{name}-zone",
            address=f"127.0.0.1:{ports[i]}",
            seeds=seeds,
            overrides=dict(FAST_STATUS),
            metrics_port=ports[n + i],
        )
        for i, (name, cloud) in enumerate(placement)
    ]


def write_policy(fleet: LocalFleet, version: int, **sections: dict[str, object]) -> None:
    """A signed policy in the watched source folder: agents adopt it as they start."""
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    for section, fields in sections.items():
        doc.setdefault(section, {}).update(fields)
    doc["version"] = version
    envelope = sign_policy(doc, fleet.layout.signing_key.read_bytes())
    (fleet.layout.policy_source / "policy.json").write_text(json.dumps(envelope))


def ready(version: int, names: list[str]):  # type: ignore[no-untyped-def]
    """Predicate: every observer lists every one of `names` alive, with a status, on
    `version` (listing them matters: a view is only the members its agent has heard of,
    and a router that has not heard of a peer cannot route to it)."""
    return lambda views: all(
        set(v) >= set(names)
        and all(r.state == "alive" and r.status_age is not None for r in v.values())
        and all(r.policy_version == version for r in v.values())
        for v in views.values()
    )


async def scrape(address: str) -> dict[str, float]:
    """An agent's metrics as {sample name or name{label=value}: value}."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    raw = (await reader.read()).decode()
    writer.close()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(raw.partition("\r\n\r\n")[2]):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def sleep_task(key: str, mean: float, dist: str = "exponential", **kw: object):  # type: ignore[no-untyped-def]
    payload = json.dumps({"dist": dist, "mean": mean}).encode()
    return tasks_pb2.SubmitTaskRequest(
        handler="sleep", payload=payload, idempotency_key=key, request_id=key, **kw
    )


def admin_channel(fleet: LocalFleet, name: str) -> grpc.aio.Channel:
    tls = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
    return secure_channel(fleet.specs[name].address, tls.channel_credentials(), name)


async def test_the_peer_running_a_task_is_killed_and_the_task_succeeds_elsewhere(
    tmp_path: Path, free_ports
) -> None:
    placement = [("a0", "aws"), ("b0", "azure"), ("c0", "gcp"), ("c1", "gcp"), ("c2", "gcp")]
    with LocalFleet(tmp_path, specs(placement, free_ports(10))) as fleet:
        # gcp is the cheaper remote cloud: a task allowed in gcp and azure tries gcp first.
        # Two healthy gcp peers of three keep all of gcp's share (2/3 x 1.5 = 1): with
        # Envoy's default factor of 1.4, 7 % of first attempts would spill to azure while
        # the peer killed first is still listed, and k2 would not start in gcp.
        write_policy(
            fleet,
            2,
            clouds={"gcp": {"weight": 1, "relative_cost": 0.5}},
            locality={"overprovisioning_factor": 1.5},
        )
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_for(ready(2, names), names, timeout=60, what="agents ready on policy 2")

        async def runner(candidates: list[str], call: grpc.aio.UnaryUnaryCall) -> str:
            """The one candidate running the task of `call` now (polling executor gauges)."""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not call.done():
                for name in candidates:
                    metrics = await scrape(fleet.specs[name].metrics_address)
                    if metrics["skyfleet_executor_inflight"] == 1:
                        return name
                await asyncio.sleep(0.02)
            ended = await call if call.done() else "still running"
            raise AssertionError(f"no task seen running on {candidates}; the call: {ended}")

        async with admin_channel(fleet, "a0") as channel:
            stub = tasks_pb2_grpc.TasksStub(channel)
            gcp = ["c0", "c1", "c2"]

            # Killed mid-task, the task is retried on a live peer within its constraint.
            call = stub.Submit(
                sleep_task("k1", 2.0, "fixed", constraints=tasks_pb2.Constraints(clouds=["gcp"])),
                timeout=30,
            )
            victim = await runner(gcp, call)
            fleet.agents[victim].signal(signal.SIGKILL)
            reply = await call
            assert reply.outcome == SUCCEEDED and reply.attempts == 2
            assert reply.executed_by in set(gcp) - {victim}

            # A peer that vanishes looks like a cloud failure: the retry leaves gcp for
            # azure even though another gcp peer is alive and cheaper.
            alive = [n for n in gcp if n != victim]
            call = stub.Submit(
                sleep_task(
                    "k2", 2.0, "fixed", constraints=tasks_pb2.Constraints(clouds=["gcp", "azure"])
                ),
                timeout=30,
            )
            victim = await runner(alive, call)
            fleet.agents[victim].signal(signal.SIGKILL)
            reply = await call
            assert (reply.outcome, reply.executed_by, reply.attempts) == (SUCCEEDED, "b0", 2)

        books = await scrape(fleet.specs["a0"].metrics_address)
        assert books["skyfleet_tasks_submitted_total"] == 2
        assert books["skyfleet_tasks_total{outcome=succeeded}"] == 2
        assert books["skyfleet_tasks_retried_total"] == 2
        assert books["skyfleet_tasks_failed_over_total"] == 1  # k2's retry changed cloud


async def test_a_cloud_killed_under_load_loses_no_task(tmp_path: Path, free_ports) -> None:
    clouds = ("aws", "azure", "gcp")
    placement = [(f"{c}-{i}", c) for c in clouds for i in range(3)]
    with LocalFleet(tmp_path, specs(placement, free_ports(18))) as fleet:
        # No locality preference: every router spreads its tasks over all three clouds.
        write_policy(fleet, 2, locality={"prefer": "none"})
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_for(
            ready(2, names), names, timeout=60, what="9 agents ready on policy 2"
        )

        routers = [n for n in names if not n.startswith("gcp")]
        doomed = [n for n in names if n.startswith("gcp")]
        channels = {n: admin_channel(fleet, n) for n in routers}
        streams = {
            n: tasks_pb2_grpc.TasksStub(c).SubmitStream(timeout=60) for n, c in channels.items()
        }
        responses: list[tasks_pb2.SubmitTaskResponse] = []
        via: dict[str, str] = {}

        async def read(name: str) -> None:
            async for response in streams[name]:
                responses.append(response)

        readers = [asyncio.ensure_future(read(n)) for n in routers]
        total, rate, kill_at = 360, 120.0, 120
        start = time.monotonic()
        for i in range(total):
            if i == kill_at:
                for name in doomed:
                    fleet.agents[name].signal(signal.SIGKILL)
            key = f"t{i}"
            router = routers[i % len(routers)]
            via[key] = router
            await streams[router].write(sleep_task(key, 0.04))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        for stream in streams.values():
            await stream.done_writing()
        await asyncio.gather(*readers)
        for channel in channels.values():
            await channel.close()

        # Exactly one terminal outcome per submitted task, none lost, none doubled.
        ids = Counter(r.request_id for r in responses)
        assert set(ids) == set(via) and set(ids.values()) == {1}
        outcomes = Counter(tasks_pb2.TaskOutcome.Name(r.outcome) for r in responses)
        failures = [r for r in responses if r.outcome != SUCCEEDED]
        assert all(r.error for r in failures), failures
        assert outcomes["TASK_OUTCOME_SUCCEEDED"] >= 0.95 * total, (outcomes, failures[:5])

        # The survivors agree the cloud is gone, and on each other.
        await fleet.wait_for(
            lambda views: all(v[d].state == "dead" for v in views.values() for d in doomed),
            routers,
            timeout=30,
            what="the survivors to see gcp dead",
        )
        await fleet.wait_converged(routers, timeout=30)

        # The books: each router counted exactly what its client saw; each surviving
        # executor ran each task it is credited with once, and nothing else.
        for name in routers:
            books = await scrape(fleet.specs[name].metrics_address)
            mine = [r for r in responses if via[r.request_id] == name]
            seen = Counter(tasks_pb2.TaskOutcome.Name(r.outcome) for r in mine)
            assert books["skyfleet_tasks_submitted_total"] == len(mine)
            for outcome in ("succeeded", "failed", "deadline_exceeded", "rejected"):
                counted = books[f"skyfleet_tasks_total{{outcome={outcome}}}"]
                assert counted == seen[f"TASK_OUTCOME_{outcome.upper()}"], (name, outcome)
            credited = sum(1 for r in responses if r.outcome == SUCCEEDED and r.executed_by == name)
            assert books["skyfleet_executor_executed_total"] == credited, name
            assert books["skyfleet_executor_failed_total"] == 0, name


def cpu_task(key: str) -> tasks_pb2.SubmitTaskRequest:
    payload = json.dumps({"n": 16, "rounds": 2, "seed": 1}).encode()
    return tasks_pb2.SubmitTaskRequest(
        handler="cpu", payload=payload, idempotency_key=key, request_id=key
    )


async def test_a_mixed_fleet_runs_each_handler_only_where_its_stack_serves_it(
    tmp_path: Path, free_ports
) -> None:
    """The local stack's per-cloud handlers (`skyfleet:<cloud>Handlers`), as its agents
    get them: `cpu` on aws only, the tools everywhere. `cpu` tasks submitted through an
    azure agent all run in aws; a handler no agent serves is the caller's mistake."""
    config = stack_config(ROOT, "local")
    config["skyfleet:awsHandlers"] = json.dumps(["cpu", "echo"])
    for cloud in ("azure", "gcp"):
        config[f"skyfleet:{cloud}Handlers"] = json.dumps(["echo", "sleep"])
    # No cloud here serves `assistant`: its settings table would be refused (naming it).
    config.pop("skyfleet:handlerSettings", None)
    stack = load_stack_config(lambda k: config.get(f"skyfleet:{k}"), "local", ROOT)
    served = {c.cloud: c.handlers for c in stack.clouds}
    placement = [("a0", "aws"), ("a1", "aws"), ("b0", "azure"), ("c0", "gcp")]
    agents = [replace(s, handlers=served[s.cloud]) for s in specs(placement, free_ports(8))]
    with LocalFleet(tmp_path, agents) as fleet:
        write_policy(fleet, 2)
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_for(ready(2, names), names, timeout=60, what="agents ready on policy 2")
        async with admin_channel(fleet, "b0") as channel:
            stub = tasks_pb2_grpc.TasksStub(channel)
            replies = await asyncio.gather(
                *(stub.Submit(cpu_task(f"cpu{i}"), timeout=30) for i in range(12))
            )
            assert {r.outcome for r in replies} == {SUCCEEDED}
            assert {r.executed_by for r in replies} <= {"a0", "a1"}
            tools = await stub.Submit(
                tasks_pb2.SubmitTaskRequest(handler="echo", payload=b"hi", request_id="e"),
                timeout=30,
            )
            assert (tools.outcome, tools.output) == (SUCCEEDED, b"hi")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Submit(
                    tasks_pb2.SubmitTaskRequest(handler="gpu-embed", request_id="g"), timeout=30
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "gpu-embed" in (err.value.details() or "")


async def test_a_stream_across_agents_fails_over_before_its_first_chunk_and_is_cut_after(
    tmp_path: Path, free_ports
) -> None:
    """A streamed task routed by a0 to gcp: its executor killed before the first chunk,
    the stream fails over to the other gcp agent; killed after chunks were delivered, the
    reader is told how many, and nothing runs again."""
    placement = [("a0", "aws"), ("c0", "gcp"), ("c1", "gcp")]
    with LocalFleet(tmp_path, specs(placement, free_ports(6))) as fleet:
        write_policy(fleet, 2)
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_for(ready(2, names), names, timeout=60, what="agents ready on policy 2")

        async def runner(candidates: list[str]) -> str:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for name in candidates:
                    metrics = await scrape(fleet.specs[name].metrics_address)
                    if metrics["skyfleet_executor_inflight"] == 1:
                        return name
                await asyncio.sleep(0.02)
            raise AssertionError(f"no stream seen running on {candidates}")

        def stream(key: str, **payload: object) -> tasks_pb2.SubmitTaskRequest:
            return tasks_pb2.SubmitTaskRequest(
                handler="chunks", payload=json.dumps(payload).encode(), idempotency_key=key,
                constraints=tasks_pb2.Constraints(clouds=["gcp"]),
            )

        async with admin_channel(fleet, "a0") as channel:
            stub = tasks_pb2_grpc.TasksStub(channel)
            # Killed while its handler waits for its first chunk: run again elsewhere.
            call = stub.Stream(stream("s1", count=3, size=8, interval=1.5), timeout=30)
            victim = await runner(["c0", "c1"])
            fleet.agents[victim].signal(signal.SIGKILL)
            events = [e async for e in call]
            end = events[-1].end
            assert (end.outcome, end.attempts, end.chunks) == (SUCCEEDED, 2, 3)
            assert end.executed_by == ({"c0", "c1"} - {victim}).pop()
            assert [e.chunk.data for e in events[:-1]] == [b"0:......", b"1:......", b"2:......"]

            # Killed after five chunks: the reader gets those five and how it ended.
            survivor = end.executed_by
            call = stub.Stream(stream("s2", count=1000, size=8, interval=0.02), timeout=30)
            got = []
            async for event in call:
                if event.WhichOneof("event") != "chunk":
                    end = event.end
                    break
                got.append(event.chunk.data)
                if len(got) == 5:
                    fleet.agents[survivor].signal(signal.SIGKILL)
            assert end.outcome == tasks_pb2.TASK_OUTCOME_FAILED and end.attempts == 1
            assert end.chunks == len(got) >= 5 and end.bytes == 8 * len(got)
            assert got == [f"{i}:".encode().ljust(8, b".") for i in range(len(got))]
            assert f"stream cut after {len(got)} chunks" in end.error
            assert survivor in end.error

        books = await scrape(fleet.specs["a0"].metrics_address)
        assert books["skyfleet_tasks_submitted_total"] == 2
        assert books["skyfleet_tasks_total{outcome=succeeded}"] == 1
        assert books["skyfleet_tasks_total{outcome=failed}"] == 1


async def test_a_long_task_survives_its_accepting_agent_and_then_its_executor_killed(
    tmp_path: Path, free_ports
) -> None:
    """Started through a0, which is then killed: the task goes on and ends once. Started
    again and its executor killed mid-run: it runs again on the other gcp agent, with
    the same idempotency key, and ends once."""
    placement = [("a0", "aws"), ("a1", "aws"), ("c0", "gcp"), ("c1", "gcp"), ("c2", "gcp")]
    with LocalFleet(tmp_path, specs(placement, free_ports(10))) as fleet:
        write_policy(fleet, 2)
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_for(ready(2, names), names, timeout=60, what="agents ready on policy 2")
        sleep = json.dumps({"dist": "fixed", "mean": 3.0}).encode()
        gcp = tasks_pb2.Constraints(clouds=["gcp"])

        async with admin_channel(fleet, "a0") as a0, admin_channel(fleet, "a1") as a1:
            first = await tasks_pb2_grpc.TasksStub(a0).Start(
                tasks_pb2.SubmitTaskRequest(handler="sleep", payload=sleep, constraints=gcp),
                timeout=10)
            assert first.state == tasks_pb2.TASK_STATE_RUNNING
            fleet.agents["a0"].signal(signal.SIGKILL)
            other = tasks_pb2_grpc.TasksStub(a1)
            done = await other.WaitTask(tasks_pb2.TaskRef(task_id=first.task_id), timeout=30)
            assert (done.state, done.attempt, done.executor) == (
                tasks_pb2.TASK_STATE_SUCCEEDED, 1, first.executor)
            assert json.loads(done.output) == {"slept": 3.0}

            second = await other.Start(
                tasks_pb2.SubmitTaskRequest(handler="sleep", payload=sleep, constraints=gcp),
                timeout=10)
            seen, until = second, time.monotonic() + 10
            while seen.progress == 0.0:  # a progress report: the run is under way
                assert time.monotonic() < until, f"no progress reported: {seen}"
                seen = await other.GetTask(tasks_pb2.TaskRef(task_id=second.task_id), timeout=5)
                await asyncio.sleep(0.1)
            assert "slept" in seen.note
            fleet.agents[second.executor].signal(signal.SIGKILL)
            done = await other.WaitTask(tasks_pb2.TaskRef(task_id=second.task_id), timeout=60)
            assert (done.state, done.attempt) == (tasks_pb2.TASK_STATE_SUCCEEDED, 2)
            assert done.executor in {"c0", "c1", "c2"} - {second.executor}
            assert done.task.idempotency_key == second.task.idempotency_key


async def test_sessions_stick_and_only_the_killed_hosts_sessions_move(
    tmp_path: Path, free_ports
) -> None:
    """Session affinity across real agents: each session's tasks run on one gcp host;
    one host kill -9'd, its sessions move (each to one new host) and no other does."""
    placement = [("a0", "aws"), ("c0", "gcp"), ("c1", "gcp"), ("c2", "gcp")]
    with LocalFleet(tmp_path, specs(placement, free_ports(8))) as fleet:
        write_policy(fleet, 2, sessions={"affinity": "bounded_hash"})
        names = list(fleet.specs)
        fleet.start()
        await fleet.wait_for(ready(2, names), names, timeout=60, what="agents ready on policy 2")
        sessions = [f"chat-{i}" for i in range(24)]
        gcp = tasks_pb2.Constraints(clouds=["gcp"])

        async with admin_channel(fleet, "a0") as channel:
            stub = tasks_pb2_grpc.TasksStub(channel)

            async def owners() -> dict[str, str]:
                """Where each session's next two tasks ran (they must agree)."""
                ran: dict[str, set[str]] = {s: set() for s in sessions}
                for _ in range(2):
                    for s in sessions:
                        reply = await stub.Submit(tasks_pb2.SubmitTaskRequest(
                            handler="echo", payload=s.encode(), session=s, constraints=gcp),
                            timeout=10)
                        assert reply.outcome == SUCCEEDED, reply
                        ran[s].add(reply.executed_by)
                assert all(len(where) == 1 for where in ran.values()), ran
                return {s: where.pop() for s, where in ran.items()}

            before = await owners()
            victim = Counter(before.values()).most_common(1)[0][0]
            fleet.agents[victim].signal(signal.SIGKILL)
            after = await owners()
        moved = {s for s in sessions if after[s] != before[s]}
        assert moved == {s for s in sessions if before[s] == victim}
        assert victim not in after.values()
