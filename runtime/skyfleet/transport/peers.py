"""Outbound side of the agent: one mTLS channel per peer, and one long-lived membership
stream (`Exchange`) per peer carrying our packets to it.

Packets are one-way, so sending never blocks the protocol loop: a packet goes into the
peer's bounded queue and a pump task writes it. The peer may send its own packets back
on the response side of our stream (see `return_paths`); we deliver those when they come
from the address we dialled and, if we dialled a named node, from that node. Likewise,
a packet for a peer that has a stream open to us, and to which we have none, goes out on
that stream: one connection per pair of nodes. A stream dialled to a bare seed address
also carries our packets for the node that answers on it (see `PeerSender.adopt`), so a
joiner keeps the one connection to its seed. A packet that cannot be written (peer
gone, handshake refused, queue full) is simply lost, which SWIM is built to tolerate;
the failure is logged once per peer per minute, naming the peer. A broken stream is
reopened by the next packet. A stream to a named peer that broke, or a write to it that
failed as unavailable, has the peer's port checked (`port_check.py`): a refusal is news
for membership.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import grpc

from skyfleet._generated.skyfleet.v1 import membership_pb2, membership_pb2_grpc
from skyfleet.membership.messages import Outgoing, Packet
from skyfleet.transport.codec import MalformedPacket, packet_from_proto, packet_to_proto
from skyfleet.transport.port_check import PortChecks
from skyfleet.transport.return_paths import ReturnPaths
from skyfleet.transport.tls import describe_rpc_error, peer_label, secure_channel

log = logging.getLogger("skyfleet.transport")

# BDP probing would add an HTTP/2 PING round trip to most bursts of our tiny messages:
# membership needs no bandwidth estimate, so it is off on both ends (see node.py).
GRPC_OPTIONS = (("grpc.http2.bdp_probe", 0),)
_CHANNEL_OPTIONS = (
    *GRPC_OPTIONS,
    # Peer failure is membership's job (probes every second); keepalive only has to
    # notice a dead connection eventually, and every ping costs each pair of nodes bytes.
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)
TASK_KEEPALIVE_SECONDS = 0.5
"""HTTP/2 PING interval on a channel carrying task calls, while a call is open."""
TASK_KEEPALIVE_TIMEOUT_SECONDS = 1.0
"""A PING unanswered this long breaks the connection and fails its calls UNAVAILABLE."""
TASK_CONNECT_TIMEOUT_SECONDS = 1.0
"""How long a (re)connect may take before the calls waiting on it fail UNAVAILABLE."""
TASK_CHANNEL_OPTIONS = (
    *GRPC_OPTIONS,
    # A cloud that goes dark (packets dropped, nothing refused) leaves a task call
    # waiting for its deadline, which for an AI-agent task is minutes: the attempt's
    # time says nothing about the path. A PING says it, whatever the task's length: an
    # attempt on a blackholed peer fails within 1-1.5 s as unreachable, is retried
    # elsewhere, and ejects its peer (outlier.py); a new one fails within the connect
    # timeout. Pings run only while task calls are open (none on an idle channel) and
    # on channels of their own, so membership's always-open streams pay nothing
    # (Envoy's upstream HTTP/2 connection_keepalive, gRPC's keepalive).
    ("grpc.keepalive_time_ms", int(TASK_KEEPALIVE_SECONDS * 1000)),
    ("grpc.keepalive_timeout_ms", int(TASK_KEEPALIVE_TIMEOUT_SECONDS * 1000)),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.min_reconnect_backoff_ms", int(TASK_CONNECT_TIMEOUT_SECONDS * 1000)),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)
SERVER_OPTIONS = (
    *GRPC_OPTIONS,
    # Accept the task channels' PINGs while a call waits for its handler (no data
    # flows then); a peer pinging faster than this is still told to calm down.
    ("grpc.http2.min_recv_ping_interval_without_data_ms", int(TASK_KEEPALIVE_SECONDS * 500)),
)
_ERROR_LOG_INTERVAL = 60.0
QUEUE_LIMIT = 256
"""Packets waiting for one peer; beyond it new packets are dropped (the peer is slow or
unreachable, and newer news will follow)."""


class PeerChannels:
    """mTLS channels to peers, one per (address, expected name) for membership and policy,
    and one more per peer for task calls."""

    def __init__(self, creds: grpc.ChannelCredentials) -> None:
        self._creds = creds
        self._channels: dict[tuple[str, str | None, bool], grpc.aio.Channel] = {}
        """By (address, expected name, for task calls)."""
        self._retired: list[grpc.aio.Channel] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._last_error: dict[str, float] = {}

    def set_credentials(self, creds: grpc.ChannelCredentials, grace: float) -> None:
        """Dial with new credentials (a renewed certificate, a new CA bundle) from now on.
        Open channels keep serving the calls they carry for `grace` seconds, then close;
        a stream cut then reopens on a new channel, as after any broken connection."""
        self._creds = creds
        retired = list(self._channels.values())
        self._channels.clear()
        self._retired += retired

        async def close_later() -> None:
            await asyncio.sleep(grace)
            for channel in retired:
                self._retired.remove(channel)
                await channel.close(grace=None)

        task = asyncio.get_running_loop().create_task(close_later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def get(self, address: str, name: str | None) -> grpc.aio.Channel:
        """The channel for membership streams and policy fetches."""
        return self._channel(address, name, tasks=False)

    def for_tasks(self, address: str, name: str) -> grpc.aio.Channel:
        """The channel for task calls: one of its own per peer, kept alive by PINGs while
        a call is open (`TASK_CHANNEL_OPTIONS`)."""
        return self._channel(address, name, tasks=True)

    def _channel(self, address: str, name: str | None, *, tasks: bool) -> grpc.aio.Channel:
        channel = self._channels.get((address, name, tasks))
        if channel is None:
            options = TASK_CHANNEL_OPTIONS if tasks else _CHANNEL_OPTIONS
            channel = secure_channel(address, self._creds, name, options)
            self._channels[(address, name, tasks)] = channel
        return channel

    def log_failure(self, exc: grpc.aio.AioRpcError, peer: str, what: str) -> None:
        """Log an RPC failure naming the peer, at most once a minute per peer."""
        if not self._may_log(peer):
            return
        code = exc.code()
        level = logging.INFO if code == grpc.StatusCode.DEADLINE_EXCEEDED else logging.WARNING
        log.log(
            level,
            f"{what}: {describe_rpc_error(exc, peer)}",
            extra={"peer": peer, "code": code.name},
        )

    def log_refusal(self, peer: str, why: str) -> None:
        """Log a packet dropped because the peer sent what it may not, at most once a
        minute per peer."""
        if self._may_log(peer):
            log.warning(f"dropped a packet from {peer}: {why}", extra={"peer": peer})

    def _may_log(self, peer: str) -> bool:
        now = time.monotonic()
        if now - self._last_error.get(peer, -_ERROR_LOG_INTERVAL) < _ERROR_LOG_INTERVAL:
            return False
        self._last_error[peer] = now
        return True

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        for channel in [*self._channels.values(), *self._retired]:
            await channel.close(grace=None)
        self._channels.clear()
        self._retired.clear()


class _PeerStream:
    """The queue and pump task of our stream to one peer."""

    def __init__(self, sender: PeerSender, address: str, name: str | None) -> None:
        self.queue: asyncio.Queue[membership_pb2.Packet] = asyncio.Queue(QUEUE_LIMIT)
        self._sender = sender
        self._address = address
        self._name = name
        self.answered_as: str | None = name
        """The node this stream reaches: the dialled name, or for a seed's bare address
        the node that answered on it (`PeerSender.adopt`)."""
        self._call: grpc.aio.StreamStreamCall | None = None
        self._listener: asyncio.Task[None] | None = None
        self.task = asyncio.get_running_loop().create_task(self._pump())

    @property
    def connected(self) -> bool:
        """A call is open or being opened: its handshake is paid for (until it breaks)."""
        return self._call is not None

    async def _pump(self) -> None:
        s = self._sender
        while True:
            msg = await self.queue.get()
            try:
                if self._call is None:
                    stub = membership_pb2_grpc.MembershipStub(
                        s.channels.get(self._address, self._name)
                    )
                    self._call = stub.Exchange()
                    self._listener = asyncio.get_running_loop().create_task(
                        self._listen(self._call)
                    )
                async with asyncio.timeout(s.send_timeout):
                    await self._call.write(msg)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as exc:
                s.send_failures += 1
                if isinstance(exc, grpc.aio.AioRpcError):
                    label = peer_label(self._address, self._name)
                    s.channels.log_failure(exc, label, "send")
                    self._check_port(exc)
                await self._reset()
            finally:
                self.queue.task_done()

    async def _listen(self, call: grpc.aio.StreamStreamCall) -> None:
        """Deliver what the peer sends back on our stream; a stream that ends or breaks
        is noticed (and reopened) by the next write."""
        label = peer_label(self._address, self._name)
        try:
            async for msg in call:
                try:
                    packet = packet_from_proto(msg, self._sender.clock())
                except MalformedPacket as exc:
                    self._sender.channels.log_refusal(label, f"sent a bad packet back: {exc}")
                    return
                if packet.sender_address != self._address or (
                    self._name is not None and packet.sender != self._name
                ):
                    self._sender.channels.log_refusal(
                        label, f"answered as {packet.sender!r} from {packet.sender_address!r}"
                    )
                    continue
                if self._name is None:
                    self._sender.adopt(self, self._address, packet.sender)
                self._sender.deliver(packet)
        except grpc.aio.AioRpcError as exc:
            self._check_port(exc)
            return

    def _check_port(self, exc: grpc.aio.AioRpcError) -> None:
        """The call broke or could not connect: is the peer's port still open?"""
        if self.answered_as is not None and exc.code() == grpc.StatusCode.UNAVAILABLE:
            self._sender.port_checks.check(self.answered_as, self._address)

    async def _reset(self) -> None:
        """Drop the broken stream (its failure was logged where it showed)."""
        call, self._call = self._call, None
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        if call is None:
            return
        call.cancel()
        try:
            async with asyncio.timeout(1.0):
                await call.code()
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            # Awaiting a call we cancelled may raise CancelledError. If our own task is
            # being cancelled (`close`), it must end: swallowing that left the pump looping
            # and `close` (and so a SIGTERM'd agent) waiting for ever.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self._listener is not None:
            self._listener.cancel()
        if self._call is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    await self._call.done_writing()
            self._call.cancel()


