"""What the CLI prints without calling an agent: its version, its tables, the JSON of a
task's outcome, and the usage errors of connection settings left unset."""

from __future__ import annotations

from importlib.metadata import version

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.cli.main import main
from skyfleet.cli.table import print_table
from skyfleet.cli.task import TaskResult
from skyfleet.client import AgentError, MemberRow
from skyfleet.localfleet.view import fleet_table


def test_version_names_the_installed_package_and_the_wire_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"skyfleet {version('skyfleet')} (wire API skyfleet.v1)\n"


def test_table_aligns_columns_and_right_aligns_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_table(("NAME", "STATE", "LOAD"), [("n0", "alive", "3"), ("long-name", "dead", "12")],
                right={"LOAD"})
    assert capsys.readouterr().out.splitlines() == [
        "NAME       STATE  LOAD",
        "n0         alive     3",
        "long-name  dead     12",
    ]


def test_table_cells_are_text_never_markup_and_never_wrapped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A member name is whatever a remote agent's certificate says: print it as it is.
    long = "x" * 500
    name = "[bold red]n0[/]"
    print_table(("NAME", "NOTE"), [(name, long), ("n1", ":smile:")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[1] == f"{name}  {long}"
    assert lines[2] == f"{'n1':<{len(name)}}  :smile:"


def row(name: str, cloud: str, zone: str, **status: object) -> MemberRow:
    fields: dict[str, object] = dict(
        region="r", address="a", state="alive", incarnation=1, state_age=0.0,
        policy_version=0, policy_hash="", status_age=None,
    )
    fields.update(status)
    return MemberRow(name=name, cloud=cloud, zone=zone, **fields)  # type: ignore[arg-type]


def test_fleet_view_sorts_by_cloud_and_zone_and_shows_what_is_unknown() -> None:
    table = fleet_table("a0", [
        row("g0", "gcp", "a", policy_version=2, status_age=1.25, inflight=1, queued=2,
            capacity=8, latency_ms=3.0),
        row("a1", "aws", "b"),
        row("a0", "aws", "a"),
    ])
    assert [r[2] for r in table.rows] == ["a0", "a1", "g0"]
    assert table.rows[2][4:] == ("1+2/8", "3.0", "v2", "1.2s")
    assert table.rows[0][4:] == ("-", "0.0", "-", "-")
    assert table.footnote.endswith("as seen by a0")
    assert set(table.right) <= set(table.headers)


def test_task_result_json_keeps_text_as_text_and_encodes_other_bytes() -> None:
    ok = TaskResult.of_reply(tasks_pb2.SubmitTaskResponse(
        outcome=tasks_pb2.TASK_OUTCOME_SUCCEEDED, output="héllo".encode(), executed_by="n0",
        attempts=2, latency_ms=1.5))
    assert ok.json() == {
        "outcome": "succeeded", "executed_by": "n0", "attempts": 2, "latency_ms": 1.5,
        "duplicate": False, "output": "héllo", "output_encoding": "text", "error": "",
    }
    failed = TaskResult.of_reply(tasks_pb2.SubmitTaskResponse(
        outcome=tasks_pb2.TASK_OUTCOME_FAILED, output=b"\x80", error="handler failed: boom"))
    assert failed.json()["outcome"] == "failed"
    assert (failed.json()["output"], failed.json()["output_encoding"]) == ("gA==", "base64")


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline_exceeded"),
        (grpc.StatusCode.UNAVAILABLE, "rejected"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "rejected"),
        (grpc.StatusCode.PERMISSION_DENIED, "rejected"),
    ],
)
def test_a_call_that_ends_with_a_status_is_a_task_outcome(
    code: grpc.StatusCode, outcome: str
) -> None:
    result = TaskResult.of_status(AgentError(f"peer x: {code.name}: why", code))
    assert (result.outcome, result.error, result.latency_ms) == (
        outcome, f"peer x: {code.name}: why", None)


@pytest.mark.parametrize(
    ("env", "missing", "variable"),
    [
        ({}, "--agent", "$SKYFLEET_AGENT"),
        ({"SKYFLEET_AGENT": "127.0.0.1:7470"}, "--tls-dir", "$SKYFLEET_TLS_DIR"),
    ],
)
def test_an_unset_connection_setting_is_a_usage_error_naming_flag_and_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    env: dict[str, str], missing: str, variable: str,
) -> None:
    monkeypatch.delenv("SKYFLEET_AGENT", raising=False)
    monkeypatch.delenv("SKYFLEET_TLS_DIR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as done:
        main(["members"])
    assert done.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("skyfleet members: error: ")
    assert missing in last and variable in last
