"""At most one log line per key per interval, so a flood (a peer sending forged claims by
the thousand) cannot fill the disk; the next line says how many were held back. The
counters in the metrics keep the exact numbers."""

from __future__ import annotations

from collections.abc import Callable

MAX_KEYS = 10_000
"""Keys remembered; a flood from ever-new keys falls back to one line per interval."""


class LogLimiter:
    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        """key -> (when its last line was written, lines held back since)."""

    def allow(self, key: str) -> int | None:
        """None: hold this line back. Else write it, and say how many were held back."""
        now = self._clock()
        if len(self._last) >= MAX_KEYS and key not in self._last:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self._interval}
            if len(self._last) >= MAX_KEYS:
                key = "*"
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0
