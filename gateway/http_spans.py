"""HttpSpans: one OpenTelemetry SERVER span per REST request — the root of
a chat's trace, or a child of the caller's `traceparent` — named by its
route template (`POST /v1/chat/completions`; never the path, which may
carry an e-mail), none per SSE event, none for probes and scrapes.

Written here rather than taken from opentelemetry-instrumentation-asgi for
the hot path: that middleware wraps every `send` of a response (each SSE
chunk) in its own layer even with its per-message spans turned off; this
starts one span, makes it current for the request, and ends it with the
status the gateway already knows."""

from __future__ import annotations

from contextvars import Token
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.runtime.rpc_spans import activate, deactivate
from services.runtime.telemetry import tracing_disabled

EXCLUDED_PATHS = frozenset({"/health", "/health/ready", "/health/live", "/health/detailed", "/metrics"})
_PROPAGATED = (b"traceparent", b"tracestate", b"baggage")
_TRACER = trace.get_tracer("tilores_x.http")


class HttpSpans:
    def __init__(self) -> None:
        self.enabled = not tracing_disabled()

    def start(self, scope: dict[str, Any]) -> tuple[trace.Span, Token[Context]] | None:
        """The request's span, current until `end`; None for an excluded path."""
        if not self.enabled or scope["path"] in EXCLUDED_PATHS:
            return None
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _PROPAGATED}
        method = scope["method"]
        span = _TRACER.start_span(
            method,
            context=propagate.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "http")},
        )
        return span, activate(span)

    @staticmethod
    def end(begun: tuple[trace.Span, Token[Context]], method: str, route: str, status: int) -> None:
        span, token = begun
        if span.is_recording():
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        deactivate(token)
        span.end()
