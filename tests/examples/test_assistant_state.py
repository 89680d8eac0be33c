"""The assistant's pure parts: conversations kept per session within their bounds, the
tools, and its config table read with errors naming the key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from skyfleet.config.errors import ConfigError
from skyfleet_assistant.conversations import MAX_TEXT, ConversationStore, Turn
from skyfleet_assistant.settings import AssistantSettings, parse_settings
from skyfleet_assistant.tools import ToolCall, ToolError, calc, find_tool_call, run_tool


def turn(n: int) -> Turn:
    return Turn(f"q{n}", f"a{n}")


def test_each_session_keeps_its_own_turns_and_none_is_kept_without_one() -> None:
    store = ConversationStore()
    store.record("a", (), turn(1), max_sessions=10, max_turns=10)
    store.record("b", (), turn(2), max_sessions=10, max_turns=10)
    store.record("a", store.history("a"), turn(3), max_sessions=10, max_turns=10)
    store.record("", (), turn(4), max_sessions=10, max_turns=10)
    assert store.history("a") == (turn(1), turn(3))
    assert store.history("b") == (turn(2),)
    assert store.history("") == () and store.history("c") == ()
    assert len(store) == 2


def test_the_oldest_turns_and_least_recently_used_sessions_go_first() -> None:
    store = ConversationStore()
    for n in range(5):
        store.record("a", store.history("a"), turn(n), max_sessions=2, max_turns=3)
    assert store.history("a") == (turn(2), turn(3), turn(4))
    store.record("b", (), turn(0), max_sessions=2, max_turns=3)
    store.history("a")  # a is now used more recently than b
    store.record("c", (), turn(0), max_sessions=2, max_turns=3)
    assert store.history("b") == () and len(store) == 2
    assert store.history("a") and store.history("c")


def test_texts_are_kept_to_their_bound_and_no_turns_keeps_nothing() -> None:
    store = ConversationStore()
    store.record("a", (), Turn("q" * (MAX_TEXT + 5), "a"), max_sessions=1, max_turns=1)
    assert len(store.history("a")[0].user) == MAX_TEXT
    store.record("b", (), turn(1), max_sessions=1, max_turns=0)
    assert store.history("b") == ()


@pytest.mark.parametrize(
    ("expression", "result"),
    [("2+3", "5"), (" (1 + 2) * -3 ", "-9"), ("7 // 2", "3"), ("7 % 4", "3"), ("10/4", "2.5"),
     ("10/2", "5"), ("2 ** 10", "1024"), ("1.5e3", "1500"), ("--4", "4")],
)
def test_calc_by_table(expression: str, result: str) -> None:
    assert calc(expression) == result


@pytest.mark.parametrize(
    ("expression", "error"),
    [("1/0", "division by zero"), ("__import__('os')", "not arithmetic"),
     ("x + 1", "not arithmetic"), ("2 ** 10000", "exponent"), ("9 ** 999 * 9 ** 999", "digits"),
     ("(-8) ** 0.5", "not a real"), ("10.0 ** 400", "too large"), ("1 +", "not an arithmetic"),
     ("True + 1", "not arithmetic"), ("1" * 201, "longer than")],
)
def test_calc_refuses_all_but_small_arithmetic(expression: str, error: str) -> None:
    with pytest.raises(ToolError, match=error):
        calc(expression)


def test_tool_calls_are_found_on_a_line_of_their_own_and_errors_are_results() -> None:
    assert find_tool_call("Let me see.\nTOOL: calc 2 + 3 \nok") == ToolCall("calc", "2 + 3")
    assert find_tool_call("no TOOL: here") is None
    noon = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert run_tool(ToolCall("clock", ""), lambda: noon) == "2026-12-03T12:00:00+00:00"
    assert run_tool(ToolCall("calc", "1/0"), lambda: noon) == "error: division by zero"
    assert run_tool(ToolCall("web", "x"), lambda: noon) == (
        "error: unknown tool 'web' (tools: calc, clock)")


BASE = {"base_url": "http://127.0.0.1:8000/v1", "model": "m"}


def test_settings_defaults_and_overrides() -> None:
    assert parse_settings(BASE) == AssistantSettings(base_url=BASE["base_url"], model="m")
    s = parse_settings({**BASE, "read_timeout": 5, "max_turns": 2})
    assert (s.read_timeout, s.max_turns) == (5.0, 2) and isinstance(s.read_timeout, float)


@pytest.mark.parametrize(
    ("table", "error"),
    [({"model": "m"}, "handlers.assistant.base_url: required"),
     ({**BASE, "model": ""}, "handlers.assistant.model: required"),
     ({**BASE, "modle": "x"}, "handlers.assistant.modle: unknown key"),
     ({**BASE, "base_url": "ftp://x"}, "handlers.assistant.base_url: expected an http"),
     ({**BASE, "base_url": "http://u:pw@x/v1"}, "handlers.assistant.base_url: no credentials"),
     ({**BASE, "max_turns": True}, "handlers.assistant.max_turns: expected an integer"),
     ({**BASE, "max_steps": 1.5}, "handlers.assistant.max_steps: expected an integer"),
     ({**BASE, "read_timeout": 0}, "handlers.assistant.read_timeout: expected a number"),
     ({**BASE, "model": 3}, "handlers.assistant.model: expected a string"),
     ({**BASE, "api_key_env": "A", "api_key_file": "/k"}, "not both")],
)
def test_settings_errors_name_their_key(table: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error) as info:
        parse_settings(table)
    assert "u:pw" not in str(info.value)  # a credential in the URL is not quoted back


def test_the_key_is_read_from_the_environment_or_a_file_and_never_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_TEST_KEY", " sk-env \n")
    assert parse_settings({**BASE, "api_key_env": "ASSISTANT_TEST_KEY"}).api_key() == "sk-env"
    (tmp_path / "key").write_text("sk-file\n")
    file_settings = parse_settings({**BASE, "api_key_file": str(tmp_path / "key")})
    assert file_settings.api_key() == "sk-file"
    assert parse_settings(BASE).api_key() == ""
    monkeypatch.delenv("ASSISTANT_TEST_KEY")
    with pytest.raises(ConfigError, match="ASSISTANT_TEST_KEY is not set"):
        parse_settings({**BASE, "api_key_env": "ASSISTANT_TEST_KEY"}).api_key()
    with pytest.raises(ConfigError, match="api_key_file: cannot read .*/nope"):
        parse_settings({**BASE, "api_key_file": str(tmp_path / "nope")}).api_key()
