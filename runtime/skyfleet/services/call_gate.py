"""What every call passes before any servicer: the caller's certificate is not revoked,
and the request is protobuf at all; and where every refusal of a caller is counted.

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

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from skyfleet.observability.refusals import Refusals
from skyfleet.security.certs import CertificateError
from skyfleet.security.revocation import REVOKED_PHRASE, Revocations
from skyfleet.transport.tls import ROLE_PHRASE, SENDER_PHRASE, identity_from_context


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


_Context = grpc.aio.ServicerContext[Any, Any]
_Unary = Callable[[Any, _Context], Awaitable[Any]]
_UnaryStream = Callable[[Any, _Context], AsyncIterator[Any]]
_StreamUnary = Callable[[AsyncIterator[Any], _Context], Awaitable[Any]]
_StreamStream = Callable[[AsyncIterator[Any], _Context], AsyncIterator[Any]]
"""What a grpc.aio servicer method is, by kind."""

_REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


def refusal_reason(code: grpc.StatusCode, details: str) -> str:
    """The reason a refusal is counted under, from the messages the checks write."""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return "no identity"
    if REVOKED_PHRASE in details:
        return "revoked"
    if ROLE_PHRASE in details:
        return "wrong role"
    if SENDER_PHRASE in details:
        return "wrong sender"
    return "denied"


class CallGate(grpc.aio.ServerInterceptor):
    """`refusals` hears of every call refused for who its caller is, whether here or
    by a servicer's own check (`require_role`, `require_sender`)."""

    def __init__(self, revocations: Revocations, refusals: Refusals) -> None:
        self._revocations = revocations
        self._refusals = refusals

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

    def _refused(self, context: grpc.aio.ServicerContext, method: str) -> None:
        code = context.code()
        if code not in _REFUSED:
            return
        details = context.details() or ""
        try:
            identity = identity_from_context(context).name
        except CertificateError:
            identity = ""
        self._refusals.record(
            refusal_reason(code, details),
            identity=identity,
            peer=context.peer(),
            detail=f"{method}: {details}",
        )

    @contextlib.asynccontextmanager
    async def _guarded(
        self, context: grpc.aio.ServicerContext, method: str
    ) -> AsyncIterator[None]:
        """Admit the caller, run the method, and count the call if it ends refused."""
        try:
            await self._admit(context)
            yield
        except grpc.aio.AbortError:
            self._refused(context, method)
            raise

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        guarded = self._guarded
        decode = _safe(handler.request_deserializer)
        serialize = handler.response_serializer
        # grpc-stubs type a handler's behaviours as the sync server's; under grpc.aio
        # they are coroutine functions and async generators, hence the casts.
        if handler.unary_unary is not None:
            inner_uu = cast(_Unary, handler.unary_unary)

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarded(context, method):
                    if isinstance(request, _Undecodable):
                        await _refuse(context, method, request)
                    return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, decode, serialize)
        if handler.unary_stream is not None:
            inner_us = cast(_UnaryStream, handler.unary_stream)

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarded(context, method):
                    if isinstance(request, _Undecodable):
                        await _refuse(context, method, request)
                    async for reply in inner_us(request, context):
                        yield reply

            return grpc.unary_stream_rpc_method_handler(unary_stream, decode, serialize)
        if handler.stream_unary is not None:
            inner_su = cast(_StreamUnary, handler.stream_unary)

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarded(context, method):
                    return await inner_su(_checked(requests, context, method), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, decode, serialize)
        inner_ss = cast(_StreamStream, handler.stream_stream)

        async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            async with guarded(context, method):
                async for reply in inner_ss(_checked(requests, context, method), context):
                    yield reply

        return grpc.stream_stream_rpc_method_handler(stream_stream, decode, serialize)
