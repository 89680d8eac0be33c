"""Hostile RPCs against a real in-process agent over mTLS: hypothesis writes the requests.

Every call must end, within its deadline, with OK or a documented refusal whose details
name the bad field or the refused caller; never UNKNOWN or INTERNAL (an exception that
escaped a handler), never a hang. The callers hold valid fleet certificates (a peer agent
`n1`, an admin): this is what a buggy or compromised insider can send, the worst input
that gets past the handshake. Afterwards the agent must still be a healthy member: its
peer sees it alive with fresh status, its loops still run, no background task failed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from skyfleet._generated.skyfleet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)
from skyfleet.client import tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.config.tasks import TaskSettings
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.node import Agent, AgentState
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial, secure_channel

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
CALL_DEADLINE = 5.0
"""Far above any honest answer (milliseconds): running into it is a hang."""
BOUNDED = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
}
U64 = 2**64 - 1


class Target:
    """The agent under attack (`n0`), an honest peer (`n1`), and channels to n0 holding
    n1's and the admin's certificates."""

    def __init__(self, layout: FleetLayout, n0: Agent, n1: Agent, specs: list[AgentSpec]):
        self.layout = layout
        self.n0, self.n1 = n0, n1
        self.address = specs[0].address
        self.peer_address = specs[1].address
        self.errors: list[dict[str, Any]] = []
        self.as_peer = self._channel("n1")
        self.as_admin = self._channel("admin")

    def _channel(self, identity: str) -> grpc.aio.Channel:
        tls = TlsMaterial.load(tls_files_in(self.layout.tls, identity))
        return secure_channel(self.address, tls.channel_credentials(), "n0")

    async def close(self) -> None:
        await self.as_peer.close()
        await self.as_admin.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory, free_ports_module) -> AsyncIterator:
    root = tmp_path_factory.mktemp("hostile")
    layout = FleetLayout(root)
    ports = free_ports_module(2)
    specs = [
        AgentSpec(
            name=f"n{i}",
            cloud="aws",
            zone="z",
            address=f"127.0.0.1:{p}",
            seeds=(f"127.0.0.1:{ports[0]}",),
            overrides={"status_interval": 0.2, "leave_propagate_delay": 0.1},
        )
        for i, p in enumerate(ports)
    ]
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    layout.ensure_ca()
    envelope = sign_policy(doc, layout.signing_key.read_bytes())
    (layout.policy_source / "policy.json").write_text(json.dumps(envelope))
    agents = [Agent(load_agent_config(layout.write_agent(s))) for s in specs]
    loop = asyncio.get_running_loop()
    t = Target(layout, agents[0], agents[1], specs)
    loop.set_exception_handler(lambda _loop, context: t.errors.append(context))
    for agent in agents:
        await agent.start()
    await wait_until(lambda: healthy(t) == [], "n0 and n1 to see each other alive")
    try:
        yield t
    finally:
        await t.close()
        for agent in agents:
            await agent.shutdown()
        loop.set_exception_handler(None)


@pytest.fixture(scope="module")
def free_ports_module():
    import socket

    def take(n: int) -> list[int]:
        socks = [socket.socket() for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        ports = [s.getsockname()[1] for s in socks]
        for s in socks:
            s.close()
        return ports

    return take


def healthy(t: Target) -> list[str]:
    """What is wrong with n0 as a fleet member right now (empty: nothing)."""
    problems = []
    for a, b in ((t.n0, "n1"), (t.n1, "n0")):
        member = a.swim.member(b)
        if member is None or member.state.name != "ALIVE":
            problems.append(f"{a.swim.name} sees {b} as {member and member.state.name}")
    statuses = t.n1.swim.statuses()
    if "n0" not in statuses:
        problems.append("n1 has no status from n0")
    if t.n0.state is not AgentState.RUNNING or t.n0.failure is not None:
        problems.append(f"n0 is {t.n0.state.value}, its loops failed with {t.n0.failure!r}")
    return problems


async def wait_until(condition, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


_LOOP: list[asyncio.AbstractEventLoop] = []


async def in_thread(run: Callable[[], None]) -> None:
    """Run a hypothesis test in a worker thread while this loop serves the agents: each
    example is sent on the loop (`on_loop`) and fails or passes there, so hypothesis can
    still shrink a failure to its smallest request."""
    _LOOP[:] = [asyncio.get_running_loop()]
    try:
        await asyncio.to_thread(run)
    finally:
        _LOOP.clear()


def on_loop(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run_coroutine_threadsafe(coro, _LOOP[0]).result(CALL_DEADLINE * 3)


def assert_refused_clearly(exc: grpc.aio.AioRpcError, *, names: tuple[str, ...] = ()) -> None:
    code, details = exc.code(), exc.details() or ""
    assert code in REFUSALS, f"{code.name}: {details}"
    assert details, "a refusal must say why"
    if names:
        assert any(n in details for n in names), details


# --- Membership.Exchange ----------------------------------------------------------------

names = st.sampled_from(["n0", "n1", "ghost-1", "ghost-2"]) | st.text(max_size=8)
incarnations = st.integers(0, U64) | st.sampled_from([0, 1, U64, U64 - 1, 2**63])
floats = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def addresses(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["127.0.0.1:1", "127.0.0.1:65535"]) | st.text(max_size=12))


@st.composite
def metas(draw: st.DrawFn) -> membership_pb2.NodeMeta:
    return membership_pb2.NodeMeta(
        name=draw(names),
        address=draw(addresses()),
        cloud=draw(st.text(max_size=6)),
        labels=draw(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2)),
    )


@st.composite
def statuses(draw: st.DrawFn) -> membership_pb2.NodeStatus:
    return membership_pb2.NodeStatus(
        node=draw(names),
        incarnation=draw(incarnations),
        seq=draw(st.integers(0, U64)),
        policy_version=draw(st.integers(0, U64)),
        policy_hash=draw(st.sampled_from(["", "a" * 64]) | st.text(max_size=70)),
        inflight=draw(st.integers(0, 2**32 - 1)),
        capacity=draw(st.integers(0, 2**32 - 1)),
        latency_ms=draw(floats),
        error_rate=draw(floats),
    )


@st.composite
def updates(draw: st.DrawFn) -> membership_pb2.Update:
    kind = draw(st.sampled_from(["alive", "suspect", "dead", "status", "empty"]))
    if kind == "alive":
        return membership_pb2.Update(
            alive=membership_pb2.Alive(node=draw(metas()), incarnation=draw(incarnations))
        )
    if kind in ("suspect", "dead"):
        cls = membership_pb2.Suspect if kind == "suspect" else membership_pb2.Dead
        news = cls(node=draw(names), incarnation=draw(incarnations), source=draw(names))
        return membership_pb2.Update(**{kind: news})
    if kind == "status":
        return membership_pb2.Update(status=draw(statuses()))
    return membership_pb2.Update()


@st.composite
def packets(draw: st.DrawFn, peer_address: str) -> membership_pb2.Packet:
    honest = draw(st.booleans())
    msg = membership_pb2.Packet(
        sender="n1" if honest else draw(names),
        sender_address=peer_address if honest else draw(addresses()),
    )
    body = draw(st.sampled_from(["ping", "ack", "nack", "indirect_ping", "push_pull", None]))
    seq = draw(st.integers(0, U64))
    if body == "ping":
        msg.ping.CopyFrom(membership_pb2.Ping(seq=seq, target=draw(names)))
    elif body in ("ack", "nack"):
        getattr(msg, body).seq = seq
    elif body == "indirect_ping":
        msg.indirect_ping.CopyFrom(
            membership_pb2.IndirectPing(
                seq=seq, target=draw(names), target_address=draw(addresses()), want_nack=True
            )
        )
    elif body == "push_pull":
        records = [
            membership_pb2.MemberRecord(
                node=draw(metas()), state=draw(st.integers(0, 6)), incarnation=draw(incarnations)
            )
            for _ in range(draw(st.integers(0, 3)))
        ]
        msg.push_pull.CopyFrom(
            membership_pb2.PushPull(
                join=draw(st.booleans()),
                is_reply=draw(st.booleans()),
                members=records,
                statuses=[draw(statuses()) for _ in range(draw(st.integers(0, 2)))],
            )
        )
    msg.piggyback.extend(draw(st.lists(updates(), max_size=4)))
    return msg


async def stream_packets(t: Target, batch: list[membership_pb2.Packet]) -> None:
    stub = membership_pb2_grpc.MembershipStub(t.as_peer)
    call = stub.Exchange(timeout=CALL_DEADLINE)
    write_failed = False
    try:
        for msg in batch:
            await call.write(msg)
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        write_failed = True  # the agent ended the stream early; the call's status says why
    try:
        await read_to_end(call)
    except grpc.aio.AioRpcError as exc:
        if write_failed and exc.code() == grpc.StatusCode.INTERNAL and _LOST_SEND in str(exc):
            # grpcio reports our own write racing the agent's refusal as INTERNAL, which
            # masks the agent's status; what the agent did is checked after the batch.
            return
        assert_refused_clearly(exc, names=("bad packet", "sender"))


async def read_to_end(call: grpc.aio.StreamStreamCall) -> None:
    """Drain what the agent sends back on the stream (its packets for an honest `n1`):
    the call's status, a refusal raising, comes only after them."""
    async for _ in call:
        pass


