"""The executor: at most `capacity` running and `queue_limit` waiting, and at most one run
per idempotency key. Handlers are gated by events, so every interleaving is chosen by
the test."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncGenerator

import pytest
from task_doubles import Gates, until

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.config.tasks import TaskSettings
from skyfleet.tasks.attempts import STARTED, run_here, stream_here
from skyfleet.tasks.executor import (
    AlreadyStreamed,
    Execution,
    Executor,
    OutputTooLarge,
    Overloaded,
)
from skyfleet.tasks.handlers import (
    MAX_CHUNK,
    MAX_JOINED_OUTPUT,
    HandlerContext,
    HandlerRegistry,
    UnknownHandler,
)
from skyfleet.tasks.verdict import AttemptResult, Verdict


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def executor(gates: Gates, clock: FakeClock | None = None, **settings: object) -> Executor:
    registry = HandlerRegistry({"gated": gates.handler("e")})
    return Executor(registry, TaskSettings(**settings), clock=clock or FakeClock())  # type: ignore[arg-type]


def run(e: Executor, payload: bytes, key: str = "") -> asyncio.Task[Execution]:
    return asyncio.get_running_loop().create_task(e.execute("gated", payload, key))


async def test_capacity_then_bounded_queue_then_overloaded() -> None:
    gates = Gates()
    e = executor(gates, capacity=2, queue_limit=1)
    t1, t2, t3 = run(e, b"t1"), run(e, b"t2"), run(e, b"t3")
    await until(lambda: e.inflight == 2 and e.queued == 1, "two running, one queued")
    assert [p for _, p in gates.starts] == [b"t1", b"t2"]

    with pytest.raises(Overloaded, match=r"2 running and 1 queued \(capacity 2, queue 1\)"):
        await e.execute("gated", b"t4", "")
    assert gates.started(b"t4") == 0
    report = e.report(3, "h")
    assert (report.inflight, report.queued, report.capacity) == (2, 1, 2)

    # A finished run hands its slot to the queued task; the queue has room again.
    gates.release(b"t1")
    assert (await t1).output == b"e:t1"
    await until(lambda: gates.started(b"t3") == 1, "t3 to start")
    t5 = run(e, b"t5")
    await until(lambda: e.queued == 1, "t5 queued")
    gates.release(b"t2", b"t3", b"t5")
    assert [(await t).output for t in (t2, t3, t5)] == [b"e:t2", b"e:t3", b"e:t5"]
    assert (e.executed, e.inflight, e.queued) == (4, 0, 0)


async def test_no_queue_refuses_as_soon_as_capacity_is_used() -> None:
    gates = Gates()
    e = executor(gates, capacity=1, queue_limit=0)
    first = run(e, b"a")
    await until(lambda: e.inflight == 1, "a running")
    with pytest.raises(Overloaded):
        await e.execute("gated", b"b", "")
    gates.release(b"a")
    await first


async def test_a_finished_key_returns_the_first_result_as_duplicate() -> None:
    gates = Gates()
    gates.open_all = True
    e = executor(gates)
    first = await e.execute("gated", b"x", "key-1")
    again = await e.execute("gated", b"x", "key-1")
    assert first == Execution(b"e:x", duplicate=False)
    assert again == Execution(b"e:x", duplicate=True)
    assert gates.started(b"x") == 1 and e.executed == 1
    # Another key runs.
    assert (await e.execute("gated", b"x", "key-2")).duplicate is False
    assert gates.started(b"x") == 2


async def test_a_concurrent_duplicate_awaits_the_running_one_without_a_slot() -> None:
    gates = Gates()
    e = executor(gates, capacity=1, queue_limit=0)
    first = run(e, b"x", "k")
    await until(lambda: e.inflight == 1, "first running")
    # Capacity and queue are full, yet the duplicate is admitted: it needs no slot.
    second = run(e, b"x", "k")
    await until(lambda: not second.done() and e.inflight == 1, "second waiting")
    assert gates.started(b"x") == 1
    gates.release(b"x")
    assert (await first) == Execution(b"e:x", duplicate=False)
    assert (await second) == Execution(b"e:x", duplicate=True)
    assert gates.started(b"x") == 1


async def test_a_failed_run_is_not_cached_and_its_waiters_get_the_failure() -> None:
    gates = Gates()
    e = executor(gates)
    first = run(e, b"fail-once", "k")
    await until(lambda: e.inflight == 1, "first running")
    waiter = run(e, b"fail-once", "k")
    await until(lambda: e.inflight == 1 and not waiter.done(), "waiter parked")
    gates.release(b"fail-once")
    for task in (first, waiter):
        with pytest.raises(RuntimeError, match="fail-once failed on e"):
            await task
    assert gates.started(b"fail-once") == 1 and e.failed == 1

    # The key is free again: a retry here runs the handler again.
    retry = run(e, b"fail-once", "k")
    await until(lambda: gates.started(b"fail-once") == 2, "the retry to start")
    with pytest.raises(RuntimeError):
        await retry
    assert e.failed == 2


async def test_a_cancelled_run_frees_its_slot_and_its_key() -> None:
    gates = Gates()
    e = executor(gates, capacity=1, queue_limit=1)
    running = run(e, b"slow", "k")
    queued = run(e, b"next", "k2")
    await until(lambda: e.inflight == 1 and e.queued == 1, "one running, one queued")
    queued.cancel()  # a deadline reached while waiting for a slot
    running.cancel()  # ... and while running
    for task in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (e.inflight, e.queued) == (0, 0)
    assert gates.cancelled == [("e", b"slow")] and gates.started(b"next") == 0
    gates.open_all = True
    assert (await e.execute("gated", b"slow", "k")).duplicate is False
    assert gates.started(b"slow") == 2


async def test_results_expire_after_the_ttl() -> None:
    gates = Gates()
    gates.open_all = True
    clock = FakeClock()
    e = executor(gates, clock, idempotency_ttl=60.0)
    await e.execute("gated", b"x", "k")
    clock.now += 59.0
    assert (await e.execute("gated", b"x", "k")).duplicate is True
    clock.now += 2.0
    assert (await e.execute("gated", b"x", "k")).duplicate is False
    assert gates.started(b"x") == 2


async def test_unknown_handler_is_named_and_takes_no_slot() -> None:
    e = executor(Gates(), capacity=1, queue_limit=0)
    with pytest.raises(UnknownHandler, match="handler: unknown handler 'nope'"):
        await e.execute("nope", b"", "k")
    assert (e.inflight, e.queued, e.executed, e.failed) == (0, 0, 0, 0)


async def test_report_carries_latency_and_error_rate() -> None:
    clock = FakeClock()

    async def takes_200ms(payload: bytes, ctx: object) -> bytes:
        clock.now += 0.2
        if payload == b"boom":
            raise RuntimeError("boom")
        return b""

    e = Executor(
        HandlerRegistry({"h": takes_200ms}),
        TaskSettings(capacity=3, latency_decay=10.0),
        clock=clock,
    )
    await e.execute("h", b"", "")
    report = e.report(7, "abc")
    assert report.latency_ms == pytest.approx(200.0)
    assert report.error_rate == 0.0
    assert (report.policy_version, report.policy_hash, report.capacity) == (7, "abc", 3)
    with pytest.raises(RuntimeError):
        await e.execute("h", b"boom", "")
    # One failure right after a success: the rate moves towards 1 by (1 - exp(-0.2/10)).
    assert e.report(7, "abc").error_rate == pytest.approx(1 - math.exp(-0.02))


def test_the_report_lists_the_handlers_served_and_no_handler_means_no_capacity() -> None:
    """An empty list with capacity is what agents before the list send ("serves every
    handler"): an executor that serves nothing must not look like one."""
    settings = TaskSettings(capacity=3)
    gates = Gates()
    registry = HandlerRegistry({"gpu": gates.handler("g"), "echo": gates.handler("e")})
    serving = Executor(registry, settings).report(1, "h")
    assert (serving.handlers, serving.capacity) == (("echo", "gpu"), 3)
    idle = Executor(HandlerRegistry({}), settings).report(1, "h")
    assert (idle.handlers, idle.capacity) == ((), 0)


# --- streamed runs -------------------------------------------------------------------------


def streaming_executor(gates: Gates, **settings: object) -> Executor:
    registry = HandlerRegistry({"gated": gates.handler("e"), "tokens": gates.streamer("e")})
    return Executor(registry, TaskSettings(**settings), clock=FakeClock())  # type: ignore[arg-type]


def tokens(name: str, **fields: object) -> bytes:
    return json.dumps({"name": name, **fields}).encode()


async def test_a_stream_holds_its_slot_and_advances_only_as_chunks_are_taken() -> None:
    gates = Gates()
    e = streaming_executor(gates, capacity=1, queue_limit=0)
    async with e.streaming("tokens", tokens("s", count=5), "k") as chunks:
        assert (e.inflight, e.queued) == (1, 0)
        with pytest.raises(Overloaded):
            async with e.streaming("tokens", tokens("other"), ""):
                pass
        assert await anext(chunks) == b"e:s:0;"
        assert gates.produced[b"s"] == 1  # nothing made ahead of the reader
        assert await anext(chunks) == b"e:s:1;"
    # Left after two chunks: the handler was closed, the slot is free.
    assert gates.cancelled == [("e", b"s")] and gates.produced[b"s"] == 2
    assert (e.inflight, e.queued, e.executed) == (0, 0, 0)


async def test_a_streamed_key_never_runs_twice_unless_its_run_failed() -> None:
    gates = Gates()
    e = streaming_executor(gates)
    async with e.streaming("tokens", tokens("once", count=2), "k1") as chunks:
        assert [c async for c in chunks] == [b"e:once:0;", b"e:once:1;"]
    with pytest.raises(AlreadyStreamed, match="k1"):
        async with e.streaming("tokens", tokens("once"), "k1"):
            pass
    with pytest.raises(AlreadyStreamed, match="not replayed"):
        await e.execute("tokens", tokens("once"), "k1")
    # A one-shot key is not streamed either: its output would come twice.
    gates.open_all = True
    await e.execute("gated", b"x", "k2")
    with pytest.raises(AlreadyStreamed):
        async with e.streaming("gated", b"x", "k2"):
            pass
    # A run that failed (or was cut) kept nothing: the key may run here again.
    with pytest.raises(RuntimeError, match="cut on e after 1"):
        async with e.streaming("tokens", tokens("cut", cut_after=1), "k3") as chunks:
            [c async for c in chunks]
    async with e.streaming("tokens", tokens("cut", count=1), "k3") as chunks:
        assert [c async for c in chunks] == [b"e:cut:0;"]
    assert (e.executed, e.failed) == (3, 1)


async def test_either_kind_of_handler_serves_either_call() -> None:
    gates = Gates()
    gates.open_all = True
    e = streaming_executor(gates)
    joined = await e.execute("tokens", tokens("j", count=3), "")
    assert joined == Execution(b"e:j:0;e:j:1;e:j:2;", duplicate=False)
    async with e.streaming("gated", b"one", "") as chunks:
        assert [c async for c in chunks] == [b"e:one"]
    with pytest.raises(OutputTooLarge, match="stream it"):
        await e.execute("tokens", tokens("big", count=4, size=MAX_JOINED_OUTPUT // 3), "")


async def test_chunks_are_checked_and_the_run_gets_its_session_and_config() -> None:
    seen: list[tuple[str, object]] = []

    async def odd(payload: bytes, ctx: HandlerContext) -> AsyncGenerator[bytes, None]:
        seen.append((ctx.session, ctx.config.get("model")))
        if payload == b"huge":
            yield bytes(MAX_CHUNK + 1)
        yield "text"  # type: ignore[misc]

    e = Executor(HandlerRegistry({"odd": odd}), TaskSettings(),
                 handler_config={"odd": {"model": "m1"}})
    with pytest.raises(TypeError, match="yielded str"):
        async with e.streaming("odd", b"", "", session="s1") as chunks:
            [c async for c in chunks]
    with pytest.raises(OutputTooLarge, match="over"):
        await e.execute("odd", b"huge", "", session="s2")
    assert seen == [("s1", "m1"), ("s2", "m1")]
    assert e.failed == 2


async def test_a_run_going_on_does_not_keep_later_results_from_expiring() -> None:
    gates = Gates()
    clock = FakeClock()
    e = executor(gates, clock, idempotency_ttl=10.0)
    long_run = run(e, b"long", "k-long")
    await until(lambda: gates.started(b"long") == 1, "the long run")
    gates.release(b"short")
    assert (await e.execute("gated", b"short", "k-short")).duplicate is False
    assert (await e.execute("gated", b"short", "k-short")).duplicate is True
    clock.now += 11.0
    # Past the TTL the short result is gone although the long run, older, still runs.
    assert (await e.execute("gated", b"short", "k-short")).duplicate is False
    gates.release(b"long")
    assert (await long_run).duplicate is False


async def test_a_handlers_own_timeout_error_is_its_failure_not_a_deadline() -> None:
    async def raises(payload: bytes, ctx: HandlerContext) -> bytes:
        raise TimeoutError("the model took too long")

    async def streams_then_raises(payload: bytes, ctx: HandlerContext
                                  ) -> AsyncGenerator[bytes, None]:
        yield b"one"
        raise TimeoutError("the model took too long")

    e = Executor(HandlerRegistry({"r": raises, "s": streams_then_raises}), TaskSettings())
    one_shot = await run_here(e, tasks_pb2.SubmitTaskRequest(handler="r"), 5.0)
    assert (one_shot.verdict, one_shot.timed_out) == (Verdict.FAILED, False)
    events = [ev async for ev in stream_here(e, tasks_pb2.SubmitTaskRequest(handler="s"),
                                             5.0, 5.0)]
    end = events[-1]
    assert events[:2] == [STARTED, b"one"] and isinstance(end, AttemptResult)
    assert (end.verdict, end.timed_out) == (Verdict.FAILED, False)
    assert "the model took too long" in end.error
