"""Real mutual TLS over loopback with grpc.aio: who gets in, who is refused, and what the
handlers learn about the caller."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from skyfleet.config.agent import TlsFiles
from skyfleet.config.errors import ConfigError
from skyfleet.security.certs import (
    create_ca,
    issue_admin_cert,
    issue_node_cert,
    write_cert_file,
    write_key_file,
)
from skyfleet.transport.tls import (
    TlsMaterial,
    channel_credentials,
    describe_rpc_error,
    identity_from_context,
    peer_label,
    require_admin,
    require_sender,
    secure_channel,
    server_credentials,
)

SERVER = "node-b"
REFUSED = "refused: TLS handshake failed (certificate not from the fleet CA, expired, or missing)"
DEADLINE = 10.0  # a guard only: every call here finishes or fails within milliseconds

Pair = tuple[bytes, bytes]


@dataclass(frozen=True)
class Fleet:
    ca: Pair
    other_ca: Pair

    def node(self, name: str, hosts: list[str], **kw: object) -> Pair:
        return issue_node_cert(*self.ca, name, hosts, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(ca=create_ca(), other_ca=create_ca("another fleet"))


# --- a tiny real service: who am I, an admin-only method, a packet with a sender --------

Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


async def _who_am_i(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    identity = identity_from_context(context)
    return f"{identity.name}:{identity.role}".encode()


async def _admin_only(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    identity = await require_admin(context)
    return f"hello {identity.name}".encode()


async def _send(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    identity = await require_sender(context, request.decode())
    return f"accepted from {identity.name}".encode()


_METHODS: dict[str, Handler] = {"WhoAmI": _who_am_i, "AdminOnly": _admin_only, "Send": _send}


def _probe_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "skyfleet.test.Probe",
        {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in _METHODS.items()},
    )


async def _call(channel: grpc.aio.Channel, method: str, payload: bytes = b"") -> bytes:
    rpc = channel.unary_unary(f"/skyfleet.test.Probe/{method}")
    response: bytes = await rpc(payload, timeout=DEADLINE)
    return response


async def _health(channel: grpc.aio.Channel) -> health_pb2.HealthCheckResponse:
    stub = health_pb2_grpc.HealthStub(channel)
    return await stub.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)


ServerFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve(fleet: Fleet) -> AsyncIterator[ServerFactory]:
    """Start mTLS servers on 127.0.0.1:0 presenting the given certificate; yields a
    factory returning each server's address, and stops them all afterwards."""
    servers: list[grpc.aio.Server] = []

    async def start(pair: Pair, roots: bytes | None = None) -> str:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
        server.add_generic_rpc_handlers([_probe_handler()])
        creds = server_credentials(roots or fleet.ca[0], pair[0], pair[1])
        port = server.add_secure_port("127.0.0.1:0", creds)
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(None)


def _client(fleet: Fleet, pair: Pair, address: str, name: str | None) -> grpc.aio.Channel:
    return secure_channel(address, channel_credentials(fleet.ca[0], *pair), name)


