"""Exactly one terminal outcome per submitted task, counted: the books that prove no
task is lost (submitted == succeeded + failed + deadline_exceeded + rejected, once
nothing is in flight)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from skyfleet.tasks.errors import Refusal


class Outcome(enum.IntEnum):
    """Numbers equal the proto's TaskOutcome."""

    SUCCEEDED = 1
    FAILED = 2
    DEADLINE_EXCEEDED = 3
    REJECTED = 4


def refused(why: Refusal) -> Outcome:
    """The outcome of a task refused for `why`: its deadline's, or rejected."""
    return Outcome.DEADLINE_EXCEEDED if why is Refusal.DEADLINE else Outcome.REJECTED


@dataclass(slots=True)
class Ledger:
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    deadline_exceeded: int = 0
    rejected: int = 0
    attempts: int = 0
    """Executions started here or forwarded (first tries and retries)."""
    retried: int = 0
    failed_over: int = 0
    """Retries that went to another cloud than the previous attempt."""

    def close(self, outcome: Outcome) -> None:
        name = outcome.name.lower()
        setattr(self, name, getattr(self, name) + 1)

    @property
    def terminal(self) -> int:
        return self.succeeded + self.failed + self.deadline_exceeded + self.rejected

    @property
    def in_flight(self) -> int:
        return self.submitted - self.terminal
