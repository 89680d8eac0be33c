"""Built-in handlers and the registry: bad payloads name the field, the registry comes from
the `skyfleet.handlers` entry points, unknown names are named."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import types

import numpy as np
import pytest

from skyfleet.config.tasks import TaskSettings
from skyfleet.tasks import handlers
from skyfleet.tasks.handlers import (
    MAX_HANDLERS,
    BadPayload,
    HandlerContext,
    HandlerRegistry,
    UnknownHandler,
    draw_service_time,
)


def ctx(**settings: object) -> HandlerContext:
    return HandlerContext(TaskSettings(**settings), random.Random(7))  # type: ignore[arg-type]


async def test_echo_returns_the_payload() -> None:
    assert await handlers.echo(b"\x00any bytes", ctx()) == b"\x00any bytes"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff", r"payload: not JSON"),
        (b"{", r"payload: not JSON"),
        (b"[1, 2]", r"payload: expected a JSON object"),
        (b'{"mean": -1}', r"payload\.mean: expected a number in \[0\.0, 3600\.0\], got -1"),
        (b'{"mean": "1"}', r"payload\.mean: expected a number .* got '1'"),
        (b'{"mean": true}', r"payload\.mean: expected a number .* got True"),
        (b'{"scv": 101}', r"payload\.scv: expected a number in \[0\.0, 100\.0\]"),
        (b'{"dist": "pareto"}', r"payload\.dist: unknown distribution 'pareto'"),
    ],
)
async def test_sleep_names_the_bad_field(payload: bytes, message: str) -> None:
    with pytest.raises(BadPayload, match=message):
        await handlers.sleep(payload, ctx())


@pytest.mark.parametrize("dist", ["fixed", "exponential", "lognormal", "bimodal"])
async def test_sleep_with_zero_mean_returns_at_once(dist: str) -> None:
    # A zero mean is valid input for every distribution, not a handler crash that
    # would be retried on every peer and counted against them.
    payload = json.dumps({"dist": dist, "mean": 0}).encode()
    assert json.loads(await handlers.sleep(payload, ctx())) == {"slept": 0.0}


async def test_sleep_uses_the_agent_defaults_without_payload() -> None:
    out = json.loads(await handlers.sleep(b"", ctx(sleep_distribution="fixed", sleep_mean=0.001)))
    assert out == {"slept": 0.001}


@pytest.mark.parametrize(
    ("dist", "scv"),
    [("exponential", 1.0), ("lognormal", 4.0), ("lognormal", 0.25), ("bimodal", None)],
)
def test_service_times_have_the_requested_mean_and_variability(
    dist: str, scv: float | None
) -> None:
    rng = random.Random(1)
    samples = np.array([draw_service_time(dist, 0.05, scv or 0.0, rng) for _ in range(100_000)])
    mean = float(samples.mean())
    assert mean == pytest.approx(0.05, rel=0.03)
    if scv is not None:
        assert float(samples.var()) / mean**2 == pytest.approx(scv, rel=0.15)


def test_fixed_service_time_is_the_mean() -> None:
    assert draw_service_time("fixed", 0.25, 9.0, random.Random()) == 0.25


async def test_cpu_computes_the_norm_of_a_matrix_power() -> None:
    out = json.loads(await handlers.cpu(b'{"n": 16, "rounds": 3, "seed": 5}', ctx()))
    rng = np.random.default_rng(5)
    m = rng.standard_normal((16, 16)) / np.sqrt(16)
    assert out == {"n": 16, "rounds": 3, "norm": pytest.approx(np.linalg.norm(m @ m @ m))}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"n": 0}', "payload.n"),
        (b'{"n": 4096}', "payload.n"),
        (b'{"n": "big"}', "payload.n"),
        (b'{"rounds": 0}', "payload.rounds"),
        (b'{"seed": -1}', "payload.seed"),
    ],
)
async def test_cpu_names_the_bad_field(payload: bytes, field: str) -> None:
    with pytest.raises(BadPayload, match=field.replace(".", r"\.") + ": expected a number"):
        await handlers.cpu(payload, ctx())


def _threads_in(code: types.CodeType) -> int:
    count = 0
    for frame in sys._current_frames().values():
        f: types.FrameType | None = frame
        while f is not None and f.f_code is not code:
            f = f.f_back
        count += f is not None
    return count


async def test_cpu_work_stops_at_the_next_round_when_cancelled() -> None:
    # A deadline cancels the handler; the worker thread must not keep burning a core
    # for the remaining rounds (the executor already gave the slot to the next task).
    stop = threading.Event()
    stop.set()
    assert handlers.matrix_power_norm(8, 10**9, 0, stop) is None

    code = handlers.matrix_power_norm.__code__
    task = asyncio.get_running_loop().create_task(
        handlers.cpu(b'{"n": 512, "rounds": 1000}', ctx())
    )
    for _ in range(1000):
        if _threads_in(code):
            break
        await asyncio.sleep(0.01)
    assert _threads_in(code) == 1, "the work never started in a thread"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(1000):
        if not _threads_in(code):
            break
        await asyncio.sleep(0.01)
    assert _threads_in(code) == 0, "the cancelled work kept running"


def test_registry_loads_the_installed_entry_points() -> None:
    registry = HandlerRegistry.from_entry_points()
    assert {"echo", "sleep", "cpu"} <= set(registry.names())
    assert registry.get("echo") is handlers.echo
    assert HandlerRegistry.from_entry_points(["sleep"]).names() == ["sleep"]


def test_registry_names_unknown_handlers() -> None:
    with pytest.raises(UnknownHandler, match=r"tasks\.handlers: no handler named ehco, slep \("):
        HandlerRegistry.from_entry_points(["echo", "ehco", "slep"])
    with pytest.raises(UnknownHandler, match=r"installed: .*cpu, echo"):
        HandlerRegistry.from_entry_points(["nope"])
    with pytest.raises(UnknownHandler, match="handler: unknown handler 'cpu'"):
        HandlerRegistry({"echo": handlers.echo}).get("cpu")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["echo", "my handler"], r"tasks\.handlers: 'my handler' is no handler name \(1-256"),
        ([""], r"tasks\.handlers: '' is no handler name"),
        (["h" * 257], r"tasks\.handlers: 'h{80}' is no handler name"),
        ([f"h{i}" for i in range(MAX_HANDLERS + 1)], r"257 handlers, more than 256"),
    ],
)
def test_registry_refuses_what_a_status_could_not_advertise(names: list[str], message: str) -> None:
    """Peers refuse a status listing such names, and drop the packets carrying it."""
    with pytest.raises(UnknownHandler, match=message):
        HandlerRegistry(dict.fromkeys(names, handlers.echo))
    most = HandlerRegistry({f"h{i}": handlers.echo for i in range(MAX_HANDLERS)})
    assert len(most.names()) == 256


async def test_sleep_reports_its_progress_in_slices_of_a_second_at_most() -> None:
    reports: list[tuple[float, str]] = []
    context = HandlerContext(TaskSettings(), random.Random(7),
                             progress=lambda f, note: reports.append((f, note)))
    await handlers.sleep(b'{"dist": "fixed", "mean": 0.02}', context)
    assert reports == [(1.0, "slept 0.0s of 0.0s")]
