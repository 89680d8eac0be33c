"""The model client: server-sent events decoded by table, and every way an endpoint can
fail turned into one clear error naming the endpoint, against the stand-in on loopback."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from skyfleet_assistant.model_client import (
    Delta,
    Message,
    ModelConnectionError,
    ModelHttpError,
    ModelRequestRejected,
    ModelStreamError,
    OpenAIChatClient,
    SseDecoder,
    parse_chunk,
)
from skyfleet_assistant.standin import StandinModel, StandinOptions


@pytest.mark.parametrize(
    ("lines", "events"),
    [
        (["data: a", ""], ["a"]),
        (["data:a", ""], ["a"]),  # the space after the colon is optional
        (["data: a", "data: b", ""], ["a\nb"]),  # lines of one event join
        ([": keep-alive", "", "data: x", ""], ["x"]),  # comments dispatch nothing
        (["event: message", "id: 7", "data: y", "retry: 5", ""], ["y"]),
        (["data: a\r\n", "\r\n"], ["a"]),
        (["", "", "data: z", ""], ["z"]),
    ],
)
def test_sse_events_by_table(lines: list[str], events: list[str]) -> None:
    decoder = SseDecoder()
    got = [data for line in lines if (data := decoder.feed_line(line)) is not None]
    assert got == events and decoder.end() is None


def test_an_event_left_open_at_the_end_is_dispatched() -> None:
    decoder = SseDecoder()
    assert decoder.feed_line("data: [DONE]") is None
    assert decoder.end() == "[DONE]"


@pytest.mark.parametrize(
    ("data", "delta"),
    [
        ('{"choices":[{"delta":{"role":"assistant"},"finish_reason":null}]}', Delta("", False)),
        ('{"choices":[{"delta":{"content":"hé"},"finish_reason":null}]}', Delta("hé", False)),
        ('{"choices":[{"delta":{"content":null}}]}', Delta("", False)),
        ('{"choices":[{"delta":{},"finish_reason":"stop"}]}', Delta("", True)),
        ('{"choices":[],"usage":{"total_tokens":3}}', Delta("", False)),
    ],
)
def test_completion_chunks_by_table(data: str, delta: Delta) -> None:
    assert parse_chunk(data) == delta


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"object":"x"}', "no choices"),
        ('{"choices":[{"delta":{"content":5}}]}', "content is not text"),
        ('{"error":{"message":"overloaded"}}', "error mid-stream: overloaded"),
    ],
)
def test_what_no_completion_stream_sends_is_a_stream_error(data: str, message: str) -> None:
    with pytest.raises(ModelStreamError, match=message):
        parse_chunk(data)


async def collect(base_url: str, api_key: str = "") -> list[str]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        client = OpenAIChatClient(http=http, base_url=base_url, api_key=api_key)
        messages = [Message("user", "one two three")]
        return [d async for d in client.stream_chat(messages, model="m", max_tokens=8)]


async def test_a_stream_is_its_deltas_and_the_request_is_openais() -> None:
    async with StandinModel(StandinOptions(api_key="k-123")) as model:
        assert await collect(model.base_url, "k-123") == ["one", " two", " three"]
    (request,) = model.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k-123"
    assert request.body == {"model": "m", "max_tokens": 8, "stream": True,
                            "messages": [{"role": "user", "content": "one two three"}]}


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, ModelHttpError), (429, ModelHttpError), (404, ModelHttpError),
     (400, ModelRequestRejected), (422, ModelRequestRejected)],
)
async def test_an_error_status_names_the_endpoint_and_status(
    status: int, error: type[ModelHttpError]
) -> None:
    async with StandinModel(StandinOptions(fail_status=status)) as model:
        with pytest.raises(error) as info:
            await collect(model.base_url)
    assert str(info.value) == (f"{model.base_url}/chat/completions: HTTP {status}: "
                               "the stand-in fails as asked")
    assert info.value.status == status
    assert (status in (400, 422)) == isinstance(info.value, ModelRequestRejected)


async def test_a_key_the_endpoint_echoes_is_blanked_in_the_error() -> None:
    async with StandinModel(StandinOptions(api_key="right")) as model:
        with pytest.raises(ModelHttpError) as info:
            await collect(model.base_url, "sk-wrong-secret")
    assert "HTTP 401: Incorrect API key provided: [key]" in str(info.value)
    assert "sk-wrong-secret" not in str(info.value)


async def test_a_stream_cut_midway_is_a_stream_error_saying_how_far_it_got() -> None:
    async with StandinModel(StandinOptions(cut_after=2)) as model:
        with pytest.raises(ModelStreamError, match=r"/chat/completions: the stream was cut "
                                                   r"after 2 deltas \(RemoteProtocolError"):
            await collect(model.base_url)


async def test_an_endpoint_nobody_listens_on_is_a_connection_error(
    free_ports: Callable[[int], list[int]],
) -> None:
    port = free_ports(1)[0]
    with pytest.raises(ModelConnectionError, match=rf"127.0.0.1:{port}/v1/chat/completions: "
                                                   "cannot connect"):
        await collect(f"http://127.0.0.1:{port}/v1")
