"""`skyfleet.v1.Membership`: where peers' packets enter the agent, and, on `Exchange`
streams, where our own packets for the caller leave."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import grpc

from skyfleet._generated.skyfleet.v1 import membership_pb2, membership_pb2_grpc
from skyfleet.membership.messages import Packet
from skyfleet.security.certs import PeerIdentity
from skyfleet.security.revocation import Revocations
from skyfleet.transport.codec import MalformedPacket, packet_from_proto
from skyfleet.transport.return_paths import ReturnPaths
from skyfleet.transport.swim_loop import SwimLoop
from skyfleet.transport.tls import require_sender


class MembershipService(membership_pb2_grpc.MembershipServicer):
    def __init__(
        self,
        loop: SwimLoop,
        return_paths: ReturnPaths,
        revocations: Revocations,
        stream_ended: Callable[[str, str], None],
    ) -> None:
        """`revocations`: a stream outlives the call gate's check; each packet is held to
        the list in force when it arrives. `stream_ended(name, address)`: a named peer's
        stream to us ended, however: its port is worth a check (`port_check.py`), since
        a `kill -9`'d peer ends its streams at once and says nothing."""
        self._loop = loop
        self._return_paths = return_paths
        self._revocations = revocations
        self._stream_ended = stream_ended

    async def _still_valid(
        self, identity: PeerIdentity, context: grpc.aio.ServicerContext
    ) -> None:
        refusal = self._revocations.refusal(identity)
        if refusal is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)

    async def Exchange(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[membership_pb2.Packet],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[membership_pb2.Packet]:
        """Deliver the caller's packets; once its first packet has named and placed it
        (certificate CN, checked address), our packets for it go out on this stream.

        Packets are checked and delivered here, between our writes, not in a task of
        their own: a refusal aborts the call, which makes grpc send the status at once,
        and a status sent while one of our writes is under way fails in grpc's core (too
        many operations), ending the call with no status: the caller would wait for its
        deadline, or for ever."""
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            return
        packet = await _decode(first, self._loop.now(), context)
        identity = await require_sender(context, packet.sender)
        caller = identity.name
        key = (packet.sender_address, caller)
        outbox = self._return_paths.open(key)  # before delivering: the answer may go back
        incoming = asyncio.ensure_future(anext(requests, None))
        outgoing = asyncio.ensure_future(outbox.get())
        try:
            self._loop.deliver(packet)
            while True:
                await asyncio.wait({incoming, outgoing}, return_when=asyncio.FIRST_COMPLETED)
                if outgoing.done():  # first: a packet taken off the outbox is sent
                    yield outgoing.result()
                    outgoing = asyncio.ensure_future(outbox.get())
                if incoming.done():
                    request = incoming.result()
                    if request is None:
                        return  # the caller is done writing
                    packet = await _decode(request, self._loop.now(), context)
                    if packet.sender != caller:  # the certificate speaks for one node only
                        await require_sender(context, packet.sender)
                    await self._still_valid(identity, context)
                    self._loop.deliver(packet)
                    incoming = asyncio.ensure_future(anext(requests, None))
        finally:
            self._return_paths.close(key, outbox)
            self._stream_ended(caller, key[0])
            for waiting in (incoming, outgoing):
                waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await incoming


async def _decode(
    request: membership_pb2.Packet, now: float, context: grpc.aio.ServicerContext
) -> Packet:
    """`now`: the protocol loop's clock at arrival (the statuses' ages are taken back
    from it)."""
    try:
        return packet_from_proto(request, now)
    except MalformedPacket as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad packet: {exc}")
        raise  # unreachable: abort raises
