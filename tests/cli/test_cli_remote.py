"""The commands that call an agent, run as processes against in-process agents over
mTLS: where they find the agent and the certificate, what they print (tables and each
command's JSON shape), what `task submit` makes of every outcome, and how a long-running
task is followed by id (`task submit --detach`, `task status|wait|cancel`)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.node import Agent
from skyfleet.security.certs import issue_client_cert, write_cert_file, write_key_file
from tests.cli.cli_run import skyfleet

MEMBER_KEYS = {"name", "cloud", "region", "zone", "address", "state", "incarnation",
               "state_age", "policy_version", "policy_hash", "status_age", "inflight",
               "queued", "capacity", "latency_ms", "refusals"}
SUBMIT_KEYS = {"outcome", "executed_by", "attempts", "latency_ms", "duplicate", "output",
               "output_encoding", "error"}
TASK_KEYS = {"task_id", "state", "handler", "kind", "key", "attempt", "executor", "progress",
             "note", "output", "output_encoding", "error", "holders", "accepted_by",
             "accepted_unix", "deadline_unix", "report_age_ms"}


@dataclass(frozen=True, slots=True)
class OneAgent:
    agent: Agent
    address: str
    layout: FleetLayout

    @property
    def env(self) -> dict[str, str]:
        """What an operator exports once instead of passing --agent and --tls-dir."""
        return {"SKYFLEET_AGENT": self.address, "SKYFLEET_TLS_DIR": str(self.layout.tls)}


def add_client(layout: FleetLayout, name: str) -> None:
    ca = (layout.tls / "ca.pem").read_bytes(), (layout.tls / "ca.key").read_bytes()
    cert, key = issue_client_cert(*ca, name)
    write_key_file(layout.key_path(name), key)
    write_cert_file(layout.cert_path(name), cert)


@pytest.fixture
async def n0(tmp_path: Path, free_ports) -> AsyncIterator[OneAgent]:
    (port,) = free_ports(1)
    layout = FleetLayout(tmp_path)
    spec = AgentSpec(name="n0", cloud="aws", zone="z", address=f"127.0.0.1:{port}")
    layout.write_agent(spec)
    add_client(layout, "client")
    async with Agent(load_agent_config(layout.config_path("n0"))) as agent:
        yield OneAgent(agent, spec.address, layout)


async def test_members_finds_agent_and_folder_in_the_environment(n0: OneAgent) -> None:
    table = await skyfleet("members", env=n0.env)
    assert table.code == 0, table.err
    header, row = table.text.splitlines()
    assert header.split() == ["NAME", "CLOUD", "REGION", "ZONE", "ADDRESS", "STATE",
                              "INCARNATION", "REFUSED"]
    assert row.split()[:6] == ["n0", "aws", "local", "z", n0.address, "alive"]
    assert header.index("ADDRESS") == row.index(n0.address)  # one column, one position

    for form in (["-o", "json"], ["--json"]):
        shown = await skyfleet("members", *form, env=n0.env)
        doc = json.loads(shown.out)
        assert doc["local_node"] == "n0"
        (member,) = doc["members"]
        assert set(member) == MEMBER_KEYS
        assert (member["name"], member["state"], member["address"]) == ("n0", "alive",
                                                                         n0.address)


async def test_flags_win_over_the_environment(n0: OneAgent, tmp_path: Path) -> None:
    elsewhere = {"SKYFLEET_AGENT": "127.0.0.1:1", "SKYFLEET_TLS_DIR": str(tmp_path / "none")}
    run = await skyfleet("members", "--agent", n0.address, "--tls-dir", str(n0.layout.tls),
                         "-o", "json", env=elsewhere)
    assert run.code == 0, run.err
    assert json.loads(run.out)["local_node"] == "n0"


async def test_policy_status_json_shape(n0: OneAgent) -> None:
    run = await skyfleet("policy", "status", "-o", "json", env=n0.env)
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert set(doc) == {"observer", "newest_version", "live_members", "on_newest",
                        "share_on_newest", "members"}
    assert doc["observer"] == "n0" and doc["live_members"] == 1
    assert set(doc["members"][0]) == {"name", "state", "version", "hash", "status_age"}


async def test_submit_prints_the_output_bytes_as_they_are(n0: OneAgent, tmp_path: Path) -> None:
    text = await skyfleet("task", "submit", "echo", "--payload", "hello", env=n0.env)
    assert (text.code, text.out, text.err) == (0, b"hello", "")

    binary = bytes(range(256))
    (tmp_path / "payload.bin").write_bytes(binary)
    from_file = await skyfleet("task", "submit", "echo", "--payload-file",
                               str(tmp_path / "payload.bin"), env=n0.env)
    assert (from_file.code, from_file.out) == (0, binary)
    from_stdin = await skyfleet("task", "submit", "echo", "--payload-file", "-",
                                env=n0.env, stdin=b"piped")
    assert (from_stdin.code, from_stdin.out) == (0, b"piped")


async def test_submit_json_names_the_executor_and_encodes_binary_output(n0: OneAgent) -> None:
    run = await skyfleet("task", "submit", "echo", "--payload-file", "-", "-o", "json",
                         env=n0.env, stdin=b"\xff\x00")
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert set(doc) == SUBMIT_KEYS
    assert doc["outcome"] == "succeeded" and doc["executed_by"] == "n0"
    assert doc["attempts"] == 1 and doc["latency_ms"] >= 0 and doc["error"] == ""
    assert doc["output_encoding"] == "base64" and base64.b64decode(doc["output"]) == b"\xff\x00"


async def test_submit_with_the_same_key_runs_once(n0: OneAgent) -> None:
    first = await skyfleet("task", "submit", "echo", "--key", "k-1", "--payload", "first",
                           "-o", "json", env=n0.env)
    again = await skyfleet("task", "submit", "echo", "--key", "k-1", "--payload", "second",
                           "-o", "json", env=n0.env)
    assert json.loads(first.out)["duplicate"] is False
    doc = json.loads(again.out)
    assert (doc["output"], doc["output_encoding"], doc["duplicate"]) == ("first", "text", True)


@pytest.mark.parametrize(
    ("args", "outcome", "said"),
    [
        (["nope"], "rejected", "handler 'nope': served by no agent of the fleet"),
        (["sleep", "--payload", "not json"], "rejected", "payload: not JSON"),
        (["echo", "--cloud", "gcp"], "rejected", "no eligible peer"),
        (["sleep", "--payload", '{"mean": 2, "dist": "fixed"}', "--timeout", "0.3"],
         "deadline_exceeded", "DEADLINE_EXCEEDED"),
    ],
)
async def test_submit_that_does_not_succeed_exits_1_with_its_outcome(
    n0: OneAgent, args: list[str], outcome: str, said: str
) -> None:
    raw = await skyfleet("task", "submit", *args, env=n0.env)
    shown = await skyfleet("task", "submit", *args, "-o", "json", env=n0.env)
    assert (raw.code, raw.out, shown.code) == (1, b"", 1)
    for run in (raw, shown):
        # (a deadline is the agent's or the client's own, whichever ends first)
        assert run.err.startswith(f"skyfleet: task {outcome}: ") and said in run.err
        assert len(run.err.splitlines()) == 1
    doc = json.loads(shown.out)
    assert set(doc) == SUBMIT_KEYS
    assert doc["outcome"] == outcome and said in doc["error"] and doc["latency_ms"] is None


async def test_stream_prints_the_chunks_and_json_lines_end_with_what_was_delivered(
    n0: OneAgent,
) -> None:
    payload = json.dumps({"count": 3, "size": 4})
    raw = await skyfleet("task", "stream", "chunks", "--payload", payload, env=n0.env)
    assert (raw.code, raw.out, raw.err) == (0, b"0:..1:..2:..", "")
    lines = await skyfleet("task", "stream", "chunks", "--payload", payload, "-o", "json",
                           env=n0.env)
    assert lines.code == 0, lines.err
    *chunks, last = [json.loads(line) for line in lines.out.splitlines()]
    assert chunks == [{"chunk": f"{i}:..", "encoding": "text"} for i in range(3)]
    end = last["end"]
    assert (end["outcome"], end["executed_by"], end["chunks"], end["bytes"]) == (
        "succeeded", "n0", 3, 12)
    assert 0 < end["first_chunk_ms"] <= end["latency_ms"] and end["error"] == ""


@pytest.mark.parametrize(
    ("payload", "chunks", "said"),
    [
        ('{"count": 5, "size": 2, "fail_after": 3}', 3, "stream cut after 3 chunks"),
        ("not json", 0, "payload: not JSON"),
    ],
)
async def test_a_stream_that_does_not_succeed_exits_1_saying_how_much_came(
    n0: OneAgent, payload: str, chunks: int, said: str
) -> None:
    run = await skyfleet("task", "stream", "chunks", "--payload", payload, env=n0.env)
    assert run.code == 1 and run.out == b"".join(b"%d:" % i for i in range(chunks))
    assert run.err.startswith("skyfleet: task ") and len(run.err.splitlines()) == 1
    assert f"after {chunks} chunk(s)" in run.err and said in run.err


async def test_leave_stops_the_agent(n0: OneAgent) -> None:
    run = await skyfleet("leave", env=n0.env)
    assert run.code == 0, run.err
    assert n0.address in run.text
    await n0.agent.stopped()  # it left, then stopped: nothing else would end this wait


async def test_join_through_a_seed(tmp_path: Path, free_ports) -> None:
    ports = free_ports(2)
    layout = FleetLayout(tmp_path)
    specs = [AgentSpec(name=f"n{i}", cloud="aws", zone="z", address=f"127.0.0.1:{p}")
             for i, p in enumerate(ports)]
    for spec in specs:
        layout.write_agent(spec)
    env = {"SKYFLEET_TLS_DIR": str(layout.tls)}
    async with Agent(load_agent_config(layout.config_path("n0"))), \
            Agent(load_agent_config(layout.config_path("n1"))):
        run = await skyfleet("join", "--agent", specs[1].address, specs[0].address, env=env)
        assert run.code == 0, run.err
        assert run.text == f"joined: {specs[1].address} now knows 2 member(s) up\n"


LONG = '{"dist": "fixed", "mean": 30}'
"""A `sleep` that runs far longer than any test, reporting its progress each second."""


async def detached(n0: OneAgent, *args: str) -> str:
    run = await skyfleet("task", "submit", *args, "--detach", env=n0.env)
    assert run.code == 0 and run.err == "", run.err
    task_id, newline = run.text.partition("\n")[:2]
    assert newline and task_id and run.text == f"{task_id}\n"  # the id alone: $(...) takes it
    return task_id


async def status_of(n0: OneAgent, task_id: str) -> dict[str, object]:
    run = await skyfleet("task", "status", task_id, "-o", "json", env=n0.env)
    assert run.code == 0, run.err
    doc: dict[str, object] = json.loads(run.out)
    assert set(doc) == TASK_KEYS
    return doc


async def running(n0: OneAgent, task_id: str) -> dict[str, object]:
    """Its record once the executor reported it running (bounded polling)."""
    for _ in range(50):
        doc = await status_of(n0, task_id)
        if doc["state"] == "running":
            return doc
        assert doc["state"] == "queued"
    raise AssertionError(f"task {task_id} never ran: {doc}")


async def test_detach_prints_the_id_status_shows_it_running_and_wait_prints_the_output(
    n0: OneAgent,
) -> None:
    task_id = await detached(n0, "sleep", "--payload", '{"dist": "fixed", "mean": 1.5}')
    doc = await running(n0, task_id)
    assert (doc["task_id"], doc["handler"], doc["executor"], doc["attempt"]) == (
        task_id, "sleep", "n0", 1)
    assert doc["holders"] == ["n0"] and doc["accepted_by"] == "n0"
    assert doc["deadline_unix"] is None and doc["output"] == "" and doc["error"] == ""

    table = await skyfleet("task", "status", task_id, env=n0.env)
    assert table.code == 0, table.err
    header, row = table.text.splitlines()
    assert header.startswith("ID ") and header.split()[:7] == [
        "ID", "STATE", "HANDLER", "ATTEMPT", "EXECUTOR", "PROGRESS", "HOLDERS"]
    assert row.split()[:3] == [task_id, "running", "sleep"]
    assert row.index(" n0 ") <= header.index("EXECUTOR") + 1  # its own column

    waited = await skyfleet("task", "wait", task_id, "--timeout", "30", env=n0.env)
    assert (waited.code, waited.err) == (0, "")
    assert json.loads(waited.out) == {"slept": 1.5}  # the output's bytes, as submit's
    ended = await skyfleet("task", "wait", task_id, "-o", "json", env=n0.env)
    assert ended.code == 0, ended.err
    doc = json.loads(ended.out)
    assert set(doc) == TASK_KEYS
    assert (doc["state"], doc["progress"], doc["output_encoding"]) == ("succeeded", 1.0, "text")
    assert json.loads(doc["output"]) == {"slept": 1.5}


async def test_detach_json_is_the_record_with_its_deadline(n0: OneAgent) -> None:
    run = await skyfleet("task", "submit", "sleep", "--payload", LONG, "--detach",
                         "--deadline", "1", "-o", "json", env=n0.env)
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert set(doc) == TASK_KEYS and doc["state"] in {"queued", "running"}
    assert doc["deadline_unix"] == pytest.approx(doc["accepted_unix"] + 1, abs=0.1)
    assert doc["key"] != ""  # the agent gave it one: every run of it carries the same

    waited = await skyfleet("task", "wait", doc["task_id"], "--timeout", "20", env=n0.env)
    assert (waited.code, waited.out) == (1, b"")
    assert waited.err.startswith("skyfleet: task deadline_exceeded: ")
    assert len(waited.err.splitlines()) == 1


async def test_wait_that_times_out_exits_1_saying_how_far_the_task_got(n0: OneAgent) -> None:
    task_id = await detached(n0, "sleep", "--payload", LONG)
    await running(n0, task_id)
    raw = await skyfleet("task", "wait", task_id, "--timeout", "0.5", env=n0.env)
    assert (raw.code, raw.out) == (1, b"")
    assert raw.err == f"skyfleet: task {task_id} still running after 0.5s\n"
    shown = await skyfleet("task", "wait", task_id, "--timeout", "0.5", "-o", "json",
                           env=n0.env)
    assert shown.code == 1 and shown.err == raw.err
    doc = json.loads(shown.out)
    assert set(doc) == TASK_KEYS and doc["state"] == "running" and 0 <= doc["progress"] < 1


async def test_cancel_ends_the_task_and_status_shows_it_cancelled(n0: OneAgent) -> None:
    task_id = await detached(n0, "sleep", "--payload", LONG)
    await running(n0, task_id)
    cancel = await skyfleet("task", "cancel", task_id, env=n0.env)
    assert (cancel.code, cancel.text, cancel.err) == (0, "cancelled\n", "")
    doc = await status_of(n0, task_id)
    assert doc["state"] == "cancelled" and "cancelled by a CancelTask call" in doc["error"]

    again = await skyfleet("task", "cancel", task_id, "-o", "json", env=n0.env)
    assert again.code == 0 and again.err == ""
    assert set(json.loads(again.out)) == TASK_KEYS
    waited = await skyfleet("task", "wait", task_id, env=n0.env)
    assert waited.code == 1
    assert waited.err == f"skyfleet: task cancelled: {doc['error']}\n"


async def test_cancel_of_a_task_that_had_ended_exits_0_saying_so(n0: OneAgent) -> None:
    task_id = await detached(n0, "echo", "--payload", "done")
    waited = await skyfleet("task", "wait", task_id, env=n0.env)
    assert (waited.code, waited.out) == (0, b"done")
    cancel = await skyfleet("task", "cancel", task_id, env=n0.env)
    assert (cancel.code, cancel.text) == (0, "succeeded\n")  # stdout: the state alone
    assert cancel.err == f"skyfleet: task {task_id} had ended succeeded already: nothing to " \
        "cancel\n"


@pytest.mark.parametrize("action", ["status", "wait", "cancel"])
async def test_an_unknown_task_id_exits_1_naming_it(n0: OneAgent, action: str) -> None:
    run = await skyfleet("task", action, "no-such-task", env=n0.env)
    assert (run.code, run.out) == (1, b"")
    assert run.err.startswith("skyfleet: task no-such-task: not found: ")
    assert len(run.err.splitlines()) == 1


async def test_deadline_is_only_for_detached_tasks() -> None:
    run = await skyfleet("task", "submit", "sleep", "--deadline", "5")
    assert run.code == 2 and run.out == b""
    assert "--deadline: only with --detach" in run.err and "Traceback" not in run.err


async def test_a_long_wait_is_a_series_of_bounded_calls() -> None:
    """Each WaitTask call lasts at most `per_call`; the wait goes on while the task runs,
    also past a call that ran out of time before its answer came."""
    import grpc

    from skyfleet._generated.skyfleet.v1 import tasks_pb2
    from skyfleet.cli.long_task import wait_for_end
    from skyfleet.client import AgentError

    answers: list[object] = [
        tasks_pb2.TaskRecord(state=tasks_pb2.TASK_STATE_RUNNING),
        AgentError("late", grpc.StatusCode.DEADLINE_EXCEEDED),
        tasks_pb2.TaskRecord(state=tasks_pb2.TASK_STATE_SUCCEEDED, output=b"ok"),
    ]
    asked: list[float] = []

    class Client:
        async def wait_task(self, task_id: str, *, timeout: float) -> object:
            asked.append(timeout)
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    record = await wait_for_end(Client(), "t", 3600, per_call=5)  # type: ignore[arg-type]
    assert record is not None and record.output == b"ok"
    assert asked == [5, 5, 5]
