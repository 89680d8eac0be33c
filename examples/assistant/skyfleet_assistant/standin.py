"""A stand-in for an OpenAI-compatible model endpoint, on loopback: the assistant's tests
and demo talk to it over real HTTP, through the same client as to a real model.

It serves `POST /v1/chat/completions` with `"stream": true` as server-sent events in a
chunked HTTP/1.1 body (one connection per request), with a scripted, deterministic
answer to the last user message (`scripted_reply`): a message containing "calculate
<expression>" is answered `TOOL: calc <expression>`; a tool's result `TOOL RESULT <tool>
<args>: <result>` is answered "The result is <result>."; anything else is echoed back,
a word per token. `StandinOptions` make it fail (an error status before streaming, or a
cut after some tokens), go slowly (a delay between tokens), demand a key, or hold its last
token until a test says so; it records every request so a test can check what was sent.

Only what the assistant's client sends is parsed (a request line, headers, a body of
Content-Length bytes): this is a test double, not a server to expose.

    python -m skyfleet_assistant.standin --port 8000 [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

PATH = "/v1/chat/completions"
MAX_HEAD = 64 * 1024
"""Bytes of a request line and headers at most."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StandinOptions:
    fail_status: int | None = None
    """Answer every request with this status and an OpenAI-style error body."""
    cut_after: int | None = None
    """Close the connection after this many tokens, without ending the stream."""
    delay: float = 0.0
    """Seconds between two tokens (the demo; tests hold tokens with `hold_last`)."""
    api_key: str = ""
    """If set, a request without `Authorization: Bearer <api_key>` is refused with 401,
    whose message quotes the key it got, as some real endpoints do."""
    hold_last: asyncio.Event | None = None
    """If set, every answer's last token waits for it."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: dict[str, Any]


CALCULATE = re.compile(r"calculate\s+(.+?)[\s?.!]*$", re.IGNORECASE | re.DOTALL)
TOOL_RESULT = re.compile(r"TOOL RESULT \S+ .*?: (.*)$", re.DOTALL)


def scripted_reply(messages: Sequence[dict[str, Any]]) -> list[str]:
    """The tokens of the answer to the last user message (see the module docstring)."""
    last = next((str(m.get("content", "")) for m in reversed(messages)
                 if m.get("role") == "user"), "")
    if result := TOOL_RESULT.match(last):
        text = f"The result is {result.group(1)}."
    elif calculate := CALCULATE.search(last):
        text = f"TOOL: calc {calculate.group(1)}"
    else:
        text = last
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])]


def _event(doc: dict[str, Any] | str) -> bytes:
    data = doc if isinstance(doc, str) else json.dumps(doc)
    payload = f"data: {data}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(payload), payload)  # one HTTP chunk per event


def _chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "model": "standin",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class StandinModel:
    """The server, started by `async with` (on a free port unless one is given)."""

    def __init__(
        self, options: StandinOptions | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.options = options or StandinOptions()
        self.requests: list[RecordedRequest] = []
        self.tokens_sent = 0
        """Tokens written to connections so far, over all requests."""
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    async def __aenter__(self) -> StandinModel:
        self._server = await asyncio.start_server(self._serve, self._host, self._port,
                                                  limit=MAX_HEAD)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        # A connection still answering (held, or its reader gone) ends with the server.
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, or sent what this double does not read
        finally:
            self._connections.discard(task)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")[:-2]
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "")
        raw = await reader.readexactly(int(length)) if length.isdigit() else b""
        refusal = self._refusal(method, path, headers, raw)
        if refusal is not None:
            await _error(writer, *refusal)
            return
        body = json.loads(raw)
        self.requests.append(RecordedRequest(path, headers, body))
        if self.options.fail_status is not None:
            await _error(writer, self.options.fail_status, "the stand-in fails as asked")
            return
        await self._stream(writer, scripted_reply(body["messages"]))

    def _refusal(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str] | None:
        """The error status and message a request gets, if it is not served."""
        if (method, path) != ("POST", PATH):
            return 404, f"no route {method} {path}"
        given = headers.get("authorization", "").removeprefix("Bearer ")
        if self.options.api_key and given != self.options.api_key:
            return 401, f"Incorrect API key provided: {given}"
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, "the body is not JSON (with a Content-Length)"
        if not isinstance(body, dict) or body.get("stream") is not True:
            return 400, "only streamed completions are served"
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return 400, "messages: expected a list of objects"
        return None

    async def _stream(self, writer: asyncio.StreamWriter, tokens: list[str]) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        writer.write(_event(_chunk({"role": "assistant"})))
        for i, token in enumerate(tokens):
            if i == self.options.cut_after:
                return  # closed by the caller mid-body: the chunked stream is incomplete
            if i and self.options.delay:
                await asyncio.sleep(self.options.delay)
            if i == len(tokens) - 1 and self.options.hold_last is not None:
                await self.options.hold_last.wait()
            writer.write(_event(_chunk({"content": token})))
            await writer.drain()
            self.tokens_sent += 1
        writer.write(_event(_chunk({}, finish="stop")) + _event("[DONE]") + b"0\r\n\r\n")
        await writer.drain()


async def _error(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "standin"}}).encode()
    writer.write(b"HTTP/1.1 %d Error\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, len(body), body))
    await writer.drain()


async def _serve_forever(model: StandinModel) -> None:
    async with model:
        print(f"stand-in model at {model.base_url}", flush=True)
        await asyncio.Event().wait()  # until Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skyfleet_assistant.standin",
                                     description="A scripted OpenAI-compatible model endpoint.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between tokens")
    parser.add_argument("--fail-status", type=int, help="answer every request with it")
    parser.add_argument("--cut-after", type=int, help="cut every stream after N tokens")
    parser.add_argument("--api-key-env", default="",
                        help="an environment variable holding the key to demand")
    args = parser.parse_args(argv)
    key = os.environ.get(args.api_key_env, "") if args.api_key_env else ""
    options = StandinOptions(delay=args.delay, fail_status=args.fail_status,
                             cut_after=args.cut_after, api_key=key)
    try:
        asyncio.run(_serve_forever(StandinModel(options, host=args.host, port=args.port)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
