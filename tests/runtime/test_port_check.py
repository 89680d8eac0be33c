"""`PortChecks` against real sockets on loopback: a closed port is reported refused, an
open one and a silent one are not, and checks of one peer are not repeated in a burst.
The wiring (a broken stream has its peer's port checked) is in test_peer_exchange.py."""

from __future__ import annotations

import asyncio
import socket

from skyfleet.transport.port_check import MIN_GAP, PortChecks

Refusals = list[tuple[str, str]]


def closed_port() -> str:
    """An address nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def settle(checks: PortChecks) -> None:
    """Wait for the checks under way (each is bounded by its timeout)."""
    async with asyncio.timeout(5):
        while checks._running:  # noqa: SLF001 - the test waits for what it started
            await asyncio.sleep(0.01)


async def test_a_closed_port_is_reported_refused_with_the_name_and_address() -> None:
    refused: Refusals = []
    checks = PortChecks(1.0, lambda name, address: refused.append((name, address)))
    address = closed_port()
    checks.check("n1", address)
    await settle(checks)
    assert refused == [("n1", address)]
    assert (checks.checks, checks.refusals) == (1, 1)


async def test_an_open_port_is_no_evidence() -> None:
    refused: Refusals = []
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checks = PortChecks(1.0, lambda name, address: refused.append((name, address)))
    try:
        checks.check("n1", f"127.0.0.1:{port}")
        await settle(checks)
    finally:
        server.close()
        await server.wait_closed()
    assert refused == [] and checks.checks == 1


async def test_a_silent_port_is_no_evidence() -> None:
    """A listening socket whose backlog is full drops SYNs, as a SIGSTOPped or blackholed
    peer's path does: the connect times out, which proves nothing."""
    refused: Refusals = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the (tiny) accept queue; further SYNs go unanswered
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
            fillers.append(s)
        checks = PortChecks(0.3, lambda name, address: refused.append((name, address)))
        checks.check("n1", f"127.0.0.1:{listener.getsockname()[1]}")
        await settle(checks)
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert refused == []


async def test_a_burst_of_failures_checks_a_peer_once() -> None:
    refused: Refusals = []
    checks = PortChecks(1.0, lambda name, address: refused.append((name, address)))
    address = closed_port()
    for _ in range(5):
        checks.check("n1", address)
    checks.check("n2", address)  # another node's name at the address: its own check
    await settle(checks)
    assert checks.checks == 2
    assert sorted(refused) == [("n1", address), ("n2", address)]
    await asyncio.sleep(MIN_GAP)
    checks.check("n1", address)
    await settle(checks)
    assert checks.checks == 3


async def test_after_close_nothing_is_checked() -> None:
    checks = PortChecks(1.0, lambda name, address: None)
    await checks.close()
    checks.check("n1", closed_port())
    assert checks.checks == 0 and not checks._running  # noqa: SLF001
