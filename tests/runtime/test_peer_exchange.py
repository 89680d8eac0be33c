"""One connection per pair of nodes (`Membership.Exchange`), over real gRPC and mTLS: the
callee answers on the caller's stream, and the caller believes only packets from the
node it dialled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import membership_pb2, membership_pb2_grpc
from skyfleet.client import tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.membership.messages import Ack, Outgoing, Packet, Ping
from skyfleet.node import Agent
from skyfleet.transport.codec import packet_from_proto, packet_to_proto
from skyfleet.transport.peers import PeerChannels, PeerSender
from skyfleet.transport.port_check import PortChecks
from skyfleet.transport.return_paths import ReturnPaths
from skyfleet.transport.tls import TlsMaterial, secure_channel


@pytest.fixture
def layout(tmp_path: Path, free_ports) -> tuple[FleetLayout, list[AgentSpec]]:
    layout = FleetLayout(tmp_path)
    specs = [
        AgentSpec(name=f"n{i}", cloud="aws", zone="z", address=f"127.0.0.1:{p}")
        for i, p in enumerate(free_ports(2))
    ]
    for spec in specs:
        layout.write_agent(spec)
    return layout, specs


def material(layout: FleetLayout, identity: str) -> TlsMaterial:
    return TlsMaterial.load(tls_files_in(layout.tls, identity))


def ping(sender: AgentSpec, seq: int) -> membership_pb2.Packet:
    return packet_to_proto(Packet(sender.name, sender.address, Ping(seq, "")), time.monotonic())


async def test_the_callee_answers_on_the_callers_stream(layout) -> None:
    layout, (n0, n1) = layout
    async with Agent(load_agent_config(layout.config_path("n0"))):
        creds = material(layout, "n1").channel_credentials()
        async with secure_channel(n0.address, creds, "n0") as channel:
            call = membership_pb2_grpc.MembershipStub(channel).Exchange()
            await call.write(ping(n1, 7))
            async with asyncio.timeout(5):
                answer = packet_from_proto(await call.read(), time.monotonic())
            # n0 never dialled n1 (nothing listens there): the ack came back on our stream.
            assert (answer.sender, answer.body) == ("n0", Ack(7))
            forged = membership_pb2.Packet(sender="n7", sender_address=n1.address)
            await call.write(forged)
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                async with asyncio.timeout(5):
                    while await call.read() is not grpc.aio.EOF:
                        pass
                    await call
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "n7" in (denied.value.details() or "")


class _Impostor(membership_pb2_grpc.MembershipServicer):
    """Holds n1's certificate but answers each packet as n9 first, then as n1."""

    def __init__(self, address: str) -> None:
        self._address = address

    async def Exchange(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[membership_pb2.Packet], context: object
    ) -> AsyncIterator[membership_pb2.Packet]:
        async for request in request_iterator:
            for name in ("n9", "n1"):
                reply = Packet(name, self._address, Ack(request.ping.seq))
                yield packet_to_proto(reply, time.monotonic())


async def test_the_caller_drops_packets_not_from_the_node_it_dialled(layout) -> None:
    layout, (n0, n1) = layout
    server = grpc.aio.server()
    membership_pb2_grpc.add_MembershipServicer_to_server(_Impostor(n1.address), server)
    server.add_secure_port(n1.address, material(layout, "n1").server_credentials())
    await server.start()
    delivered: list[Packet] = []
    channels = PeerChannels(material(layout, "n0").channel_credentials())
    sender = PeerSender(
        channels,
        send_timeout=2.0,
        deliver=delivered.append,
        return_paths=ReturnPaths(8),
        clock=time.monotonic,
        port_checks=PortChecks(1.0, lambda name, address: None),
    )
    try:
        packet = Packet(n0.name, n0.address, Ping(3, "n1"))
        sender.send([Outgoing(n1.address, packet, "n1")])
        async with asyncio.timeout(5):
            while not delivered:
                await asyncio.sleep(0.01)
        # The impostor's n9 packet came first on the same stream: already dropped.
        assert [(p.sender, p.body) for p in delivered] == [("n1", Ack(3))]
    finally:
        await sender.drain()
        await channels.close()
        await server.stop(None)


