"""Server interceptor shared by every service: it refuses a call without a
verified caller where the server demands one (health checks excepted),
puts the caller and its request id into ContextVars for the whole call, opens the call's trace span,
turns domain faults into gRPC statuses with details, and writes one
access-log line per call (carrying the span's trace id)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from services.runtime.access import Grants, MalformedPrincipal, principal_of, required_scope
from services.runtime.faults import Fault
from services.runtime.identity import CALLER, Caller, caller_of
from services.runtime.metrics import RPC_HANDLED, RPC_SECONDS, RPC_STARTED, STREAMS_IN_FLIGHT
from services.runtime.principal import PRINCIPAL, PURPOSE, purpose_of
from services.runtime.request_context import REQUEST_ID, REQUEST_ID_HEADER, Metadata, new_request_id
from services.runtime.rich_status import fault_status
from services.runtime.rpc_spans import ServerSpans, activate, deactivate

log = logging.getLogger("rpc")

# Probes and tooling would drown the access log.
_REFLECTION = "/grpc.reflection."
_QUIET_PREFIXES = ("/grpc.health.v1.", _REFLECTION)


def _request_id(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_HEADER and value:
            return value if isinstance(value, str) else value.decode()
    return new_request_id()


class RequestInterceptor(grpc.aio.ServerInterceptor):
    """With `grants`, every call needs a verified caller holding the scope
    its RPC names (health checks excepted); without, a mesh with no
    identities (MESH_PLAINTEXT, in-process tests)."""

    def __init__(self, grants: Grants | None = None) -> None:
        self.spans = ServerSpans()
        self.grants = grants
        self.require_identity = grants is not None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return handler
        if method.startswith(_REFLECTION) and self.require_identity and handler.stream_stream is not None:
            return _identified_bidi(handler)  # the schema is for members of the mesh
        if method.startswith(_QUIET_PREFIXES):
            return _refuse_malformed(handler)
        request_id = _request_id(handler_call_details)
        call = _Call(method, request_id, handler_call_details.invocation_metadata, self.spans, self.grants)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, call),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, call),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler


# A request whose bytes do not parse: grpc would answer UNKNOWN with the
# parser's exception in the details; the handlers answer INVALID_ARGUMENT.
MALFORMED = object()
MALFORMED_DETAILS = "the request is not a valid protobuf message for this method"
NO_IDENTITY = (
    "a verified caller is required: connect with a client certificate of the mesh CA "
    "(through Envoy's gRPC listener, or mutual TLS to the service)"
)


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:
            return MALFORMED

    return deserialize


def _refuse_malformed(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """Health and reflection: no log line or span, but bad bytes still get
    INVALID_ARGUMENT."""
    if handler.unary_unary is not None:
        behavior = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_DETAILS)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=_lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        streaming = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if request is MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_DETAILS)
            async for message in streaming(request, context):
                yield message

        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=_lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    return handler


def _identified_bidi(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    behavior = handler.stream_stream

    async def bidi(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if caller_of(context) is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, NO_IDENTITY)
        async for message in behavior(requests, context):
            yield message

    return grpc.stream_stream_rpc_method_handler(
        bidi, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def _labels(method: str, kind: str) -> tuple[str, str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name, kind


def _finished(method: str, kind: str, code: str, started: float) -> None:
    """One access-log line and the RPC metrics."""
    elapsed = time.perf_counter() - started
    labels = _labels(method, kind)
    RPC_HANDLED.labels(*labels, code).inc()
    RPC_SECONDS.labels(*labels).observe(elapsed)
    caller = CALLER.get()
    fields = {"method": method, "code": code, "duration_ms": round(elapsed * 1000, 3)}
    if caller is not None:
        fields["caller"] = caller.name
    log.info("rpc", extra={"fields": fields})


class _Call:
    """What the wrappers need of one served call."""

    __slots__ = ("grants", "metadata", "method", "request_id", "spans", "task")

    def __init__(self, method: str, request_id: str, metadata: Metadata, spans: ServerSpans, grants: Grants | None):
        self.method = method
        self.request_id = request_id
        self.metadata = metadata
        self.spans = spans
        self.grants = grants
        self.task: asyncio.Task[Any] | None = None

    async def admit(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        """Refuse a call before its handler runs: bad bytes, no verified
        caller, or a caller without the RPC's scope; else make the caller
        and on whose behalf it calls current."""
        if request is MALFORMED:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_DETAILS)
        PURPOSE.set(purpose_of(self.metadata))
        if self.grants is None:
            await self._act_for(None, context)
            return
        caller = caller_of(context)
        if caller is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, NO_IDENTITY)
            return  # abort raises; this is for the type checker
        scope = required_scope(self.method)
        if not self.grants.allows(caller, scope):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{caller.name} does not hold the scope {scope or 'none'!r} that {self.method.lstrip('/')} needs",
            )
        CALLER.set(caller)
        await self._act_for(caller, context)

    async def _act_for(self, caller: Caller | None, context: grpc.aio.ServicerContext) -> None:
        try:
            PRINCIPAL.set(principal_of(caller, self.metadata, self.grants))
        except MalformedPrincipal as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def begin(self) -> tuple[Any, Any]:
        """Request id and span current for the handler; the span and token."""
        REQUEST_ID.set(self.request_id)
        span = self.spans.start(self.method, self.metadata)
        self.task = asyncio.current_task()
        return span, (activate(span) if span is not None else None)

    def end(self, kind: str, code: str, started: float, span: Any, token: Any) -> None:
        _finished(self.method, kind, code, started)  # logged while the span is current
        if span is not None:
            ServerSpans.end(span, code)
            # A stream the caller gave up on is closed from another task,
            # whose context never had the span: nothing to take back there.
            if asyncio.current_task() is self.task:
                deactivate(token)


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], call: _Call) -> Callable[..., Awaitable[Any]]:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        span, token = call.begin()
        started = time.perf_counter()
        RPC_STARTED.labels(*_labels(call.method, "unary")).inc()
        code = "OK"
        try:
            await call.admit(request, context)
            return await behavior(request, context)
        except Fault as fault:
            code = fault.code
            status = fault_status(fault)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except Exception as error:
            code = _code_of(error, context)
            raise
        finally:
            call.end("unary", code, started, span, token)

    return unary


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]], call: _Call) -> Callable[..., AsyncIterator[Any]]:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        span, token = call.begin()
        started = time.perf_counter()
        RPC_STARTED.labels(*_labels(call.method, "server_stream")).inc()
        in_flight = STREAMS_IN_FLIGHT.labels(*_labels(call.method, "")[:2])
        in_flight.inc()
        code = "OK"
        try:
            await call.admit(request, context)
            async for message in behavior(request, context):
                yield message
        except Fault as fault:
            code = fault.code
            status = fault_status(fault)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except BaseException as error:
            code = _code_of(error, context)
            raise
        finally:
            in_flight.dec()
            call.end("server_stream", code, started, span, token)

    return stream


def _code_of(error: BaseException, context: grpc.aio.ServicerContext) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "INTERNAL" if not isinstance(error, grpc.aio.AbortError) else "ABORTED"