_LOST_SEND = 'Failed "execute_batch": (<grpc._cython.cygrpc.SendMessageOperation'
"""grpcio's own error string (1.71) for a message sent on a call the peer has ended."""


def suspicion_of_n0(incarnation: int) -> membership_pb2.Packet:
    msg = membership_pb2.Packet(sender="n1", sender_address="127.0.0.1:1")
    msg.piggyback.add().suspect.CopyFrom(
        membership_pb2.Suspect(node="n0", incarnation=incarnation, source="n1")
    )
    return msg


async def test_membership_packets_of_any_shape(target: Target):
    @BOUNDED
    @given(st.lists(packets(target.peer_address), min_size=1, max_size=3))
    @example([suspicion_of_n0(U64)])  # refuting it must not overflow the wire's uint64
    @example([suspicion_of_n0(2**63)])
    def run(batch: list[membership_pb2.Packet]) -> None:
        on_loop(stream_packets(target, batch))

    await in_thread(run)
    await wait_until(lambda: healthy(target) == [], "n0 to be a healthy member again")
    await still_healthy(target)


async def test_incarnation_beyond_the_wire_limit_is_refused_naming_the_field(target: Target):
    """Refuting news at 2**64 - 1 would need 2**64: the agent could never encode its own
    alive or status again. Such news is refused at decoding, and the agent is unharmed."""
    incarnation = target.n0.swim.incarnation
    stub = membership_pb2_grpc.MembershipStub(target.as_peer)
    call = stub.Exchange(timeout=CALL_DEADLINE)
    await call.write(suspicion_of_n0(U64))
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await read_to_end(call)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "piggyback[0].suspect.incarnation" in (refused.value.details() or "")
    assert target.n0.swim.incarnation == incarnation
    await still_healthy(target)


