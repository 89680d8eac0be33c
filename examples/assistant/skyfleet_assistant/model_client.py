"""The model, behind a small interface: `ModelClient.stream_chat` gives the text deltas of
one chat completion as the model produces them. `OpenAIChatClient` speaks the
OpenAI-compatible streaming API (`POST {base_url}/chat/completions` with `"stream": true`,
answered with server-sent events), which OpenAI, vLLM, llama.cpp's server, Ollama and
most gateways serve.

Errors, translated here from httpx's so that the agent sees only these:

    ModelError                  a failure of this run: the fleet may retry the task on
      ModelConnectionError      another host (the endpoint is unreachable, timed out)
      ModelStreamError          the stream was cut or is not what the API sends
      ModelHttpError            the endpoint answered with an error status
        ModelRequestRejected    400, 413, 422: the request's content is refused

Whose fault a status is decides whether a retry elsewhere can help. 400 (bad request,
e.g. the context is too long), 413 (too large) and 422 (unprocessable) are about what was
asked, which comes from the payload: every host would send the same request and be
refused the same way, so it is `ModelRequestRejected` and the agent makes it the
client's fault. Every other status is this host's: 401/403 its key, 404 its `base_url`
or configured model (an unknown model named by the payload is a 404 too, but reading it
as the client's fault would hide a misconfigured host behind the client's name, which is
worse than one wasted retry), 429 its quota, 5xx its endpoint.

Nothing here writes the API key anywhere but the Authorization header: an endpoint's
error text is quoted in messages with the key blanked out, as some endpoints echo it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

CLIENT_FAULT_STATUSES = frozenset({400, 413, 422})
"""Statuses that refuse the request's content (see the module docstring)."""

MAX_ERROR_BODY = 2048
"""Bytes of an error response read for its message: enough for any API's error JSON,
and an endpoint's HTML error page is not read to its end."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a chat: `role` is "system", "user" or "assistant"."""

    role: str
    content: str


class ModelClient(Protocol):
    def stream_chat(
        self, messages: Sequence[Message], *, model: str, max_tokens: int
    ) -> AsyncGenerator[str, None]:
        """The text deltas of the model's answer to `messages`, as they arrive; ends when
        the answer is complete, raises `ModelError` otherwise. A generator rather than
        any iterator so that a caller whose own reader hung up closes it, and with it
        the model's connection, at once (`contextlib.aclosing`)."""
        ...


class ModelError(RuntimeError):
    """The model could not give its answer on this run."""


class ModelConnectionError(ModelError):
    """The endpoint could not be reached, or went silent for longer than the timeout."""


class ModelStreamError(ModelError):
    """The answer's stream broke off, or carried what the API never sends."""


class ModelHttpError(ModelError):
    """The endpoint answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ModelRequestRejected(ModelHttpError):
    """The endpoint refused what was asked (`CLIENT_FAULT_STATUSES`)."""


class SseDecoder:
    """Server-sent events, sans I/O: lines in, each event's data out (the `data:` lines
    of an event joined by newlines, dispatched at the blank line that ends it). Comments
    (`:` lines, which servers send as keep-alives) and other fields are skipped."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed_line(self, line: str) -> str | None:
        """The data of the event this line ends, if it ends one."""
        line = line.rstrip("\r\n")
        if not line:
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def end(self) -> str | None:
        """The data of an event the stream ended without a blank line after."""
        return self.feed_line("")


@dataclass(frozen=True, slots=True)
class Delta:
    """What one event of a completion stream says: its text and whether it was the last."""

    text: str
    finished: bool


def parse_chunk(data: str) -> Delta:
    """One `chat.completion.chunk` event: `choices[0].delta.content` (absent or null in
    the role-only first event and the last), finished once a `finish_reason` is set.
    Raises ModelStreamError for what is not such a chunk, or an error the endpoint sent
    in the stream after its 200."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError:
        raise ModelStreamError(f"an event is not JSON: {data[:80]!r}") from None
    if not isinstance(doc, dict):
        raise ModelStreamError(f"an event is not a JSON object: {data[:80]!r}")
    if "error" in doc:
        raise ModelStreamError(f"the endpoint reported an error mid-stream: {_error_text(doc)}")
    choices = doc.get("choices")
    if not isinstance(choices, list):
        raise ModelStreamError(f"an event has no choices: {data[:80]!r}")
    if not choices:  # a usage-only event (stream_options.include_usage)
        return Delta("", finished=False)
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    if content is not None and not isinstance(content, str):
        raise ModelStreamError(f"an event's content is not text: {data[:80]!r}")
    finished = isinstance(choice, dict) and choice.get("finish_reason") is not None
    return Delta(content or "", finished=finished)


def _error_text(doc: dict[str, Any]) -> str:
    error = doc.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return json.dumps(error)[:200]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAIChatClient:
    """A `ModelClient` of an OpenAI-compatible endpoint, used inside `async with` of
    the `httpx.AsyncClient` it is given (one per run: its connections end with it)."""

    http: httpx.AsyncClient
    base_url: str
    """The API's root, e.g. `https://api.openai.com/v1`: `/chat/completions` follows."""
    api_key: str = ""
    """Sent as a bearer token; empty sends none (a local endpoint)."""

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    async def stream_chat(
        self, messages: Sequence[Message], *, model: str, max_tokens: int
    ) -> AsyncGenerator[str, None]:
        body = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "stream": True,
        }
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.endpoint
        deltas = 0
        try:
            async with self.http.stream("POST", url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    raise await self._status_error(response)
                decoder = SseDecoder()
                async for line in response.aiter_lines():
                    data = decoder.feed_line(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        return
                    try:
                        delta = parse_chunk(data)
                    except ModelStreamError as exc:
                        raise ModelStreamError(f"{url}: {exc}") from None
                    if delta.text:
                        deltas += 1
                        yield delta.text
                    if delta.finished:
                        return
                data = decoder.end()
                if data == "[DONE]":
                    return
                # A stream without [DONE] or a finish_reason was cut: a close-delimited
                # body ends as cleanly when the endpoint dies as when it is done.
                raise ModelStreamError(f"{url}: the stream ended after {deltas} deltas "
                                       "without finishing")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ModelConnectionError(f"{url}: cannot connect ({exc})") from None
        except httpx.TimeoutException:
            raise ModelConnectionError(
                f"{url}: no answer within the timeout after {deltas} deltas"
            ) from None
        except httpx.TransportError as exc:
            # The connection broke: a reset, or a chunked body cut short.
            raise ModelStreamError(f"{url}: the stream was cut after {deltas} deltas "
                                   f"({type(exc).__name__}: {exc})") from None

    async def _status_error(self, response: httpx.Response) -> ModelHttpError:
        raw = b""
        async for part in response.aiter_bytes():
            raw += part
            if len(raw) >= MAX_ERROR_BODY:
                break
        text = raw[:MAX_ERROR_BODY].decode("utf-8", "replace")
        try:
            doc = json.loads(text)
            detail = _error_text(doc) if isinstance(doc, dict) else text
        except json.JSONDecodeError:
            detail = text
        if self.api_key:
            detail = detail.replace(self.api_key, "[key]")
        status = response.status_code
        kind = ModelRequestRejected if status in CLIENT_FAULT_STATUSES else ModelHttpError
        return kind(f"{self.endpoint}: HTTP {status}: {detail.strip()[:300]}", status)
