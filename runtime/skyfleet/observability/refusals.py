"""What this agent refused, and from whom: calls its gate or servicers denied, and
self-claims forged by a sender.

Each refusal is counted by reason (metrics) and by the identity it came from (shown by
`skyfleet members`), and logged at WARNING with the peer's address and the reason, at most
once per identity and reason per interval, so a flood cannot fill the disk; the next line
says how many were held back. Refused TLS handshakes never reach Python: grpcio's core
logs them itself (`Handshake failed with error ...`), without the peer's address, and
offers no hook; they are not counted here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from skyfleet.observability.log_limit import LogLimiter

log = logging.getLogger("skyfleet.refusals")

LOG_INTERVAL = 10.0
"""Seconds between log lines about one identity's refusals of one reason."""


class Refusals:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.by_reason: Counter[str] = Counter()
        self.by_identity: Counter[str] = Counter()
        self._lines = LogLimiter(LOG_INTERVAL, clock)

    def record(self, reason: str, *, identity: str, peer: str, detail: str) -> None:
        """`identity`: the certificate's name ("" when none could be read); `peer`: the
        address it came from, as gRPC names it."""
        self.by_reason[reason] += 1
        if identity:
            self.by_identity[identity] += 1
        held_back = self._lines.allow(f"{reason}:{identity or peer}")
        if held_back is None:
            return
        who = f"{identity} ({peer})" if identity and peer else identity or peer or "?"
        message = f"refused {reason} from {who}: {detail}"
        if held_back:
            message += f" ({held_back} more since the last line)"
        log.warning(
            message,
            extra={"reason": reason, "identity": identity, "peer": peer, "held_back": held_back},
        )
