"""The demo's sessions phase without a fleet: the summary's arithmetic from recorded turns,
and how a turn's events (or the entry agent's failure) become its record."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator
from typing import Any, cast

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.client import AgentClient, AgentError
from skyfleet.localfleet.sessions import SessionRun, Turn, session_stats, summary_lines

LOST = frozenset({"gcp-a-0", "gcp-b-0"})


def turn(session: str, n: int, executor: str = "", *, before: bool = False,
         outcome: str = "succeeded", attempts: int = 1, received: int = 5,
         reported: int | None = 5, prefix_ok: bool = True, error: str = "") -> Turn:
    return Turn(session=session, turn=n, before_loss=before, entry="aws-a-0",
                outcome=outcome, executed_by=executor, attempts=attempts if executor else 0,
                chunks_received=received, chunks_reported=reported if executor else None,
                prefix_ok=prefix_ok, error=error)


RECORDS = [
    # Stays: every turn on a host of a surviving cloud.
    turn("s1", 1, "aws-a-0", before=True), turn("s1", 2, "aws-a-0"), turn("s1", 3, "aws-a-0"),
    # Owned by the lost cloud: its second turn cut after 4 chunks, its third fails over
    # before its first chunk, then it stays on its new host.
    turn("s2", 1, "gcp-a-0", before=True),
    turn("s2", 2, "gcp-a-0", before=True, outcome="failed", received=4, reported=4,
         error="stream cut after 4 chunks (20 bytes): gcp-a-0: unreachable"),
    turn("s2", 3, "azure-b-0", attempts=2), turn("s2", 4, "azure-b-0"),
    # Owned by the lost cloud, moved to two hosts after it.
    turn("s3", 1, "gcp-b-0", before=True), turn("s3", 2, "aws-b-0"), turn("s3", 3, "aws-c-0"),
    # Not owned by the lost cloud, moved anyway; its entry was lost mid-stream once.
    turn("s4", 1, "aws-b-0", before=True),
    turn("s4", 2, outcome="entry lost", received=3, error="UNAVAILABLE: aws-b-0 gone"),
    turn("s4", 3, "azure-a-0"),
    # No output before the loss, so no owner; one end miscounted, one stream repeated.
    turn("s5", 1, before=True, outcome="rejected", received=0, error="retry budget"),
    turn("s5", 2, "azure-c-0", reported=6), turn("s5", 3, "azure-c-0", prefix_ok=False),
]


def test_session_stats_count_what_the_records_show() -> None:
    stats = session_stats(RECORDS, LOST)
    assert stats.sessions == 5 and stats.turns == len(RECORDS)
    assert stats.succeeded == len(RECORDS) - 3
    assert stats.stayed == 2  # s1, and s5 (its one host after a turn that ran nowhere)
    assert (stats.owned_by_lost, stats.moved_by_loss, stats.resettled) == (2, 2, 1)
    assert stats.moved_otherwise == 1  # s4
    assert stats.cut == (4,)
    assert stats.entry_lost == (3,) and stats.deadline_cut == ()
    assert stats.failed_over == 1
    assert stats.failed == 1 and stats.top_failure == "1 x rejected: retry budget"
    assert (stats.miscounted, stats.repeated) == (1, 1)


def test_session_stats_are_the_same_whatever_order_turns_ended_in() -> None:
    shuffled = list(RECORDS)
    random.Random(3).shuffle(shuffled)
    assert session_stats(shuffled, LOST) == session_stats(RECORDS, LOST)


def test_a_session_whose_owner_survives_is_not_expected_to_move() -> None:
    records = [turn("s1", 1, "gcp-a-0", before=True), turn("s1", 2, "gcp-a-0")]
    stats = session_stats(records, frozenset({"aws-a-0"}))
    assert (stats.stayed, stats.owned_by_lost, stats.moved_by_loss, stats.moved_otherwise) == (
        1, 0, 0, 0)


def test_summary_lines_say_moves_against_the_expected_and_every_cut() -> None:
    lines = summary_lines(session_stats(RECORDS, LOST), "gcp")
    text = "\n".join(lines)
    assert lines[0] == ("sessions: 5 x `assistant` streamed through random agents, "
                        "16 turns, 13 succeeded")
    assert "stayed on one executor throughout: 2 of 5" in text
    assert ("moved by the loss: 2 (expected 2: sessions owned by gcp), 1 of them then on "
            "one new executor; moved otherwise: 1") in text
    assert "streams cut mid-way, reported so in their end: 1 (chunks delivered: 4)" in text
    assert "entry agent was lost mid-way (no end): 1 (chunks delivered: 3)" in text
    assert "stopped mid-way by their deadline (no end): 0" in text
    assert "output repeated: 1 streams" in text


# -- a turn's record from what its client sees --------------------------------------------


def chunk(data: bytes) -> tasks_pb2.TaskStreamEvent:
    return tasks_pb2.TaskStreamEvent(chunk=tasks_pb2.OutputChunk(data=data))


class FakeEntry:
    """An entry agent's client whose stream says what the test scripts: a status before
    any event (`refuse`), or the echo's words as chunks, then an end or a lost connection."""

    def __init__(self, *, refuse: grpc.StatusCode | None = None, cut_after: int | None = None,
                 lose_after: int | None = None,
                 lost_with: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.refuse, self.cut_after, self.lose_after = refuse, cut_after, lose_after
        self.lost_with = lost_with
        self.calls: list[dict[str, Any]] = []

    async def stream(self, handler: str, payload: bytes, *, session: str, timeout: float
                     ) -> AsyncGenerator[tasks_pb2.TaskStreamEvent, None]:
        self.calls.append({"handler": handler, "session": session})
        if self.refuse is not None:
            raise AgentError(f"{self.refuse.name}: refused", self.refuse)
        words = json.loads(payload)["message"].split(" ")
        tokens = [words[0], *(" " + w for w in words[1:])]
        for i, token in enumerate(tokens):
            if i == self.lose_after:
                raise AgentError(f"{self.lost_with.name}: the stream stopped", self.lost_with)
            if i == self.cut_after:
                yield tasks_pb2.TaskStreamEvent(end=tasks_pb2.StreamEnd(
                    outcome=tasks_pb2.TASK_OUTCOME_FAILED, executed_by="gcp-a-0",
                    attempts=1, chunks=i, error=f"stream cut after {i} chunks"))
                return
            yield chunk(token.encode())
        yield tasks_pb2.TaskStreamEvent(end=tasks_pb2.StreamEnd(
            outcome=tasks_pb2.TASK_OUTCOME_SUCCEEDED, executed_by="aws-a-0", attempts=1,
            chunks=len(tokens)))


def one_turn(entries: dict[str, FakeEntry]) -> Turn:
    run = SessionRun(cast(dict[str, AgentClient], entries), sessions=1, turns=1,
                     lost=lambda: False, rng=random.Random(1))
    (record,) = asyncio.run(run.run())
    return record


def test_a_whole_stream_is_a_succeeded_turn_with_its_echo() -> None:
    entry = FakeEntry()
    record = one_turn({"aws-a-0": entry})
    assert record.outcome == "succeeded" and record.executed_by == "aws-a-0"
    assert record.chunks_received == record.chunks_reported == 17  # "s00 turn 1:" + 14 words
    assert record.prefix_ok and record.before_loss
    assert entry.calls == [{"handler": "assistant", "session": "s00"}]


def test_a_cut_stream_keeps_its_end_and_what_it_delivered() -> None:
    record = one_turn({"gcp-a-0": FakeEntry(cut_after=6)})
    assert (record.outcome, record.chunks_received, record.chunks_reported) == ("failed", 6, 6)
    assert record.prefix_ok and record.executed_by == "gcp-a-0"


def test_an_entry_lost_mid_stream_is_not_asked_again() -> None:
    entries = {n: FakeEntry(lose_after=3) for n in "abc"}
    record = one_turn(entries)
    assert record.outcome == "entry lost" and record.chunks_received == 3
    assert record.chunks_reported is None and record.executed_by == ""
    assert sum(len(e.calls) for e in entries.values()) == 1  # a second run would repeat


def test_a_stream_stopped_by_its_deadline_mid_way_is_no_lost_entry() -> None:
    """A cloud cut off sends no reset: its executor falls silent, and the client's deadline
    ends the stream before the routing agent's end (due at the same deadline) comes."""
    entries = {n: FakeEntry(lose_after=5, lost_with=grpc.StatusCode.DEADLINE_EXCEEDED)
               for n in "abc"}
    record = one_turn(entries)
    assert (record.outcome, record.chunks_received, record.chunks_reported) == (
        "deadline_exceeded", 5, None)
    stats = session_stats([record], LOST)
    assert stats.deadline_cut == (5,) and stats.entry_lost == () and stats.cut == ()
    assert sum(len(e.calls) for e in entries.values()) == 1


def test_a_dead_entry_refusing_before_any_chunk_sends_the_turn_elsewhere() -> None:
    entries = {"a": FakeEntry(refuse=grpc.StatusCode.UNAVAILABLE),
               "b": FakeEntry(refuse=grpc.StatusCode.UNAVAILABLE), "c": FakeEntry()}
    record = one_turn(entries)
    assert record.outcome == "succeeded" and record.entry == "c"
    assert len(entries["c"].calls) == 1


def test_a_refusal_of_the_task_itself_is_its_outcome() -> None:
    entries = {n: FakeEntry(refuse=grpc.StatusCode.RESOURCE_EXHAUSTED) for n in "abc"}
    record = one_turn(entries)
    assert record.outcome == "rejected" and record.chunks_received == 0
    assert sum(len(e.calls) for e in entries.values()) == 1