async def _refusal(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _health(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    return info.value


# --- who gets in ---------------------------------------------------------------------------


async def test_fleet_member_passes_health_check_when_dialled_by_name(
    fleet: Fleet, serve: ServerFactory
) -> None:
    address = await serve(fleet.node(SERVER, []))
    async with _client(fleet, fleet.node("node-a", []), address, SERVER) as channel:
        response = await _health(channel)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_seed_is_checked_against_its_ip_when_its_name_is_unknown(
    fleet: Fleet, serve: ServerFactory
) -> None:
    with_ip = await serve(fleet.node(SERVER, ["127.0.0.1"]))
    async with _client(fleet, fleet.node("node-a", []), with_ip, None) as channel:
        assert (await _health(channel)).status == health_pb2.HealthCheckResponse.SERVING

    without_ip = await serve(fleet.node(SERVER, []))
    error = await _refusal(_client(fleet, fleet.node("node-a", []), without_ip, None))
    assert describe_rpc_error(error, peer_label(without_ip, None)) == (
        f"peer {without_ip} rejected: its certificate does not list IP 127.0.0.1 "
        "(issue it with --host 127.0.0.1)"
    )


# --- who is refused, and how the refusal reads ------------------------------------------


async def test_peer_presenting_another_nodes_certificate_is_rejected(
    fleet: Fleet, serve: ServerFactory
) -> None:
    address = await serve(fleet.node("node-c", []))
    error = await _refusal(_client(fleet, fleet.node("node-a", []), address, SERVER))
    assert describe_rpc_error(error, peer_label(address, SERVER)) == (
        f"peer {SERVER} ({address}) rejected: its certificate was not issued for 'node-b' "
        "(another node answers here)"
    )


@pytest.mark.parametrize("client", ["other CA", "no certificate", "expired"])
async def test_server_refuses_clients_without_a_valid_fleet_certificate(
    fleet: Fleet, serve: ServerFactory, client: str
) -> None:
    address = await serve(fleet.node(SERVER, []))
    month_ago = datetime.now(UTC) - timedelta(days=30)
    if client == "other CA":
        creds = channel_credentials(fleet.ca[0], *issue_node_cert(*fleet.other_ca, "node-a", []))
    elif client == "no certificate":
        creds = grpc.ssl_channel_credentials(root_certificates=fleet.ca[0])
    else:
        creds = channel_credentials(
            fleet.ca[0], *fleet.node("node-a", [], valid_days=1, now=month_ago)
        )
    error = await _refusal(secure_channel(address, creds, SERVER))
    message = describe_rpc_error(error, peer_label(address, SERVER))
    assert message == f"peer {SERVER} ({address}) {REFUSED}"


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("other CA", "not issued by the fleet CA"),
        ("expired", "expired"),
        ("admin", "not a server certificate: an admin's?"),
    ],
)
async def test_client_rejects_servers_without_a_valid_fleet_certificate(
    fleet: Fleet, serve: ServerFactory, server: str, reason: str
) -> None:
    if server == "other CA":
        pair = issue_node_cert(*fleet.other_ca, SERVER, [])
    elif server == "admin":  # clientAuth only: an admin certificate can never serve
        pair = issue_admin_cert(*fleet.ca, SERVER)
    else:
        month_ago = datetime.now(UTC) - timedelta(days=30)
        pair = fleet.node(SERVER, [], valid_days=1, now=month_ago)
    address = await serve(pair)
    error = await _refusal(_client(fleet, fleet.node("node-a", []), address, SERVER))
    assert describe_rpc_error(error, peer_label(address, SERVER)) == (
        f"peer {SERVER} ({address}) rejected: its certificate failed verification ({reason})"
    )


async def test_unreachable_peer_is_not_mistaken_for_a_tls_refusal(fleet: Fleet) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    error = await _refusal(_client(fleet, fleet.node("node-a", []), address, SERVER))
    message = describe_rpc_error(error, peer_label(address, SERVER))
    assert message.startswith(f"peer {SERVER} ({address}): UNAVAILABLE: ")
    assert "TLS" not in message


async def test_ca_bundle_lets_old_and_new_certificates_meet_during_rotation(
    fleet: Fleet, serve: ServerFactory
) -> None:
    bundle = fleet.ca[0] + fleet.other_ca[0]
    renewed = issue_node_cert(*fleet.other_ca, "node-a", [])  # client already on the new CA
    creds = channel_credentials(bundle, *renewed)
    rotating = await serve(fleet.node(SERVER, []), bundle)  # server on the old CA, both trusted
    async with secure_channel(rotating, creds, SERVER) as channel:
        assert await _call(channel, "WhoAmI") == b"node-a:agent"
    old_only = await serve(fleet.node(SERVER, []))  # a server that missed the bundle
    error = await _refusal(secure_channel(old_only, creds, SERVER))
    assert describe_rpc_error(error, SERVER) == f"peer {SERVER} {REFUSED}"


# --- what handlers learn about the caller ----------------------------------------------


async def test_handlers_see_the_callers_name_and_role(fleet: Fleet, serve: ServerFactory) -> None:
    address = await serve(fleet.node(SERVER, []))
    admin = issue_admin_cert(*fleet.ca, "alice")
    for pair, expected in [(fleet.node("node-a", []), b"node-a:agent"), (admin, b"alice:admin")]:
        async with _client(fleet, pair, address, SERVER) as channel:
            assert await _call(channel, "WhoAmI") == expected


