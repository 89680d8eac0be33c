"""How one attempt of a task ended, in the terms the flight's failover and the balancer's
outlier detection need: the one language the agent's attempts and the simulator's speak.

| verdict     | cause                                     | the flight does    | peer blamed |
|-------------|-------------------------------------------|--------------------|-------------|
| OK          | the handler returned                      | answers            | no          |
| CLIENT      | unknown handler, bad payload              | INVALID_ARGUMENT   | no          |
| FULL        | capacity and queue full                   | retries elsewhere  | no          |
| FAILED      | the handler raised                        | retries elsewhere  | yes         |
| UNREACHABLE | no connection, or no answer within the    | retries in another | yes         |
|             | attempt's own timeout                     | cloud if it can    |             |
| DEADLINE    | the task's deadline ran out meanwhile     | DEADLINE_EXCEEDED  | no          |

The last row matters: a deadline shorter than the work is the client's choice, and
counting it against the peer would let a few impatient clients eject a healthy cloud.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    OK = "ok"
    CLIENT = "client"
    FULL = "full"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    DEADLINE = "deadline"

    @property
    def blames_peer(self) -> bool:
        return self in (Verdict.FAILED, Verdict.UNREACHABLE)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    verdict: Verdict
    output: bytes = b""
    error: str = ""
    timed_out: bool = False
    """No answer within the attempt's timeout (UNREACHABLE, or DEADLINE if that timeout
    was the task's own deadline)."""
    duplicate: bool = False
    """The executor had already run this idempotency key: `output` is the first run's."""

    @property
    def never_reached(self) -> bool:
        """No connection at all (refused, no route, gone from membership, a broken
        stream), as opposed to a peer that was reached and did not answer in time: the
        retry that follows is free of the retry budget and the peer is ejected at once."""
        return self.verdict is Verdict.UNREACHABLE and not self.timed_out
