"""The REST gateway's Prometheus metrics, served on its own `GET /metrics`.

GenAI server figures follow the OpenTelemetry GenAI conventions
(gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token,
with their recommended buckets); `mesh_added_latency_seconds` is the time
the mesh itself added before the first token (everything but the model
provider's own time to its first chunk). Labels are bounded: routes,
status codes and catalog models of answered requests.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from services.runtime.metrics import LATENCY_BUCKETS

# Which gateway process a reading came from: behind Envoy, polls alternate between replicas.
REPLICA = f"{socket.gethostname()}:{os.getpid()}"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
ADDED_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0)

HTTP_REQUESTS = Counter("http_requests", "HTTP requests by route, method and status.", ["route", "method", "status"])
HTTP_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to its last byte (a whole stream for SSE).",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
STREAMS_IN_FLIGHT = Gauge("http_streams_in_flight", "Chat answers being streamed now (the autoscaler's signal).")
TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Time from a chat request's arrival to its first answer event (gen_ai.server.time_to_first_token).",
    ["gen_ai_request_model"],
    buckets=TTFT_BUCKETS,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "gen_ai_server_time_per_output_token_seconds",
    "Time per output token after the first (gen_ai.server.time_per_output_token).",
    ["gen_ai_request_model"],
    buckets=TPOT_BUCKETS,
)
MESH_ADDED = Histogram(
    "mesh_added_latency_seconds",
    "Time the mesh added before the first token: time to first token minus the provider's own.",
    ["gen_ai_request_model"],
    buckets=ADDED_BUCKETS,
)


def method_of(method: str) -> str:
    """The method label: a standard method, else `other`."""
    return method if method in METHODS else "other"


def observe_answer(model: str, ttft_s: float, added_ms: float, first_at: float, usage: Any) -> None:
    """The GenAI server figures of one answered chat request."""
    TIME_TO_FIRST_TOKEN.labels(model).observe(ttft_s)
    MESH_ADDED.labels(model).observe(added_ms / 1000)
    if usage is not None and usage.completion_tokens > 1:
        TIME_PER_OUTPUT_TOKEN.labels(model).observe((time.perf_counter() - first_at) / (usage.completion_tokens - 1))


def snapshot() -> dict[str, float | str]:
    """This process's HTTP totals so far, for the console to turn into rates."""
    requests = errors = 0.0
    for metric in HTTP_REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                requests += sample.value
                errors += sample.value if sample.labels["status"].startswith("5") else 0.0
    seconds_sum = seconds_count = 0.0
    for metric in HTTP_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                seconds_sum += sample.value
            elif sample.name.endswith("_count"):
                seconds_count += sample.value
    streams = next(s.value for m in STREAMS_IN_FLIGHT.collect() for s in m.samples)
    return {
        "replica": REPLICA,
        "requests": requests,
        "server_errors": errors,
        "seconds_sum": seconds_sum,
        "seconds_count": seconds_count,
        "streams_in_flight": streams,
    }


def exposition() -> tuple[bytes, bytes]:
    """Body and content type of `GET /metrics`."""
    return generate_latest(), CONTENT_TYPE_LATEST.encode()
