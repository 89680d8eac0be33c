"""The demo's sessions: conversations with the `assistant` handler, streamed through random
agents while a cloud is lost, to show what session affinity and streamed failover promise
and what they do not.

Each of K sessions sends its turns one after another (`AgentClient.stream`, the session
named), each turn through an agent drawn at random, as a client behind a load balancer
would. The policy's `sessions.affinity` should send every turn of a session to one
executor from whichever agent it enters; the model (the stand-in, which echoes the turn
a word per token, slowly) makes each stream last long enough that the loss cuts some
mid-way. What is recorded per turn (`Turn`) is what the client saw: its end event if one
came, and the chunks it received. `session_stats` reads the summary from the records
alone, so its arithmetic is tested without a fleet:

- a session *stays* when every turn that ran anywhere ran on one executor;
- its *owner* is the executor of its last turn started before the loss; a session owned
  by the lost cloud is expected to move, and *moves* when a later turn runs elsewhere;
  one not owned by it is expected to stay (a move there is reported apart: bounded_hash
  skipping a host at its load bound, a retry taking the next host on the ring, or, when
  the cloud is cut off rather than killed, an agent of the cut side routing among its
  own cloud);
- a stream *cut* mid-way is an end FAILED (or past its deadline) after chunks: its
  executor was lost after delivering them, and nothing was run again;
- a stream *failed over* before its first chunk is an end that needed more than one
  executor and delivered output from the last;
- a stream whose *entry* agent was lost mid-way has no end event (the client's own
  connection died): the client keeps what it received and does not ask again, as a
  second run would repeat it;
- a stream *stopped by its deadline* mid-way has no end event either: its executor fell
  silent (a cloud cut off, not killed, sends no reset), and the routing agent's end,
  due at the same deadline, comes after the client has hung up;
- output is never repeated when every end's chunk count equals the chunks the client
  received and every stream's text is a prefix of the turn's echo.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

import grpc

from skyfleet.client import AgentClient, AgentError, outcome_name

HANDLER = "assistant"
WORDS = ("north", "cloud", "river", "amber", "quiet", "signal", "harbor", "lantern",
         "meadow", "copper", "orbit", "willow", "granite", "ember", "falcon", "tide")
"""The turns' vocabulary: words the stand-in echoes as they are (no `calculate`, so no
tool step), one token each."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One turn of one session, as its client saw it."""

    session: str
    turn: int
    before_loss: bool
    """Started before the cloud was lost."""
    entry: str
    """The agent it entered through last ("" if none answered)."""
    outcome: str
    """`succeeded`, `failed`, `deadline_exceeded` or `rejected` (the end's, or the call's
    status: before any chunk, or the deadline after some), or `entry lost` (the entry's
    connection died after chunks)."""
    executed_by: str = ""
    """Whose chunks were delivered (the end's); "" without an end."""
    attempts: int = 0
    """Executors tried (the end's); 0 without an end."""
    chunks_received: int = 0
    chunks_reported: int | None = None
    """The end's chunk count; None without an end."""
    prefix_ok: bool = True
    """What arrived is the start of the turn's echo: nothing repeated, nothing foreign."""
    error: str = ""


@dataclass(frozen=True, slots=True)
class SessionStats:
    sessions: int
    turns: int
    succeeded: int
    stayed: int
    """Sessions whose turns all ran on one executor."""
    owned_by_lost: int
    """Sessions whose owner before the loss was in the lost cloud: the moves expected."""
    moved_by_loss: int
    """Of those, the sessions whose later turns ran elsewhere."""
    resettled: int
    """Of the moved, those whose turns after the move all ran on one new executor."""
    moved_otherwise: int
    """Sessions not owned by the lost cloud whose executor changed anyway."""
    cut: tuple[int, ...]
    """Chunks each stream cut mid-way had delivered (its end's count), ascending."""
    entry_lost: tuple[int, ...]
    """Chunks each stream received before its entry agent was lost, ascending."""
    deadline_cut: tuple[int, ...]
    """Chunks each stream received before its deadline stopped it without an end."""
    failed_over: int
    """Streams that failed over before their first chunk and delivered from another."""
    failed: int
    """Turns that ended without output (no chunk) and did not succeed."""
    miscounted: int
    """Ends whose chunk count differs from the chunks their client received."""
    repeated: int
    """Streams whose text is not a prefix of their turn's echo."""
    top_failure: str = ""
    """The most frequent error of the turns without output, with its count."""


