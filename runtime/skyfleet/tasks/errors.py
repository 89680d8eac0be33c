"""The one error of the tasks package, and whose fault it is.

An attempt that fails is not an exception: it is a verdict (`skyfleet.tasks.verdict`) the
flight turns into a retry. What escapes the package is `TaskRejected`, a task that cannot
run at all, its `why` saying whose fault: INVALID is the caller's (the task itself is
bad), DEADLINE the caller's budget, UNAVAILABLE and EXHAUSTED the fleet's state (nobody
can take it now; every peer tried was full). Anything else raised inside is this code's
own fault: the router logs it and closes the task FAILED. The services edge alone maps
these to gRPC status codes; nothing in here knows of gRPC.
"""

from __future__ import annotations

import enum


class Refusal(enum.Enum):
    INVALID = "invalid"
    """The task itself is bad (no handler, a field too long, an unknown handler, a
    handler no agent of the fleet has ever advertised, a bad payload, larger than a
    message may be)."""
    DEADLINE = "deadline"
    UNAVAILABLE = "unavailable"
    """No peer could take even the first attempt (among them: the agents that served its
    handler are all down)."""
    EXHAUSTED = "exhausted"
    """Every peer tried was full: the caller should back off."""


class TaskRejected(Exception):
    """The task cannot run anywhere; `why` says whose fault, the message names the cause."""

    def __init__(self, why: Refusal, message: str) -> None:
        super().__init__(message)
        self.why = why
