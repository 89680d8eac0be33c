"""The assistant's settings: its `[handlers.assistant]` table of the agent config, typed,
with the defaults in one place. Every error names its key (`handlers.assistant.model:
required`); it is the host's to fix, so a run that meets one fails (another host, rightly
configured, may take the task) rather than blaming the client.

The API key is never in the table (the agent refuses `api_key` there: the file is
published in clear text): `api_key_env` names an environment variable holding it, or
`api_key_file` a file (a mounted secret); either is read at each run, so a rotated key is
used from the next task on without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from skyfleet.config.errors import ConfigError

PREFIX = "handlers.assistant"

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. To use a tool, answer with a line "
    "`TOOL: <name> <arguments>` and nothing after it; you will be given its result. "
    "Tools: `calc <arithmetic expression>` evaluates + - * / // % ** and parentheses; "
    "`clock` gives the current UTC time."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantSettings:
    base_url: str
    """The OpenAI-compatible API's root, e.g. `http://10.10.1.9:8000/v1` (required)."""
    model: str
    """The model asked unless the payload names another (required)."""
    api_key_env: str = ""
    """The environment variable holding the API key; empty: see `api_key_file`."""
    api_key_file: str = ""
    """A file holding the API key (surrounding whitespace dropped); with neither set, no
    key is sent (a local endpoint)."""
    connect_timeout: float = 5.0
    """Seconds to connect to the endpoint before the run fails (and may go elsewhere)."""
    read_timeout: float = 60.0
    """Seconds the endpoint may stay silent, before its first token (a long prompt is
    slow to read) or between two, before the run fails."""
    max_tokens: int = 1024
    """Tokens per model call, unless the payload asks fewer: the host's cap on cost."""
    max_steps: int = 3
    """Model calls per task at most: a model that keeps asking for tools stops here,
    its last answer delivered as it is."""
    max_sessions: int = 1000
    """Conversations kept on this host; the least recently used is dropped beyond."""
    max_turns: int = 20
    """Turns kept per conversation (and sent as its history); the oldest dropped beyond."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """The first message of every call: tells the model the tool protocol."""

    def api_key(self) -> str:
        """The API key, read now; never written into any message."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise ConfigError(f"{PREFIX}.api_key_env: the environment variable "
                                  f"{self.api_key_env} is not set or empty")
            return key
        if self.api_key_file:
            try:
                key = Path(self.api_key_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(f"{PREFIX}.api_key_file: cannot read "
                                  f"{self.api_key_file}: {reason}") from None
            if not key:
                raise ConfigError(f"{PREFIX}.api_key_file: {self.api_key_file} is empty")
            return key
        return ""


_RANGES: dict[str, tuple[float, float]] = {
    "connect_timeout": (0.001, 3600.0),
    "read_timeout": (0.001, 3600.0),
    "max_tokens": (1, 1_000_000),
    "max_steps": (1, 16),
    "max_sessions": (1, 10_000_000),
    "max_turns": (0, 10_000),
}


def parse_settings(table: Mapping[str, Any]) -> AssistantSettings:
    """The settings a table gives; raises ConfigError naming the key."""
    known = {f.name: f for f in fields(AssistantSettings)}
    for key in table:
        if key not in known:
            raise ConfigError(f"{PREFIX}.{key}: unknown key (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in table:
            continue
        value = table[name]
        if name in _RANGES:
            lo, hi = _RANGES[name]
            integer = isinstance(f.default, int)
            # A TOML boolean is an int to Python: `max_turns = true` must not read as 1.
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or (integer and not isinstance(value, int)) or not lo <= value <= hi):
                kind = "an integer" if integer else "a number"
                raise ConfigError(
                    f"{PREFIX}.{name}: expected {kind} from {lo:g} to {hi:g}, got {value!r}"
                )
            values[name] = value if integer else float(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{PREFIX}.{name}: expected a string, got {type(value).__name__}")
        else:
            values[name] = value
    for required in ("base_url", "model"):
        if not values.get(required):
            raise ConfigError(f"{PREFIX}.{required}: required")
    try:
        url = urlsplit(values["base_url"])
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(f"{PREFIX}.base_url: {exc}") from None
    if url.username is not None or url.password is not None:
        # The URL is quoted in every error message: a credential in it would be too.
        raise ConfigError(f"{PREFIX}.base_url: no credentials in the URL; "
                          "use api_key_env or api_key_file")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"{PREFIX}.base_url: expected an http(s) URL, got {url.geturl()!r}")
    if values.get("api_key_env") and values.get("api_key_file"):
        raise ConfigError(f"{PREFIX}.api_key_file: set api_key_env or api_key_file, not both")
    return AssistantSettings(**values)