async def test_require_admin_denies_agents_by_name_and_admits_admins(
    fleet: Fleet, serve: ServerFactory
) -> None:
    address = await serve(fleet.node(SERVER, []))
    async with _client(fleet, fleet.node("node-a", []), address, SERVER) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _call(channel, "AdminOnly")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details() == "node-a (agent certificate) may not call admin methods"

    admin = issue_admin_cert(*fleet.ca, "alice")
    async with _client(fleet, admin, address, SERVER) as channel:
        assert await _call(channel, "AdminOnly") == b"hello alice"


@pytest.mark.parametrize(
    ("caller", "sender", "allowed"),
    [("node-a", "node-a", True), ("node-a", "node-c", False), ("admin:node-a", "node-a", False)],
)
async def test_require_sender_lets_an_agent_speak_only_for_itself(
    fleet: Fleet, serve: ServerFactory, caller: str, sender: str, allowed: bool
) -> None:
    address = await serve(fleet.node(SERVER, []))
    role, _, name = caller.rpartition(":")
    pair = issue_admin_cert(*fleet.ca, name) if role else fleet.node(name, [])
    async with _client(fleet, pair, address, SERVER) as channel:
        if allowed:
            assert await _call(channel, "Send", sender.encode()) == f"accepted from {name}".encode()
            return
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _call(channel, "Send", sender.encode())
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"sender {sender!r} does not match" in (info.value.details() or "")


async def test_caller_without_tls_is_unauthenticated() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_probe_handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _call(channel, "AdminOnly")
    finally:
        await server.stop(None)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "presented no client certificate" in (info.value.details() or "")


# --- loading a node's TLS files ------------------------------------------------------------


def _write_files(folder: Path, ca: Pair, pair: Pair) -> TlsFiles:
    files = TlsFiles(ca=folder / "ca.pem", cert=folder / "node.pem", key=folder / "node.key")
    write_cert_file(files.ca, ca[0])
    write_cert_file(files.cert, pair[0])
    write_key_file(files.key, pair[1])
    return files


async def test_material_loaded_from_files_carries_real_mtls(
    fleet: Fleet, tmp_path: Path, serve: ServerFactory
) -> None:
    material = TlsMaterial.load(_write_files(tmp_path, fleet.ca, fleet.node("node-a", [])))
    assert material.identity.name == "node-a" and material.identity.role == "agent"
    assert "PRIVATE KEY" not in repr(material)
    address = await serve(fleet.node(SERVER, []))
    async with secure_channel(address, material.channel_credentials(), SERVER) as channel:
        assert await _call(channel, "WhoAmI") == b"node-a:agent"


def test_material_errors_name_the_config_key_and_never_the_key(
    fleet: Fleet, tmp_path: Path
) -> None:
    pair = fleet.node("node-a", [])
    files = _write_files(tmp_path, fleet.ca, pair)
    foreign = issue_node_cert(*fleet.other_ca, "node-a", [])
    later = datetime.now(UTC) + timedelta(days=400)
    cases: list[tuple[Path, bytes | None, str]] = [
        (files.cert, None, r"^tls\.cert: cannot read .*node\.pem: No such file"),
        (files.key, b"hello", r"^tls\.key: .*node\.key: not a PEM file$"),
        (files.ca, b"-----BEGIN CERTIFICATE-----\nxx\n", r"^tls\.ca: .*: not a PEM certificate"),
        (files.key, foreign[1], r"^tls\.key: .*: the key does not belong to the certificate$"),
        (files.cert, foreign[0], r"^tls\.cert: .*: not issued by the fleet CA"),
    ]
    for path, content, pattern in cases:
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content)
        with pytest.raises(ConfigError, match=pattern) as info:
            TlsMaterial.load(files)
        for secret in (pair[1], foreign[1]):
            assert secret.decode().splitlines()[1] not in str(info.value)
        _write_files(tmp_path, fleet.ca, pair)

    with pytest.raises(ConfigError, match=r"^tls\.cert: .*: expired on "):
        TlsMaterial.load(files, now=later)
