"""The assistant as the agent runs it: installed as an entry point, run by the real
`Executor` against the stand-in model on loopback. The stand-in's last token waits for an
event the test sets, so "streams as tokens arrive" is shown without timing anything."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from skyfleet.config.agent import AgentConfig, load_agent_config
from skyfleet.config.errors import ConfigError
from skyfleet.config.tasks import TaskSettings
from skyfleet.node import Agent
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.handlers import (
    BadPayload,
    HandlerRegistry,
    installed_handlers,
    is_streaming,
)
from skyfleet_assistant.agent import Assistant
from skyfleet_assistant.conversations import Turn
from skyfleet_assistant.model_client import ModelHttpError, ModelStreamError
from skyfleet_assistant.settings import DEFAULT_SYSTEM_PROMPT
from skyfleet_assistant.standin import StandinModel, StandinOptions
from tests.runtime.joined_agents import joined_layout

KEY = "sk-test-0123456789"
KEY_ENV = "SKYFLEET_ASSISTANT_TEST_KEY"
NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BOUND = 10.0
"""Seconds any wait of these tests may take at most: a hang fails, it does not stall."""


def executor(model: StandinModel, assistant: Assistant, **config: Any) -> Executor:
    table = {"base_url": model.base_url, "model": "standin", "api_key_env": KEY_ENV, **config}
    return Executor(HandlerRegistry({"assistant": assistant.run}), TaskSettings(),
                    handler_config={"assistant": table})


def payload(message: str, **fields: Any) -> bytes:
    return json.dumps({"message": message, **fields}).encode()


async def run(e: Executor, body: bytes, session: str = "") -> str:
    async with asyncio.timeout(BOUND), e.streaming("assistant", body, "", session=session) as it:
        return b"".join([chunk async for chunk in it]).decode()


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


@pytest.fixture
async def standin() -> AsyncIterator[StandinModel]:
    async with StandinModel(StandinOptions(api_key=KEY)) as model:
        yield model


def messages(model: StandinModel, request: int) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in model.requests[request].body["messages"]]


def test_the_entry_point_is_installed_and_streams() -> None:
    assert "assistant" in installed_handlers()
    handler = HandlerRegistry.from_entry_points(["assistant"]).get("assistant")
    assert is_streaming(handler)


async def test_chunks_flow_while_the_model_is_still_answering(key: str) -> None:
    last = asyncio.Event()
    async with StandinModel(StandinOptions(api_key=key, hold_last=last)) as model:
        e = executor(model, Assistant())
        body = payload("one two three four")
        async with asyncio.timeout(BOUND), e.streaming("assistant", body, "") as chunks:
            assert await anext(chunks) == b"one"
            # The first chunk is out while the model has not sent its last token.
            assert model.tokens_sent < 4
            last.set()
            rest = [chunk async for chunk in chunks]
    assert rest == [b" two", b" three", b" four"]
    assert model.tokens_sent == 4
    assert messages(model, 0) == [("system", DEFAULT_SYSTEM_PROMPT),
                                  ("user", "one two three four")]


async def test_a_tool_request_runs_the_tool_and_asks_the_model_again(
    key: str, standin: StandinModel
) -> None:
    e = executor(standin, Assistant(now=lambda: NOON))
    out = await run(e, payload("Please calculate 2+3"))
    assert out == "TOOL: calc 2+3\n[calc 2+3: 5]\nThe result is 5."
    assert len(standin.requests) == 2
    assert messages(standin, 1)[1:] == [
        ("user", "Please calculate 2+3"),
        ("assistant", "TOOL: calc 2+3"),
        ("user", "TOOL RESULT calc 2+3: 5"),
    ]


async def test_the_steps_stop_at_max_steps_and_a_one_shot_call_gets_them_joined(
    key: str, standin: StandinModel
) -> None:
    e = executor(standin, Assistant(), max_steps=1)
    execution = await e.execute("assistant", payload("calculate 2+3"), "")
    assert execution.output == b"TOOL: calc 2+3"  # the last step's answer, as it is
    assert len(standin.requests) == 1


async def test_the_next_task_of_a_session_sends_its_history(
    key: str, standin: StandinModel
) -> None:
    assistant = Assistant()
    e = executor(standin, assistant)
    assert await run(e, payload("hello there"), session="s1") == "hello there"
    assert await run(e, payload("calculate 6*7"), session="s1") == (
        "TOOL: calc 6*7\n[calc 6*7: 42]\nThe result is 42.")
    assert await run(e, payload("and again"), session="s1") == "and again"
    assert await run(e, payload("alone"), session="s2") == "alone"
    assert messages(standin, 3)[1:] == [
        ("user", "hello there"), ("assistant", "hello there"),
        ("user", "calculate 6*7"), ("assistant", "The result is 42."),
        ("user", "and again"),
    ]
    assert messages(standin, 4)[1:] == [("user", "alone")]  # another session's own
    assert assistant.conversations.history("s1")[-1] == Turn("and again", "and again")


async def test_a_client_sent_history_replaces_the_kept_one_and_is_kept(
    key: str, standin: StandinModel
) -> None:
    assistant = Assistant()
    e = executor(standin, assistant, max_turns=2)
    await run(e, payload("forgotten"), session="s")
    history = [{"user": f"q{n}", "assistant": f"a{n}"} for n in range(3)]
    await run(e, payload("now", history=history), session="s")
    assert messages(standin, 1)[1:] == [("user", "q1"), ("assistant", "a1"),
                                        ("user", "q2"), ("assistant", "a2"), ("user", "now")]
    assert assistant.conversations.history("s") == (Turn("q2", "a2"), Turn("now", "now"))


async def test_a_stream_cut_by_the_model_fails_the_run_clearly(key: str) -> None:
    async with StandinModel(StandinOptions(api_key=key, cut_after=2)) as model:
        assistant = Assistant()
        e = executor(model, assistant)
        got: list[bytes] = []
        with pytest.raises(ModelStreamError, match=r"/v1/chat/completions: the stream was "
                                                   r"cut after 2 deltas"):
            async with e.streaming("assistant", payload("a b c d"), "", session="s") as chunks:
                async with asyncio.timeout(BOUND):
                    async for chunk in chunks:
                        got.append(chunk)
    assert got == [b"a", b" b"]
    assert assistant.conversations.history("s") == ()  # an unfinished turn is not kept
    assert e.failed == 1


async def test_a_model_endpoint_failing_is_a_failure_of_the_run(key: str) -> None:
    async with StandinModel(StandinOptions(api_key=key, fail_status=503)) as model:
        with pytest.raises(ModelHttpError, match="chat/completions: HTTP 503"):
            await run(executor(model, Assistant()), payload("hi"))


async def test_a_request_the_endpoint_refuses_is_the_clients_fault(key: str) -> None:
    async with StandinModel(StandinOptions(api_key=key, fail_status=400)) as model:
        with pytest.raises(BadPayload, match="payload: the model endpoint refused it: .*HTTP 400"):
            await run(executor(model, Assistant()), payload("hi"))


@pytest.mark.parametrize(
    ("body", "error"),
    [(b"not json", "payload: not JSON"),
     (b"[]", "payload: expected a JSON object"),
     (payload(""), "payload.message"),
     (json.dumps({"mesage": "x"}).encode(), "payload.mesage: unknown field"),
     (payload("x", model=""), "payload.model"),
     (payload("x", max_tokens=0), "payload.max_tokens"),
     (payload("x", max_tokens=10_000), "payload.max_tokens: expected an integer from 1 to 1024"),
     (payload("x", max_tokens=True), "payload.max_tokens"),
     (payload("x", history={}), "payload.history"),
     (payload("x", history=[{"user": "q"}]), r"payload.history\[0\]")],
)
async def test_bad_payloads_name_the_field(
    key: str, standin: StandinModel, body: bytes, error: str
) -> None:
    with pytest.raises(BadPayload, match=error):
        await run(executor(standin, Assistant()), body)
    assert standin.requests == []


async def test_a_misconfigured_host_fails_the_run_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, standin: StandinModel
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"handlers.assistant.api_key_env: the environment "
                                          f"variable {KEY_ENV} is not set"):
        await run(executor(standin, Assistant()), payload("hi"))
    with pytest.raises(ConfigError, match="handlers.assistant.max_steps"):
        await run(executor(standin, Assistant(), max_steps=0), payload("hi"))


async def test_the_key_is_sent_to_the_endpoint_only(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    async with StandinModel(StandinOptions(api_key=key)) as model:
        await run(executor(model, Assistant()), payload("calculate 1+1"), session="s")
        for options in (StandinOptions(api_key="another"), StandinOptions(cut_after=1),
                        StandinOptions(fail_status=500)):
            model.options = options
            with pytest.raises(Exception) as info:  # noqa: B017 - each its own kind
                await run(executor(model, Assistant()), payload("a b"))
            errors.append(repr(info.value) + str(info.value))
    assert model.requests[0].headers["authorization"] == f"Bearer {key}"
    assert "401" in errors[0] and "[key]" in errors[0]
    assert all(key not in text for text in [*errors, caplog.text])
    assert caplog.records  # the run was logged (httpx, the assistant's tool step)


def agent_config(tmp_path: Path, port: int, tables: dict[str, dict[str, Any]]) -> AgentConfig:
    layout, _ = joined_layout(tmp_path, [port])
    config = load_agent_config(layout.config_path("n0"))
    return replace(config, tasks=replace(config.tasks, handlers=("assistant", "echo")),
                   handler_config=tables)


async def test_the_agent_hands_its_config_table_to_the_installed_handler(
    key: str, standin: StandinModel, tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    table = {"base_url": standin.base_url, "model": "from-config", "api_key_env": KEY_ENV}
    agent = Agent(agent_config(tmp_path, free_ports(1)[0], {"assistant": table}))
    async with asyncio.timeout(BOUND), agent.executor.streaming(
        "assistant", payload("via the agent"), ""
    ) as chunks:
        assert b"".join([c async for c in chunks]) == b"via the agent"
    assert standin.requests[0].body["model"] == "from-config"


def test_a_table_for_a_handler_not_served_fails_the_start(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    config = agent_config(tmp_path, free_ports(1)[0], {"asistant": {}})
    with pytest.raises(ConfigError, match=r"handlers.asistant: no such handler served here "
                                          r"\(serves: assistant, echo\)"):
        Agent(config)