def session_stats(turns: Sequence[Turn], lost: frozenset[str]) -> SessionStats:
    """The summary of the recorded `turns`, `lost` naming the agents of the lost cloud."""
    by_session: dict[str, list[Turn]] = {}
    for t in sorted(turns, key=lambda t: (t.session, t.turn)):
        by_session.setdefault(t.session, []).append(t)
    stayed = owned = moved = resettled = otherwise = 0
    for mine in by_session.values():
        ran = [t for t in mine if t.executed_by]
        executors = {t.executed_by for t in ran}
        stayed += len(executors) == 1
        before = [t.executed_by for t in ran if t.before_loss]
        if not before:
            continue  # never ran before the loss: it had no owner to keep or lose
        owner = before[-1]
        later = {t.executed_by for t in ran if not t.before_loss} - {owner}
        if owner in lost:
            owned += 1
            if later:
                moved += 1
                resettled += len(later) == 1
        elif later:
            otherwise += 1
    cut = sorted(t.chunks_reported or 0 for t in turns
                 if t.chunks_reported and t.outcome in ("failed", "deadline_exceeded"))
    return SessionStats(
        sessions=len(by_session),
        turns=len(turns),
        succeeded=sum(t.outcome == "succeeded" for t in turns),
        stayed=stayed,
        owned_by_lost=owned,
        moved_by_loss=moved,
        resettled=resettled,
        moved_otherwise=otherwise,
        cut=tuple(cut),
        entry_lost=tuple(sorted(t.chunks_received for t in turns
                                if t.outcome == "entry lost")),
        deadline_cut=tuple(sorted(t.chunks_received for t in turns
                                  if t.chunks_reported is None and t.chunks_received
                                  and t.outcome == "deadline_exceeded")),
        failed_over=sum(1 for t in turns if t.attempts > 1 and t.chunks_received > 0),
        failed=sum(1 for t in turns if t.outcome != "succeeded" and not t.chunks_received),
        miscounted=sum(1 for t in turns if t.chunks_reported is not None
                       and t.chunks_reported != t.chunks_received),
        repeated=sum(1 for t in turns if not t.prefix_ok),
        top_failure=_top_failure(t for t in turns
                                 if t.outcome != "succeeded" and not t.chunks_received),
    )


def _top_failure(turns: Iterable[Turn]) -> str:
    reasons = Counter(f"{t.outcome}: {_ends(t.error)}" for t in turns)
    if not reasons:
        return ""
    ((reason, n),) = reasons.most_common(1)
    return f"{n} x {reason}"


def summary_lines(stats: SessionStats, lost_cloud: str) -> list[str]:
    """The demo summary's lines for the sessions."""
    def listed(chunks: tuple[int, ...]) -> str:
        return f" (chunks delivered: {', '.join(map(str, chunks))})" if chunks else ""

    return [
        f"sessions: {stats.sessions} x `{HANDLER}` streamed through random agents, "
        f"{stats.turns} turns, {stats.succeeded} succeeded",
        f"  stayed on one executor throughout: {stats.stayed} of {stats.sessions}",
        f"  moved by the loss: {stats.moved_by_loss} (expected {stats.owned_by_lost}: "
        f"sessions owned by {lost_cloud}), {stats.resettled} of them then on one new "
        f"executor; moved otherwise: {stats.moved_otherwise}",
        f"  streams cut mid-way, reported so in their end: {len(stats.cut)}"
        + listed(stats.cut),
        f"  streams whose entry agent was lost mid-way (no end): {len(stats.entry_lost)}"
        + listed(stats.entry_lost),
        f"  streams stopped mid-way by their deadline (no end): {len(stats.deadline_cut)}"
        + listed(stats.deadline_cut),
        f"  streams failed over before their first chunk: {stats.failed_over}; "
        f"turns without output: {stats.failed}"
        + (f" ({stats.top_failure})" if stats.top_failure else ""),
        f"  output repeated: {stats.repeated} streams; ends whose chunk count differs "
        f"from what the client received: {stats.miscounted}",
    ]