async def still_healthy(t: Target) -> None:
    """n0 still takes part in the fleet both ways: a policy published to n1 reaches n0
    (gossip in, pull out), and n1 learns from n0's own status that n0 runs it."""
    version = max(t.n0.policy.version, t.n1.policy.version) + 1
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    envelope = sign_policy({**doc, "version": version}, t.layout.signing_key.read_bytes())
    assert t.n1.policy.offer(envelope, "test").adopted
    t.n1.publish_status()

    def n0_runs_it() -> bool:
        status = t.n1.swim.statuses().get("n0")
        return status is not None and status[0].report.policy_version == version

    await wait_until(n0_runs_it, f"n1 to see n0 on policy version {version}")
    assert healthy(t) == []
    gc.collect()  # surfaces "Task exception was never retrieved" now, not at exit
    assert t.errors == []


# --- Policy.Publish / Fetch ---------------------------------------------------------------


@st.composite
def envelopes(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        value = draw(
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(
                        st.sampled_from(["document", "signatures", "version", "sig", "x"]),
                        inner,
                        max_size=3,
                    )
                ),
                max_leaves=10,
            )
        )
        return json.dumps(value).encode()
    envelope = json.loads(json.dumps(valid))
    where = draw(st.sampled_from(["version", "strategy", "sig", "key_id", "drop-sigs"]))
    if where == "version":
        envelope["document"]["version"] = draw(
            st.integers(-(2**70), 2**70) | st.sampled_from([0, 2**64, 2**63])
        )
    elif where == "strategy":
        envelope["document"]["strategy"] = draw(st.text(max_size=8))
    elif where == "sig":
        envelope["signatures"][0]["sig"] = draw(st.text(max_size=90))
    elif where == "key_id":
        envelope["signatures"][0]["key_id"] = draw(st.text(max_size=20))
    else:
        envelope["signatures"] = []
    return json.dumps(envelope).encode()


