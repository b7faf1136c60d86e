"""GenerationTelemetry: one span and the GenAI metrics per provider call.

Names and attributes follow the OpenTelemetry GenAI semantic conventions
(semantic-conventions-genai as of semconv v1.42.0, status Development):
span `chat {model}` of kind CLIENT with gen_ai.operation.name,
gen_ai.provider.name, gen_ai.request.model, gen_ai.response.finish_reasons
and gen_ai.usage.*; histograms gen_ai.client.token.usage,
gen_ai.client.operation.duration, time_to_first_chunk and
time_per_output_chunk with the recommended buckets, exposed to Prometheus
with dots as underscores. No span per token: one per call.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from prometheus_client import Histogram

from services.llm_gateway.catalog import ModelEntry
from services.llm_gateway.providers.events import GenerationRequest
from services.runtime.conversation import Finish, Usage

# Our provider names -> gen_ai.provider.name values.
PROVIDER_NAMES = {
    "openai": "openai",
    "openai_compatible": "openai",
    "anthropic": "anthropic",
    "groq": "groq",
    "gemini": "gcp.gemini",
    "offline": "offline",
}
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_BASE = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]

TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Input and output tokens of each provider call (gen_ai.client.token.usage).",
    [*_BASE, "gen_ai_token_type"],
    buckets=TOKEN_BUCKETS,
)
OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "Duration of each provider call to its last chunk (gen_ai.client.operation.duration).",
    [*_BASE, "error_type"],
    buckets=DURATION_BUCKETS,
)
TIME_TO_FIRST_CHUNK = Histogram(
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "Time from a provider call's start to its first chunk (gen_ai.client.operation.time_to_first_chunk).",
    _BASE,
    buckets=DURATION_BUCKETS,
)
TIME_PER_OUTPUT_CHUNK = Histogram(
    "gen_ai_client_operation_time_per_output_chunk_seconds",
    "Mean time between chunks after the first (gen_ai.client.operation.time_per_output_chunk).",
    _BASE,
    buckets=DURATION_BUCKETS,
)


class GenerationObservation:
    """One provider call: a span, made current while the call starts (so
    the HTTP client's span is its child), closed with usage and finish."""

    __slots__ = ("_chunks", "_ended", "_finish", "_first", "_labels", "_last", "_span", "_started", "_usage")

    def __init__(self, tracer: trace.Tracer, target: ModelEntry, request: GenerationRequest):
        provider = PROVIDER_NAMES.get(target.provider, target.provider)
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": target.upstream,
            "gen_ai.request.stream": True,
        }
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        # An in-process model is INTERNAL; a remote provider is a CLIENT call.
        kind = SpanKind.INTERNAL if target.provider == "offline" else SpanKind.CLIENT
        self._span = tracer.start_span(f"chat {target.upstream}", kind=kind, attributes=attributes)
        self._labels = ("chat", provider, target.upstream)
        self._started = time.perf_counter()
        self._first = 0.0
        self._last = 0.0
        self._chunks = 0
        self._usage: Usage | None = None
        self._finish = ""
        self._ended = False

    def active(self) -> AbstractContextManager[trace.Span]:
        return trace.use_span(self._span, end_on_exit=False)

    def event(self, event: object) -> None:
        now = time.perf_counter()
        if not self._first:
            self._first = now
        if type(event) is str:
            self._chunks += 1
            self._last = now
        elif isinstance(event, Usage):
            self._usage = event
        elif isinstance(event, Finish):
            self._finish = event.reason

    def end(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        now = time.perf_counter()
        span = self._span
        error_type = ""
        if error is not None:
            error_type = getattr(error, "code", "") or type(error).__name__
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, getattr(error, "message", "") or error_type))
        if self._finish:
            span.set_attribute("gen_ai.response.finish_reasons", [self._finish])
        if self._usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", self._usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", self._usage.completion_tokens)
            TOKEN_USAGE.labels(*self._labels, "input").observe(self._usage.prompt_tokens)
            TOKEN_USAGE.labels(*self._labels, "output").observe(self._usage.completion_tokens)
        if self._first:
            span.set_attribute("gen_ai.response.time_to_first_chunk", self._first - self._started)
            if error is None:
                TIME_TO_FIRST_CHUNK.labels(*self._labels).observe(self._first - self._started)
        if error is None and self._chunks > 1:
            TIME_PER_OUTPUT_CHUNK.labels(*self._labels).observe((self._last - self._first) / (self._chunks - 1))
        OPERATION_DURATION.labels(*self._labels, error_type).observe(now - self._started)
        span.end()


class GenerationTelemetry:
    def __init__(self, tracer_provider: trace.TracerProvider | None = None):
        self._tracer = trace.get_tracer("tilores_x.llm_gateway", tracer_provider=tracer_provider)

    def observe(self, target: ModelEntry, request: GenerationRequest) -> GenerationObservation:
        return GenerationObservation(self._tracer, target, request)
