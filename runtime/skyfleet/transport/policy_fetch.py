"""The policy pull as a seam: `PolicyFetch` asks one peer for the signed envelope in
force. Its gRPC side calls the peer's `Policy.Fetch`; its in-memory side reads the peers'
envelopes in this process (tests, embedding). The keeper (`transport.policy_loop`) needs
nothing else of the network."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import grpc

from skyfleet._generated.skyfleet.v1 import policy_pb2, policy_pb2_grpc
from skyfleet.transport.peers import PeerChannels
from skyfleet.transport.tls import peer_label


class PolicyFetch(Protocol):
    async def __call__(self, node: str, address: str, version: int, timeout: float) -> bytes | None:
        """The envelope `node` serves (b"" if it has none), or None if it could not be
        asked: unreachable, refused, or no answer within `timeout` seconds."""
        ...


class GrpcPolicyFetch:
    def __init__(self, channels: PeerChannels) -> None:
        self._channels = channels

    async def __call__(self, node: str, address: str, version: int, timeout: float) -> bytes | None:
        stub = policy_pb2_grpc.PolicyStub(self._channels.get(address, node))
        try:
            reply = await stub.Fetch(policy_pb2.FetchPolicyRequest(version=version),
                                     timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            self._channels.log_failure(exc, peer_label(address, node), "policy fetch")
            return None
        return reply.envelope


class LocalPolicyFetch:
    """Peers' envelopes by name, read when asked; a name not in the table is
    unreachable, as a dead host is."""

    def __init__(self, envelopes: Mapping[str, Callable[[], bytes]]) -> None:
        self._envelopes = dict(envelopes)

    async def __call__(self, node: str, address: str, version: int, timeout: float) -> bytes | None:
        envelope = self._envelopes.get(node)
        return None if envelope is None else envelope()
