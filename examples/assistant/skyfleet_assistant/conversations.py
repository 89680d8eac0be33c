"""Conversations by session, in this host's memory, bounded: at most `max_sessions` of
them (the least recently used dropped first), each at most `max_turns` turns (the oldest
dropped first), each text at most `MAX_TEXT` characters. A host's memory for them is so
bounded by max_sessions x max_turns x 2 x MAX_TEXT characters, whatever its clients do.

The bounds are the caller's, given at each `record`: they come from the agent config,
which the store does not read, and a smaller bound applies from the next turn on.

A task without a session is a one-turn conversation: nothing is kept of it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_TEXT = 32_000
"""Characters of a message or answer kept in a conversation (the rest is cut, from the
end): a long answer is kept for its start, which a follow-up usually refers to."""


@dataclass(frozen=True, slots=True)
class Turn:
    """A user's message and the assistant's answer to it."""

    user: str
    assistant: str


class ConversationStore:
    def __init__(self) -> None:
        self._sessions: OrderedDict[str, tuple[Turn, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def history(self, session: str) -> tuple[Turn, ...]:
        """The session's turns, oldest first (none for no session or one not kept);
        the session becomes the most recently used."""
        if session not in self._sessions:
            return ()
        self._sessions.move_to_end(session)
        return self._sessions[session]

    def record(
        self, session: str, history: tuple[Turn, ...], turn: Turn, *,
        max_sessions: int, max_turns: int,
    ) -> None:
        """Keep `history` and then `turn` as the session's conversation, within the
        bounds. `history` is what the turn was answered from (the kept turns, or those
        the client sent), so the conversation stays the one the model saw even if
        another task of the session finished in between."""
        if not session or not max_turns:
            return
        kept = (*history, turn)[-max_turns:]
        self._sessions[session] = tuple(
            Turn(t.user[:MAX_TEXT], t.assistant[:MAX_TEXT]) for t in kept
        )
        self._sessions.move_to_end(session)
        while len(self._sessions) > max_sessions:
            self._sessions.popitem(last=False)
