"""The `assistant` task handler: a multi-step agent that streams a model's answer.

Payload (JSON):

    {"message": "What is 2+3? calculate 2+3",   # required, the user's turn
     "model": "llama-3.1-8b",                    # optional, else the config's `model`
     "max_tokens": 256,                          # optional, 1 to the config's `max_tokens`
     "history": [{"user": "...", "assistant": "..."}]}   # optional, see "Sessions"

A bad field is `BadPayload` naming it (the client's fault, not retried).

Steps: the model is asked with the conversation so far and the message, and its tokens
are streamed out as chunks (UTF-8 text) as they arrive. If its answer has a line
`TOOL: <name> <arguments>` (`tools.py`: `calc`, `clock`), the tool is run, its result
streamed as a line `[<name> <arguments>: <result>]`, and the model asked again with the
result, its second answer streamed in turn: up to the config's `max_steps` calls. The
output is the transcript of those steps; the conversation keeps the user's message and
the last answer.

Sessions: a task's session (`HandlerContext.session`, routed to the same host by the
fleet's session affinity) names its conversation, kept in this host's memory only
(`conversations.py`). When the host is lost, restarted, or has dropped the conversation
for room, the session's next task starts afresh: the host cannot tell a lost
conversation from a new one, so it does not claim either, and the model answers without
the earlier turns. A client that needs continuity whatever happens to hosts sends the
conversation in `history` (which then replaces what the host kept, and is kept in its
place); one that does not accepts that a lost host forgets.

Failures: the model endpoint refusing the request's content (`ModelRequestRejected`) is
the client's fault; every other model error, and a misconfigured `[handlers.assistant]`
table, is a failure of this run, which the fleet retries on another host only while no
chunk has been delivered (its rule: output is never produced twice).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from skyfleet.tasks.handlers import BadPayload, HandlerContext
from skyfleet_assistant.conversations import ConversationStore, Turn
from skyfleet_assistant.model_client import (
    Message,
    ModelClient,
    ModelRequestRejected,
    OpenAIChatClient,
)
from skyfleet_assistant.settings import AssistantSettings, parse_settings
from skyfleet_assistant.tools import find_tool_call, run_tool

log = logging.getLogger(__name__)

MAX_MESSAGE = 32_000
"""Characters of a payload's message at most."""
MAX_HISTORY = 100
"""Turns a payload's history may carry; the config's `max_turns` of them are sent."""
PAYLOAD_FIELDS = ("message", "model", "max_tokens", "history")


@dataclass(frozen=True, slots=True)
class Request:
    message: str
    model: str
    max_tokens: int
    history: tuple[Turn, ...] | None
    """The client's conversation, or None to use the one this host kept."""


def parse_request(payload: bytes, settings: AssistantSettings) -> Request:
    """The payload read, defaults from the settings; BadPayload names the bad field."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"payload: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadPayload("payload: expected a JSON object")
    for key in doc:
        if key not in PAYLOAD_FIELDS:
            raise BadPayload(f"payload.{key}: unknown field (fields: {', '.join(PAYLOAD_FIELDS)})")
    message = doc.get("message")
    if not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE:
        raise BadPayload(f"payload.message: expected text of 1 to {MAX_MESSAGE} characters")
    model = doc.get("model", settings.model)
    if not isinstance(model, str) or not model:
        raise BadPayload("payload.model: expected a model name")
    max_tokens = doc.get("max_tokens", settings.max_tokens)
    if (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
            or not 1 <= max_tokens <= settings.max_tokens):
        raise BadPayload(
            f"payload.max_tokens: expected an integer from 1 to {settings.max_tokens}"
        )
    history = _history(doc["history"]) if "history" in doc else None
    return Request(message, model, max_tokens, history)


def _history(value: Any) -> tuple[Turn, ...]:
    if not isinstance(value, list) or len(value) > MAX_HISTORY:
        raise BadPayload(f"payload.history: expected a list of at most {MAX_HISTORY} turns")
    turns = []
    for i, turn in enumerate(value):
        if (not isinstance(turn, dict) or set(turn) != {"user", "assistant"}
                or not all(isinstance(v, str) for v in turn.values())):
            raise BadPayload(
                f'payload.history[{i}]: expected {{"user": text, "assistant": text}}'
            )
        turns.append(Turn(turn["user"], turn["assistant"]))
    return tuple(turns)


def _messages(
    settings: AssistantSettings, history: tuple[Turn, ...], message: str
) -> list[Message]:
    messages = [Message("system", settings.system_prompt)]
    for turn in history[-settings.max_turns:] if settings.max_turns else ():
        messages += [Message("user", turn.user), Message("assistant", turn.assistant)]
    messages.append(Message("user", message))
    return messages


class Assistant:
    """The handler and the conversations it keeps: one per process (see `assistant`
    below); a test makes its own."""

    def __init__(self, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """`now`: the `clock` tool's time."""
        self.conversations = ConversationStore()
        self._now = now

    async def run(self, payload: bytes, ctx: HandlerContext) -> AsyncGenerator[bytes, None]:
        """One task: the streaming handler (see the module docstring)."""
        settings = parse_settings(ctx.config)
        request = parse_request(payload, settings)
        history = (request.history if request.history is not None
                   else self.conversations.history(ctx.session))
        messages = _messages(settings, history, request.message)
        timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout)
        answer = ""
        async with httpx.AsyncClient(timeout=timeout) as http:
            model: ModelClient = OpenAIChatClient(http=http, base_url=settings.base_url,
                                                  api_key=settings.api_key())
            for step in range(1, settings.max_steps + 1):
                parts: list[str] = []
                try:
                    async with aclosing(model.stream_chat(
                        messages, model=request.model, max_tokens=request.max_tokens
                    )) as deltas:
                        async for delta in deltas:
                            parts.append(delta)
                            yield delta.encode()
                except ModelRequestRejected as exc:
                    raise BadPayload(f"payload: the model endpoint refused it: {exc}") from None
                answer = "".join(parts)
                call = find_tool_call(answer)
                if call is None or step == settings.max_steps:
                    break
                result = run_tool(call, self._now)
                log.debug("assistant: step %d of session %r ran tool %s", step, ctx.session,
                          call.name)
                yield f"\n[{call.name} {call.args}: {result}]\n".encode()
                messages += [Message("assistant", answer),
                             Message("user", f"TOOL RESULT {call.name} {call.args}: {result}")]
        self.conversations.record(
            ctx.session, history, Turn(request.message, answer),
            max_sessions=settings.max_sessions, max_turns=settings.max_turns,
        )


assistant = Assistant().run
"""The entry point (`skyfleet.handlers`: `assistant`). The handler contract is a
function of one run, and a host's conversations must outlive runs, so they live in this
one instance for the life of the process (the agent loads its handlers once)."""