class _CountingChannels(PeerChannels):
    """Records the (address, expected name) of every channel a stream is opened on."""

    def __init__(self, creds: grpc.ChannelCredentials) -> None:
        super().__init__(creds)
        self.dialled: list[tuple[str, str | None]] = []

    def get(self, address: str, name: str | None) -> grpc.aio.Channel:
        self.dialled.append((address, name))
        return super().get(address, name)


async def test_the_stream_dialled_to_a_seed_address_also_serves_the_seed_by_name(layout) -> None:
    layout, (n0, n1) = layout
    async with Agent(load_agent_config(layout.config_path("n0"))):
        delivered: list[Packet] = []
        channels = _CountingChannels(material(layout, "n1").channel_credentials())
        sender = PeerSender(
            channels,
            send_timeout=2.0,
            deliver=delivered.append,
            return_paths=ReturnPaths(8),
            clock=time.monotonic,
            port_checks=PortChecks(1.0, lambda name, address: None),
        )
        try:
            assert not sender.connected(n0.address, "n0")
            # A join: the seed is only an address.
            sender.send([Outgoing(n0.address, Packet(n1.name, n1.address, Ping(1, "")), None)])
            async with asyncio.timeout(5):
                while not delivered:
                    await asyncio.sleep(0.01)
            assert (delivered[0].sender, delivered[0].body) == ("n0", Ack(1))
            assert sender.connected(n0.address, "n0")
            # Later packets name the seed: they take the same stream, no second handshake.
            sender.send([Outgoing(n0.address, Packet(n1.name, n1.address, Ping(2, "n0")), "n0")])
            async with asyncio.timeout(5):
                while len(delivered) < 2:
                    await asyncio.sleep(0.01)
            assert delivered[1].body == Ack(2)
            assert channels.dialled == [(n0.address, None)]
        finally:
            await sender.drain()
            await channels.close()


async def test_a_stream_the_peer_opened_to_us_counts_as_a_connection(layout) -> None:
    layout, (n0, _) = layout
    paths = ReturnPaths(8)
    channels = PeerChannels(material(layout, "n1").channel_credentials())
    sender = PeerSender(
        channels,
        send_timeout=2.0,
        deliver=lambda p: None,
        return_paths=paths,
        clock=time.monotonic,
        port_checks=PortChecks(1.0, lambda name, address: None),
    )
    assert not sender.connected(n0.address, "n0")
    queue = paths.open((n0.address, "n0"))
    assert sender.connected(n0.address, "n0")
    paths.close((n0.address, "n0"), queue)
    assert not sender.connected(n0.address, "n0")
    await channels.close()


class _Acker(membership_pb2_grpc.MembershipServicer):
    """Answers every ping as n1."""

    def __init__(self, address: str) -> None:
        self._address = address

    async def Exchange(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[membership_pb2.Packet], context: object
    ) -> AsyncIterator[membership_pb2.Packet]:
        async for request in request_iterator:
            reply = Packet("n1", self._address, Ack(request.ping.seq))
            yield packet_to_proto(reply, time.monotonic())


async def test_a_stream_broken_by_the_peers_death_has_its_port_checked(layout) -> None:
    layout, (n0, n1) = layout
    server = grpc.aio.server()
    membership_pb2_grpc.add_MembershipServicer_to_server(_Acker(n1.address), server)
    server.add_secure_port(n1.address, material(layout, "n1").server_credentials())
    await server.start()
    delivered: list[Packet] = []
    refused: list[tuple[str, str]] = []
    channels = PeerChannels(material(layout, "n0").channel_credentials())
    sender = PeerSender(
        channels,
        send_timeout=2.0,
        deliver=delivered.append,
        return_paths=ReturnPaths(8),
        clock=time.monotonic,
        port_checks=PortChecks(1.0, lambda name, address: refused.append((name, address))),
    )
    try:
        sender.send([Outgoing(n1.address, Packet(n0.name, n0.address, Ping(1, "n1")), "n1")])
        async with asyncio.timeout(5):
            while not delivered:
                await asyncio.sleep(0.01)
        await server.stop(None)  # the port closes with the stream open: as a kill -9
        async with asyncio.timeout(10):
            while not refused:
                await asyncio.sleep(0.01)
        assert refused[0] == ("n1", n1.address)
    finally:
        await sender.drain()
        await channels.close()
