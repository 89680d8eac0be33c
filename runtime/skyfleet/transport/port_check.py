"""Is anything listening on a peer's port? A plain TCP connect after a stream to the peer
broke or a send to it failed, so that a refusal reaches membership as evidence
(`Swim.refused`) within a round trip of a `kill -9`, not a suspicion timeout later.

Why a connect of our own rather than gRPC's error: a channel in reconnect backoff keeps
answering with the last connect error, so after a restart on the same port it would go
on saying "refused" about the new, listening process. A fresh SYN answered by an RST is
the host's own word that nothing listens now. A silent peer (SIGSTOPped, blackholed,
behind loss) gives a timeout, which is no evidence at all and is left to the probes.
The connect carries no bytes: it is closed as soon as it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

log = logging.getLogger("skyfleet.transport")

MIN_GAP = 0.25
"""Seconds between two checks of one peer: streams and sends to a peer that died fail
in bursts, and one answer per burst is all membership needs."""


class PortChecks:
    def __init__(self, timeout: float, on_refused: Callable[[str, str], None]) -> None:
        """`on_refused(name, address)` is called when a connect to the port of the node
        `name` at `address` was refused; `timeout` bounds each connect."""
        self._timeout = timeout
        self._on_refused = on_refused
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._last: dict[tuple[str, str], float] = {}
        self._closed = False
        self.checks = 0
        self.refusals = 0

    def check(self, name: str, address: str) -> None:
        """Check `name`'s port at `address` soon, unless a check of it is under way or
        one started less than `MIN_GAP` ago."""
        if self._closed:
            return  # shutting down: our own server's streams end, nothing to learn
        key = (name, address)
        now = time.monotonic()
        self._last = {k: at for k, at in self._last.items() if now - at < MIN_GAP}
        if key in self._running or key in self._last:
            return
        self._last[key] = now
        task = asyncio.get_running_loop().create_task(self._check(name, address))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def _check(self, name: str, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.checks += 1
        try:
            async with asyncio.timeout(self._timeout):
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except ConnectionRefusedError:
            self.refusals += 1
            log.info(
                f"{name} at {address} refused a connection: nothing listens there",
                extra={"peer": name, "address": address},
            )
            self._on_refused(name, address)
            return
        except (OSError, TimeoutError, ValueError):
            return  # silence, no route, or an address we cannot dial: no evidence
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def close(self) -> None:
        self._closed = True
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
