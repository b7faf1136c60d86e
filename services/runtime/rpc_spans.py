"""OpenTelemetry spans for gRPC calls: a SERVER span for every call a service
serves (started by the runtime's request interceptor, continuing the
caller's trace from the `traceparent` metadata) and a CLIENT span for every
call it makes (started by the interceptors on every peer channel, which put
the trace context into the call's metadata). Names and attributes follow the
RPC semantic conventions: `tilores_x.v1.RouterService/Chat`, `rpc.system`,
`rpc.service`, `rpc.method`, `rpc.grpc.status_code`.

Written here rather than taken from opentelemetry-instrumentation-grpc
because of the hot path: measured on one unary call on loopback, its aio
interceptors add about 0.23 ms on each side (a proxy object around every
servicer context, an async generator around every streamed message); these
add what a span costs and nothing per message (`python -m bench.rpc_spans`).

OTEL_PYTHON_GRPC_EXCLUDED_SERVICES names services without spans (default:
health checks and reflection); OTEL_SDK_DISABLED=true turns spans off.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from contextvars import Token
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.runtime.faults import SERVER_ERRORS
from services.runtime.telemetry import tracing_disabled

_DEFAULT_EXCLUDED = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
# Server spans mark these as errors; the others are the caller's mistake
# (semantic conventions for gRPC server spans).
_PROPAGATED = frozenset({"traceparent", "tracestate", "baggage"})
_TRACER = trace.get_tracer("tilores_x.rpc")


def excluded_services() -> frozenset[str]:
    raw = os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES")
    if raw is None:
        return frozenset(_DEFAULT_EXCLUDED)
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def _split(method: str | bytes) -> tuple[str, str]:
    if isinstance(method, bytes):  # grpc hands some interceptors bytes
        method = method.decode()
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _attributes(service: str, name: str) -> dict[str, str]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


class ServerSpans:
    """Starts and ends the SERVER span of each served call."""

    def __init__(self) -> None:
        self.enabled = not tracing_disabled()
        self.excluded = excluded_services()

    def start(self, method: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> trace.Span | None:
        if not self.enabled:
            return None
        service, name = _split(method)
        if service in self.excluded:
            return None
        carrier = {key: value for key, value in metadata or () if key in _PROPAGATED and isinstance(value, str)}
        parent = propagate.extract(carrier) if carrier else None
        return _TRACER.start_span(
            f"{service}/{name}", context=parent, kind=SpanKind.SERVER, attributes=_attributes(service, name)
        )

    @staticmethod
    def end(span: trace.Span, code: str) -> None:
        status = getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN)
        span.set_attribute("rpc.grpc.status_code", status.value[0])
        if code in SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()


def activate(span: trace.Span) -> Token[otel_context.Context]:
    """Make the span current for the handler; returns the token to detach."""
    return otel_context.attach(trace.set_span_in_context(span))


def deactivate(token: Token[otel_context.Context]) -> None:
    otel_context.detach(token)


class _ClientSpans:
    def __init__(self, excluded: frozenset[str]):
        self.excluded = excluded

    def begin(self, details: grpc.aio.ClientCallDetails) -> tuple[trace.Span, grpc.aio.ClientCallDetails] | None:
        service, name = _split(details.method)
        if service in self.excluded:
            return None
        span = _TRACER.start_span(f"{service}/{name}", kind=SpanKind.CLIENT, attributes=_attributes(service, name))
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()), *carrier.items())
        traced = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        return span, traced

    @staticmethod
    def end(span: trace.Span, code: grpc.StatusCode) -> None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()


class _UnaryUnarySpans(_ClientSpans, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        begun = self.begin(client_call_details)
        if begun is None:
            return await continuation(client_call_details, request)
        span, details = begun
        try:
            call = await continuation(details, request)
            await call  # the response stays on the call for the caller
        except grpc.aio.AioRpcError as error:
            self.end(span, error.code())
            raise
        except asyncio.CancelledError:
            self.end(span, grpc.StatusCode.CANCELLED)
            raise
        self.end(span, grpc.StatusCode.OK)
        return call


class _UnaryStreamSpans(_ClientSpans, grpc.aio.UnaryStreamClientInterceptor):
    """The span ends when the stream does, without a layer around each
    message: a done callback reads the final status."""

    def __init__(self, excluded: frozenset[str]):
        super().__init__(excluded)
        self._pending: set[asyncio.Task[None]] = set()  # held until done, so no task is collected early

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        begun = self.begin(client_call_details)
        if begun is None:
            return await continuation(client_call_details, request)
        span, details = begun
        call = await continuation(details, request)

        def done(finished: grpc.aio.Call) -> None:
            task = asyncio.ensure_future(self._finish(span, finished))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        call.add_done_callback(done)
        return call

    async def _finish(self, span: trace.Span, call: grpc.aio.Call) -> None:
        self.end(span, await call.code())


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """A CLIENT span per call and the trace context in its metadata."""
    if tracing_disabled():
        return []
    excluded = excluded_services()
    return [_UnaryUnarySpans(excluded), _UnaryStreamSpans(excluded)]
