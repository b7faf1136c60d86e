"""Tracing shared by every service: OpenTelemetry spans for each gRPC call
(server and client side, context carried in gRPC metadata; see rpc_spans),
each outgoing HTTP call made with aiohttp (the model providers, the Tilores
API) and the REST gateway's requests.

`configure_tracing()` runs first in every process, before servers, channels
and HTTP sessions exist. Spans always carry ids, so trace ids travel through
the mesh and into the logs; they are recorded and leave the process only
when the standard variables ask for it:

  OTEL_TRACES_EXPORTER   none (default), otlp (OTLP/gRPC, configured by
                         OTEL_EXPORTER_OTLP_* as usual) or console
  OTEL_SERVICE_NAME      the service name on every span (set per service)
  OTEL_TRACES_SAMPLER    the SDK's samplers (default parentbased_always_on
                         with an exporter, parentbased_always_off without)
  OTEL_PYTHON_GRPC_EXCLUDED_SERVICES  gRPC services without spans
                         (default grpc.health.v1.Health and reflection)
  OTEL_SDK_DISABLED      true: no spans, no interceptors, no trace ids
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

from services.runtime.settings import SettingsError


def tracing_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def configure_tracing(service: str) -> TracerProvider | None:
    """Install the process's tracer provider, and the aiohttp instrumentation
    when spans are recorded."""
    if tracing_disabled():
        return None
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower() or "none"
    exporters = [name for name in (part.strip() for part in exporter_name.split(",")) if name != "none"]
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service})
    sampler = None  # the SDK's own, from OTEL_TRACES_SAMPLER (default parentbased_always_on)
    if not exporters and not os.environ.get("OTEL_TRACES_SAMPLER"):
        # Nothing would leave the process: spans keep their ids, for the
        # context carried on and the logs, but record nothing.
        sampler = ParentBased(ALWAYS_OFF)
    provider = TracerProvider(resource=resource, sampler=sampler)
    for name in exporters:
        if name == "otlp":
            # Imported only when asked for: it pulls in the OTLP protobufs.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            raise SettingsError(f"OTEL_TRACES_EXPORTER: expected none, otlp or console, got {name!r}")
    trace.set_tracer_provider(provider)
    if sampler is None:
        # Spans of outgoing HTTP calls only where spans are recorded: the
        # instrumentation hooks into every request and connection of every
        # provider call.
        instrument_http_clients()
    return provider


def instrument_http_clients() -> None:
    """Spans for every aiohttp request; the query string is left out of the
    recorded URL because some APIs carry keys there."""
    instrumentor = AioHttpClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(url_filter=lambda url: str(url.with_query(None)))


def current_trace_id() -> str:
    """Hex trace id of the active span, or "" outside any trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