@dataclass(slots=True)
class SessionRun:
    """K sessions of `turns` turns each through `clients` (agent name -> its client)."""

    clients: Mapping[str, AgentClient]
    sessions: int
    turns: int
    lost: Callable[[], bool]
    """Whether the cloud has been lost yet (each turn records it at its start)."""
    words: int = 14
    """Words per turn: its stream's tokens."""
    timeout: float = 10.0
    """Each turn's deadline."""
    pause: float = 0.0
    """Seconds between a session's turns once the cloud is lost: the turns then spread
    over the phase, some before every survivor has marked the cloud dead (they fail over)
    and some after. Before the loss there is none, so that the second turns all stream
    at once when the loss comes."""
    rng: random.Random = field(default_factory=random.Random)
    records: list[Turn] = field(default_factory=list)
    first_turns: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once every session has finished its first turn: each has an owner."""
    _first_done: int = 0

    async def run(self) -> list[Turn]:
        """Every session to its last turn; the records, in the order turns ended."""
        await asyncio.gather(*(self._session(f"s{i:02d}") for i in range(self.sessions)))
        return self.records

    async def _session(self, session: str) -> None:
        for turn in range(1, self.turns + 1):
            message = f"{session} turn {turn}: " + " ".join(
                self.rng.choice(WORDS) for _ in range(self.words))
            self.records.append(await self._turn(session, turn, message))
            if turn == 1:
                self._first_done += 1
                if self._first_done == self.sessions:
                    self.first_turns.set()
            if self.lost() and turn < self.turns:
                await asyncio.sleep(self.pause)

    async def _turn(self, session: str, turn: int, message: str) -> Turn:
        before = not self.lost()
        payload = json.dumps({"message": message}).encode()
        # Every agent, in random order, until one answers: a dead entry agent refuses the
        # connection at once, and before any chunk a turn can go elsewhere without
        # anything repeating.
        names = self.rng.sample(sorted(self.clients), k=len(self.clients))
        text = b""
        chunks = 0
        error = ""
        for entry in names:
            try:
                async with aclosing(self.clients[entry].stream(
                        HANDLER, payload, session=session, timeout=self.timeout)) as events:
                    async for event in events:
                        if event.HasField("chunk"):
                            chunks += 1
                            text += event.chunk.data
                            continue
                        end = event.end
                        return Turn(session=session, turn=turn, before_loss=before,
                                    entry=entry, outcome=outcome_name(end.outcome),
                                    executed_by=end.executed_by, attempts=end.attempts,
                                    chunks_received=chunks, chunks_reported=end.chunks,
                                    prefix_ok=_prefix(text, message), error=end.error)
                return Turn(session=session, turn=turn, before_loss=before, entry=entry,
                            outcome="failed", chunks_received=chunks,
                            prefix_ok=_prefix(text, message),
                            error=f"{entry}: the stream ended without an end event")
            except AgentError as exc:
                error = str(exc)
                if chunks:
                    gone = exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                    return Turn(session=session, turn=turn, before_loss=before, entry=entry,
                                outcome="entry lost" if gone
                                else _STATUSES.get(exc.code, "failed"),
                                chunks_received=chunks, prefix_ok=_prefix(text, message),
                                error=error)
                if exc.code is not grpc.StatusCode.UNAVAILABLE:
                    return Turn(session=session, turn=turn, before_loss=before, entry=entry,
                                outcome=_STATUSES.get(exc.code, "failed"), error=error)
        return Turn(session=session, turn=turn, before_loss=before, entry="", outcome="failed",
                    error=f"no agent of {len(names)} answered; the last: {error}")


_STATUSES = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "deadline_exceeded",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "rejected",
    grpc.StatusCode.FAILED_PRECONDITION: "rejected",
    grpc.StatusCode.INVALID_ARGUMENT: "rejected",
}


def _ends(error: str, keep: int = 120) -> str:
    """A long error's start (the peer and the cause) and its end (why the routing agent
    gave up: attempts, retry budget, peers left), the middle elided."""
    return error if len(error) <= 2 * keep + 5 else f"{error[:keep]} ... {error[-keep:]}"


def _prefix(text: bytes, message: str) -> bool:
    """The stand-in echoes the turn, so whatever a stream delivered starts its echo."""
    return message.encode().startswith(text)
