"""Runs a `Swim` core on the asyncio clock: packets in, timer ticks, packets out.

The only code between the protocol and the network: it owns no protocol state. Events
the core reports are handed to listeners (logs, metrics) after every step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from skyfleet.membership.members import EventKind, MemberEvent
from skyfleet.membership.messages import Outgoing, Packet, StatusReport
from skyfleet.membership.swim import Swim

log = logging.getLogger("skyfleet.membership")

EventListener = Callable[[MemberEvent], None]

_EVENT_LEVEL = {
    EventKind.FAILED: logging.WARNING,
    EventKind.SUSPECT: logging.INFO,
    EventKind.REFUTED: logging.INFO,
    EventKind.REVOKED: logging.WARNING,
}
_UNLOGGED = frozenset({EventKind.FORGED})
"""Events listeners log themselves: forged claims go to the agent's refusal log, which
names the sender and holds back floods (`observability/refusals.py`)."""


class SwimLoop:
    def __init__(
        self,
        swim: Swim,
        send: Callable[[list[Outgoing]], None],
        clock: Callable[[], float],
    ) -> None:
        self.swim = swim
        self._send = send
        self._clock = clock
        self._wake = asyncio.Event()
        self._listeners: list[EventListener] = []
        self._status_listeners: list[Callable[[], None]] = []
        self._statuses_seen = 0
        self._join_waiters: list[asyncio.Future[bool]] = []

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def add_status_listener(self, listener: Callable[[], None]) -> None:
        """Called after a step in which newer statuses of other nodes arrived."""
        self._status_listeners.append(listener)

    def now(self) -> float:
        """The protocol's clock reading: packets are decoded against it, so the statuses
        they carry land on the clock the core compares their `measured_at` with."""
        return self._clock()

    def start(self, seeds: tuple[str, ...]) -> None:
        self._emit(self.swim.start(self._clock(), seeds))

    async def join(self, seeds: tuple[str, ...], timeout: float) -> bool:
        """Join through `seeds`; whether a seed answered within `timeout` seconds."""
        joined = asyncio.get_running_loop().create_future()
        self._join_waiters.append(joined)
        self._emit(self.swim.join(seeds, self._clock()))
        try:
            async with asyncio.timeout(timeout):
                return await joined
        except TimeoutError:
            return False
        finally:
            if joined in self._join_waiters:
                self._join_waiters.remove(joined)

    def deliver(self, packet: Packet) -> None:
        """Feed one received packet (called from the gRPC handler)."""
        self._emit(self.swim.handle(packet, self._clock()))

    def refused(self, name: str, address: str) -> None:
        """A connect to `name`'s port at `address` was refused (`port_check.py`)."""
        self._emit(self.swim.refused(name, address, self._clock()))

    def publish_status(self, report: StatusReport) -> None:
        self._emit(self.swim.publish_status(report, self._clock()))

    async def run(self) -> None:
        """Fire timers as they fall due, until cancelled."""
        while True:
            deadline = self.swim.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self._clock())
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that lands as the event is set, and shutdown would then wait forever.
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._emit(self.swim.tick(self._clock()))

    async def leave(self, propagate: float) -> None:
        """Announce a graceful leave and keep gossiping for `propagate` seconds."""
        self._emit(self.swim.leave(self._clock()))
        end = self._clock() + propagate
        while (now := self._clock()) < end:
            deadline = self.swim.next_deadline() or end
            await asyncio.sleep(max(0.0, min(deadline, end) - now))
            self._emit(self.swim.tick(self._clock()))

    def _emit(self, out: list[Outgoing]) -> None:
        if out:
            self._send(out)
        for event in self.swim.take_events():
            if event.kind not in _UNLOGGED:
                log.log(
                    _EVENT_LEVEL.get(event.kind, logging.INFO),
                    f"member {event.node} {event.kind.value}",
                    extra={
                        "event": event.kind.value,
                        "member": event.node,
                        "incarnation": event.incarnation,
                        "source": event.source,
                    },
                )
            for listener in self._listeners:
                listener(event)
        if self.swim.statuses_received != self._statuses_seen:
            self._statuses_seen = self.swim.statuses_received
            for notify in self._status_listeners:
                notify()
        if self._join_waiters and self.swim.joined:
            for waiter in self._join_waiters:
                if not waiter.done():
                    waiter.set_result(True)
            self._join_waiters.clear()
        # The core may have armed an earlier timer than the one the loop waits for.
        self._wake.set()
