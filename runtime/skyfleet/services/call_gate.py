"""What every call passes before any servicer: the caller's certificate is not revoked,
and the request is protobuf at all.

Revocation (`security/revocation.py`) is checked here, once for every method, rather than
in each servicer: Submit and ListMembers, open to any fleet identity, call no role check
of their own. grpc's interceptors see no peer certificate, so the check runs inside the
wrapped method, where the context has it; it costs nothing while nothing is revoked.

Undecodable requests get INVALID_ARGUMENT, like any other malformed request, instead of
grpc's UNKNOWN: grpc decodes a request before the servicer runs and reports a decode
failure as UNKNOWN ("Unexpected DecodeError"), which tells a client nothing about whose
fault it was. Every method's deserializer is wrapped so a decode failure becomes a
marker, and the method's behaviour answers the marker with INVALID_ARGUMENT naming the
method.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from skyfleet.security.certs import CertificateError
from skyfleet.security.revocation import Revocations
from skyfleet.transport.tls import identity_from_context


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception as exc:  # whatever the message class raises on garbage
            return _Undecodable(exc)

    return decode


async def _refuse(context: grpc.aio.ServicerContext, method: str, bad: _Undecodable) -> None:
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{method}: request is not a valid protobuf message ({type(bad.error).__name__})",
    )


async def _checked(
    requests: AsyncIterator[Any], context: grpc.aio.ServicerContext, method: str
) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            await _refuse(context, method, request)
        yield request


class CallGate(grpc.aio.ServerInterceptor):
    def __init__(self, revocations: Revocations) -> None:
        self._revocations = revocations

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        if not self._revocations.serials:
            return
        try:
            identity = identity_from_context(context)
        except CertificateError:
            return  # no readable identity: the servicer answers UNAUTHENTICATED
        refusal = self._revocations.refusal(identity)
        if refusal is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        admit = self._admit
        decode = _safe(handler.request_deserializer)
        serialize = handler.response_serializer
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await admit(context)
                if isinstance(request, _Undecodable):
                    await _refuse(context, method, request)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, decode, serialize)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await admit(context)
                if isinstance(request, _Undecodable):
                    await _refuse(context, method, request)
                async for reply in inner_us(request, context):
                    yield reply

            return grpc.unary_stream_rpc_method_handler(unary_stream, decode, serialize)
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                await admit(context)
                return await inner_su(_checked(requests, context, method), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, decode, serialize)
        inner_ss = handler.stream_stream

        async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await admit(context)
            async for reply in inner_ss(_checked(requests, context, method), context):
                yield reply

        return grpc.stream_stream_rpc_method_handler(stream_stream, decode, serialize)