class PeerSender:
    def __init__(
        self,
        channels: PeerChannels,
        send_timeout: float,
        *,
        deliver: Callable[[Packet], None],
        return_paths: ReturnPaths,
        clock: Callable[[], float],
        port_checks: PortChecks,
    ) -> None:
        """`clock`: the protocol loop's (the one its Swim core runs on). Statuses travel
        with their age, taken against it when a packet is encoded and decoded.
        `port_checks`: where a broken stream's peer is checked for a refusing port."""
        self.channels = channels
        self.port_checks = port_checks
        self.clock = clock
        self.send_timeout = send_timeout
        self.deliver = deliver
        """Where packets a peer sends back on our streams go (the protocol loop)."""
        self._return_paths = return_paths
        self._streams: dict[tuple[str, str | None], _PeerStream] = {}
        self.bytes_sent = 0
        self.packets_sent = 0
        self.send_failures = 0

    def send(self, outgoing: list[Outgoing]) -> None:
        now = self.clock()
        for o in outgoing:
            msg = packet_to_proto(o.packet, now)
            key = (o.address, o.to_name)
            stream = self._streams.get(key)
            queue = stream.queue if stream is not None else self._return_path(key)
            if queue is None:
                stream = self._streams[key] = _PeerStream(self, o.address, o.to_name)
                queue = stream.queue
            try:
                queue.put_nowait(msg)
            except asyncio.QueueFull:
                self.send_failures += 1
                continue
            self.packets_sent += 1
            self.bytes_sent += msg.ByteSize()

    def connected(self, address: str, name: str) -> bool:
        """Whether a packet for the node `name` at `address` would go out on an open
        stream, ours or one the peer opened to us (no handshake to pay)."""
        stream = self._streams.get((address, name))
        if stream is not None:
            return stream.connected
        return self._return_paths.get((address, name)) is not None

    def adopt(self, stream: _PeerStream, address: str, name: str) -> None:
        """Let `stream`, dialled to the bare address of a seed, also carry our packets for
        `name`, the node that answers on it, unless we have a stream for that node
        already. This trusts no more than the stream already does: its handshake checked
        the seed's certificate against the dialled address (see `tls.py`), and whatever
        answers on it is already taken to speak for the node it names. Without it, every
        joiner's first packet addressed to its seed by name would open a second
        connection to the busiest node of a join."""
        stream.answered_as = name
        self._streams.setdefault((address, name), stream)

    def _return_path(
        self, key: tuple[str, str | None]
    ) -> asyncio.Queue[membership_pb2.Packet] | None:
        address, name = key
        return None if name is None else self._return_paths.get((address, name))

    async def drain(self) -> None:
        """Let queued packets go out briefly (a leave must get out), then stop the pumps."""
        streams = set(self._streams.values())  # a seed's stream may serve two keys
        queues = [s.queue.join() for s in streams]
        if queues:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.send_timeout):
                    await asyncio.gather(*queues)
        for stream in streams:
            await stream.close()
        self._streams.clear()
        await self.port_checks.close()
