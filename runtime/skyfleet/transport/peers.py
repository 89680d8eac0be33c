"""Outbound side of the agent: one mTLS channel per peer, fire-and-forget delivery.

Membership packets are one-way (replies come back as packets of their own), so a send
never blocks the protocol loop; a failed send is just a lost packet, which SWIM is
built to tolerate. Failures are logged once per peer per minute, naming the peer.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from skyfleet._generated.skyfleet.v1 import membership_pb2_grpc
from skyfleet.membership.messages import Outgoing
from skyfleet.transport.codec import packet_to_proto
from skyfleet.transport.tls import describe_rpc_error, peer_label, secure_channel

log = logging.getLogger("skyfleet.transport")

_CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)
_ERROR_LOG_INTERVAL = 60.0


class PeerChannels:
    """mTLS channels to peers, one per (address, expected name), reused by every service."""

    def __init__(self, creds: grpc.ChannelCredentials) -> None:
        self._creds = creds
        self._channels: dict[tuple[str, str | None], grpc.aio.Channel] = {}
        self._last_error: dict[str, float] = {}

    def get(self, address: str, name: str | None) -> grpc.aio.Channel:
        channel = self._channels.get((address, name))
        if channel is None:
            channel = secure_channel(address, self._creds, name, _CHANNEL_OPTIONS)
            self._channels[(address, name)] = channel
        return channel

    def log_failure(self, exc: grpc.aio.AioRpcError, peer: str, what: str) -> None:
        """Log an RPC failure naming the peer, at most once a minute per peer."""
        now = time.monotonic()
        if now - self._last_error.get(peer, -_ERROR_LOG_INTERVAL) < _ERROR_LOG_INTERVAL:
            return
        self._last_error[peer] = now
        code = exc.code()
        level = logging.INFO if code == grpc.StatusCode.DEADLINE_EXCEEDED else logging.WARNING
        log.log(
            level,
            f"{what}: {describe_rpc_error(exc, peer)}",
            extra={"peer": peer, "code": code.name},
        )

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


class PeerSender:
    def __init__(self, channels: PeerChannels, send_timeout: float) -> None:
        self._channels = channels
        self._timeout = send_timeout
        self._stubs: dict[tuple[str, str | None], membership_pb2_grpc.MembershipStub] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.bytes_sent = 0
        self.packets_sent = 0
        self.send_failures = 0

    def send(self, outgoing: list[Outgoing]) -> None:
        for o in outgoing:
            task = asyncio.get_running_loop().create_task(self._deliver(o))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, o: Outgoing) -> None:
        msg = packet_to_proto(o.packet)
        self.packets_sent += 1
        self.bytes_sent += msg.ByteSize()
        key = (o.address, o.to_name)
        stub = self._stubs.get(key)
        if stub is None:
            stub = membership_pb2_grpc.MembershipStub(self._channels.get(*key))
            self._stubs[key] = stub
        try:
            await stub.Deliver(msg, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            self.send_failures += 1
            self._channels.log_failure(exc, peer_label(o.address, o.to_name), "send")

    async def drain(self) -> None:
        """Let in-flight sends finish briefly: a leave must get out before we close."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._timeout)
