"""`skyfleet.v1.Membership`: where peers' packets enter the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from skyfleet._generated.skyfleet.v1 import membership_pb2, membership_pb2_grpc
from skyfleet.transport.codec import MalformedPacket, packet_from_proto
from skyfleet.transport.swim_loop import SwimLoop
from skyfleet.transport.tls import require_sender


class MembershipService(membership_pb2_grpc.MembershipServicer):
    def __init__(self, loop: SwimLoop) -> None:
        self._loop = loop

    async def Stream(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[membership_pb2.Packet],
        context: grpc.aio.ServicerContext,
    ) -> membership_pb2.DeliverReply:
        caller: str | None = None
        async for request in request_iterator:
            try:
                packet = packet_from_proto(request)
            except MalformedPacket as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad packet: {exc}")
            if packet.sender != caller:
                # A packet speaks only for the node whose certificate opened the stream.
                caller = (await require_sender(context, packet.sender)).name
            self._loop.deliver(packet)
        return membership_pb2.DeliverReply()