PUBLISH_REFUSAL = re.compile(
    r"policy (invalid|conflict|ignored-older)(/[a-z-]+)? version=(-?\d+|-) hash=([0-9a-f]+|-) "
    r"origin=admin:\S+ current=(\d+|-): .+",
    re.DOTALL,
)
"""The one form of Publish refusals (policy.proto, docs/operations.md)."""


async def test_policy_publish_of_any_envelope_is_refused_clearly(target: Target):
    key = target.layout.signing_key.read_bytes()
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    valid = sign_policy({**doc, "version": 2}, key)
    in_force = target.n0.policy.version

    @BOUNDED
    @given(envelopes(valid))
    @example(json.dumps({**valid, "signatures": valid["signatures"] * 2}).encode())
    def run(raw: bytes) -> None:
        on_loop(publish(raw))

    stub = policy_pb2_grpc.PolicyStub(target.as_admin)

    async def publish(raw: bytes) -> None:
        try:
            reply = await stub.Publish(
                policy_pb2.PublishPolicyRequest(envelope=raw), timeout=CALL_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            assert_refused_clearly(exc, names=("policy", "envelope"))
            details = exc.details() or ""
            assert PUBLISH_REFUSAL.fullmatch(details), details
            trailers = dict(exc.trailing_metadata() or ())
            assert trailers["skyfleet-policy-outcome"] == details.split()[1].split("/")[0]
        else:
            # Only a correctly signed document can be taken (none is generated above).
            pytest.fail(f"accepted: {reply}")

    await in_thread(run)
    assert target.n0.policy.version == in_force
    fetch = policy_pb2_grpc.PolicyStub(target.as_peer)
    for version in (0, 1, U64):
        reply = await fetch.Fetch(
            policy_pb2.FetchPolicyRequest(version=version), timeout=CALL_DEADLINE
        )
        assert reply.version == in_force
    await still_healthy(target)


# --- Tasks.Submit / Execute ---------------------------------------------------------------


@st.composite
def task_requests(draw: st.DrawFn) -> tasks_pb2.SubmitTaskRequest:
    payload_doc = draw(
        st.dictionaries(
            st.sampled_from(["mean", "dist", "scv", "n", "rounds", "interval", "fail_after",
                             "x"]),
            st.floats(allow_nan=True, allow_infinity=True)
            | st.integers(-(2**70), 2**70)
            | st.text(max_size=6),
            max_size=3,
        )
    )
    payload = draw(st.binary(max_size=64) | st.just(json.dumps(payload_doc).encode()))
    return tasks_pb2.SubmitTaskRequest(
        handler=draw(st.sampled_from(["echo", "sleep", "cpu", "chunks", ""])
                     | st.text(max_size=8)),
        payload=payload,
        idempotency_key=draw(st.text(max_size=300)),
        constraints=tasks_pb2.Constraints(
            clouds=draw(
                st.lists(st.sampled_from(["aws", "gcp"]) | st.text(max_size=4), max_size=2)
            ),
            regions=draw(st.lists(st.text(max_size=4), max_size=2)),
        ),
        kind=draw(st.text(max_size=8)),
    )


TASK_REFUSALS = REFUSALS | {
    grpc.StatusCode.UNAVAILABLE,  # no eligible peer (e.g. a cloud constraint nobody meets)
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


async def test_task_requests_of_any_shape_get_one_clear_answer(target: Target):
    @BOUNDED
    @given(task_requests())
    @example(
        tasks_pb2.SubmitTaskRequest(handler="sleep", payload=b'{"mean": 1e308}')
    )  # out of the handler's range: refused, not slept on
    @example(tasks_pb2.SubmitTaskRequest(handler="cpu", payload=b'{"n": 1e9}'))
    def run(request: tasks_pb2.SubmitTaskRequest) -> None:
        on_loop(one(request))

    submit = tasks_pb2_grpc.TasksStub(target.as_admin)
    execute = tasks_pb2_grpc.TasksStub(target.as_peer)

    async def one(request: tasks_pb2.SubmitTaskRequest) -> None:
        try:
            reply = await submit.Submit(request, timeout=CALL_DEADLINE)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in TASK_REFUSALS, f"{exc.code().name}: {exc.details()}"
            assert exc.details()
        else:
            assert reply.outcome != tasks_pb2.TASK_OUTCOME_UNSPECIFIED
            if reply.outcome != tasks_pb2.TASK_OUTCOME_SUCCEEDED:
                assert reply.error, reply
        try:
            await execute.Execute(
                tasks_pb2.ExecuteRequest(task=request, routed_by="n1"), timeout=CALL_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in TASK_REFUSALS | {grpc.StatusCode.ABORTED}, exc.details()
            assert exc.details()
        # The streamed forms: chunks then exactly one end, or a clear status.
        try:
            stream = [e async for e in submit.Stream(request, timeout=CALL_DEADLINE)]
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in TASK_REFUSALS, f"{exc.code().name}: {exc.details()}"
            assert exc.details()
        else:
            kinds = [e.WhichOneof("event") for e in stream]
            assert kinds == ["chunk"] * (len(kinds) - 1) + ["end"], kinds
            end = stream[-1].end
            assert end.outcome != tasks_pb2.TASK_OUTCOME_UNSPECIFIED
            assert end.chunks == len(kinds) - 1
            if end.outcome != tasks_pb2.TASK_OUTCOME_SUCCEEDED:
                assert end.error, end
        try:
            events = [e async for e in execute.ExecuteStream(
                tasks_pb2.ExecuteRequest(task=request, routed_by="n1"), timeout=CALL_DEADLINE)]
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in TASK_REFUSALS | {grpc.StatusCode.ABORTED}, exc.details()
            assert exc.details()
        else:
            assert events and events[0].WhichOneof("event") == "started"

    await in_thread(run)
    await still_healthy(target)


# --- Long-running tasks: Start, GetTask, WaitTask, CancelTask; StoreRecord, Launch --------


@st.composite
def task_records(draw: st.DrawFn) -> tasks_pb2.TaskRecord:
    return tasks_pb2.TaskRecord(
        task_id=draw(st.sampled_from(["", "t1", "x" * 300]) | st.text(max_size=12)),
        task=draw(task_requests()),
        state=draw(st.integers(0, 9)),
        attempt=draw(st.integers(0, 2**32 - 1)),
        executor=draw(st.sampled_from(["n0", "n1", ""]) | st.text(max_size=8)),
        seq=draw(st.integers(0, U64)),
        progress=draw(st.floats(allow_nan=True, allow_infinity=True)),
        holders=draw(st.lists(st.sampled_from(["n0", "n1"]) | st.text(max_size=8),
                              max_size=4)),
        deadline_unix=draw(st.floats(allow_nan=True, allow_infinity=True)),
    )


async def test_long_task_calls_of_any_shape_get_one_clear_answer(target: Target):
    """Clients' calls with the admin's certificate, agents' calls with n1's: every answer
    a record or a clear refusal, the agent healthy, its record store bounded."""

    @BOUNDED
    @given(task_requests(), task_records(),
           st.sampled_from(["", "nope", "0" * 32, "y" * 300]) | st.text(max_size=40))
    @example(tasks_pb2.SubmitTaskRequest(handler="sleep", deadline_seconds=float("nan")),
             tasks_pb2.TaskRecord(task_id="t", task=tasks_pb2.SubmitTaskRequest(
                 handler="echo")), "t")
    def run(request: tasks_pb2.SubmitTaskRequest, record: tasks_pb2.TaskRecord,
            task_id: str) -> None:
        on_loop(one(request, record, task_id))

    client = tasks_pb2_grpc.TasksStub(target.as_admin)
    peer = tasks_pb2_grpc.TasksStub(target.as_peer)
    allowed = TASK_REFUSALS | {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED}

    async def answered(call: Any) -> None:
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in allowed, f"{exc.code().name}: {exc.details()}"
            assert exc.details()

    async def one(request: tasks_pb2.SubmitTaskRequest, record: tasks_pb2.TaskRecord,
                  task_id: str) -> None:
        ref = tasks_pb2.TaskRef(task_id=task_id)
        await answered(client.Start(request, timeout=CALL_DEADLINE))
        await answered(client.GetTask(ref, timeout=CALL_DEADLINE))
        await answered(client.WaitTask(ref, timeout=0.5))
        await answered(client.CancelTask(ref, timeout=CALL_DEADLINE))
        await answered(peer.StoreRecord(record, timeout=CALL_DEADLINE))
        await answered(peer.FetchRecord(ref, timeout=CALL_DEADLINE))
        await answered(peer.Launch(record, timeout=CALL_DEADLINE))

    await in_thread(run)
    for method in ("StoreRecord", "FetchRecord", "Launch"):
        body = tasks_pb2.TaskRef(task_id="t") if method == "FetchRecord" else (
            tasks_pb2.TaskRecord(task_id="t"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await getattr(client, method)(body, timeout=CALL_DEADLINE)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
    assert len(target.n0.long_tasks.store) <= TaskSettings().max_records
    await still_healthy(target)


# --- Any bytes, on every method -------------------------------------------------------------

METHODS = {
    "/skyfleet.v1.Admin/ListMembers": admin_pb2.ListMembersRequest,
    "/skyfleet.v1.Admin/Leave": admin_pb2.LeaveRequest,
    "/skyfleet.v1.Policy/Fetch": policy_pb2.FetchPolicyRequest,
    "/skyfleet.v1.Policy/Publish": policy_pb2.PublishPolicyRequest,
    "/skyfleet.v1.Tasks/Submit": tasks_pb2.SubmitTaskRequest,
    "/skyfleet.v1.Tasks/Cancel": tasks_pb2.CancelTaskRequest,
    "/skyfleet.v1.Tasks/Execute": tasks_pb2.ExecuteRequest,
    "/skyfleet.v1.Tasks/Start": tasks_pb2.SubmitTaskRequest,
    "/skyfleet.v1.Tasks/GetTask": tasks_pb2.TaskRef,
    "/skyfleet.v1.Tasks/WaitTask": tasks_pb2.TaskRef,
    "/skyfleet.v1.Tasks/CancelTask": tasks_pb2.TaskRef,
    "/skyfleet.v1.Tasks/StoreRecord": tasks_pb2.TaskRecord,
    "/skyfleet.v1.Tasks/FetchRecord": tasks_pb2.TaskRef,
    "/skyfleet.v1.Tasks/Launch": tasks_pb2.TaskRecord,
}


def parses(method: str, body: bytes) -> bool:
    try:
        METHODS[method].FromString(body)
    except DecodeError:
        return False
    return True


def foreign_bodies(peer_address: str) -> st.SearchStrategy[bytes]:
    """Another method's request, serialized: valid protobuf whose fields mean something
    else here (type confusion), plus a few raw bytes."""
    return st.one_of(
        task_requests().map(lambda m: m.SerializeToString()),
        packets(peer_address).map(lambda m: m.SerializeToString()),
        st.binary(max_size=40).map(
            lambda b: policy_pb2.PublishPolicyRequest(envelope=b).SerializeToString()
        ),
        st.binary(max_size=8),
    )


async def test_foreign_requests_on_every_unary_method(target: Target):
    """Each method fed other methods' requests, with an agent's certificate (so Leave and
    Publish must refuse the caller whatever the body)."""

    @BOUNDED
    @given(st.sampled_from(sorted(METHODS)), foreign_bodies(target.peer_address))
    @example("/skyfleet.v1.Admin/Leave", b"")
    def run(method: str, body: bytes) -> None:
        assume(parses(method, body))  # bytes that are no protobuf at all: see below
        on_loop(one(method, body))

    async def one(method: str, body: bytes) -> None:
        call = target.as_peer.unary_unary(method)
        try:
            await call(body, timeout=CALL_DEADLINE)
        except grpc.aio.AioRpcError as exc:
            allowed = TASK_REFUSALS | {grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND}
            assert exc.code() in allowed, f"{method}: {exc.code().name}: {exc.details()}"
            if method.endswith(("/Leave", "/Publish")):
                assert exc.code() == grpc.StatusCode.PERMISSION_DENIED, exc.details()
        else:
            assert not method.endswith(("/Leave", "/Publish")), f"{method} accepted from n1"

    await in_thread(run)
    assert not target.n0._stop.is_set()  # every Leave was refused
    admin = admin_pb2_grpc.AdminStub(target.as_peer)
    reply = await admin.ListMembers(admin_pb2.ListMembersRequest(), timeout=CALL_DEADLINE)
    assert reply.local_node == "n0"
    await still_healthy(target)


async def test_bytes_that_are_no_protobuf_get_invalid_argument(target: Target):
    call = target.as_peer.unary_unary("/skyfleet.v1.Tasks/Submit")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"\xff\xff\xff", timeout=CALL_DEADLINE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "/skyfleet.v1.Tasks/Submit" in (refused.value.details() or "")
    await still_healthy(target)
