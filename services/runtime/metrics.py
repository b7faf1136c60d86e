"""Prometheus metrics of one process (one process per pod, so the default
registry is the whole story): the gRPC server's own figures, recorded by
the request interceptor, and figures that components already keep (cache
tiers, circuit breakers), read when Prometheus scrapes instead of being
counted twice on the hot path.

Labels are bounded: service and method names, status codes, tiers, cache
namespaces, providers and catalog models; never ids, e-mails or text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Seconds; fine below 10 ms where most mesh calls land, up to a long answer.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

RPC_STARTED = Counter(
    "grpc_server_started", "RPCs started on the server.", ["grpc_service", "grpc_method", "grpc_type"]
)
RPC_HANDLED = Counter(
    "grpc_server_handled",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its end (a whole stream for streaming RPCs).",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=LATENCY_BUCKETS,
)
STREAMS_IN_FLIGHT = Gauge(
    "grpc_server_streams_in_flight",
    "Server-streaming RPCs running now (the autoscaler's signal for streaming services).",
    ["grpc_service", "grpc_method"],
)


class SnapshotCollector(Collector):
    """Metric families made at scrape time by registered sources."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Iterable[Metric]]] = []

    def add(self, source: Callable[[], Iterable[Metric]]) -> None:
        self._sources.append(source)

    def remove(self, source: Callable[[], Iterable[Metric]]) -> None:
        if source in self._sources:
            self._sources.remove(source)

    def describe(self) -> Iterable[Metric]:
        return []  # names vary with the sources; skip the registry's duplicate check

    def collect(self) -> Iterable[Metric]:
        for source in list(self._sources):
            yield from source()


SNAPSHOTS = SnapshotCollector()
REGISTRY.register(SNAPSHOTS)


def serve_metrics(addr: str) -> int:
    """`GET /metrics` on host:port (port 0: a free one) in a daemon thread;
    the bound port."""
    host, _, port = addr.rpartition(":")
    server, _ = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0")
    return server.server_port
