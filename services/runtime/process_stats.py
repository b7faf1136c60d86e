"""ProcessStats: one replica's own figures (RPCs completed, those that
failed by the server's fault, their time, streams now, uptime, memory),
read from the figures the request interceptor already keeps for
Prometheus, so reporting them costs the hot path nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.runtime.faults import SERVER_ERRORS
from services.runtime.metrics import RPC_HANDLED, RPC_SECONDS, STREAMS_IN_FLIGHT

HEALTH = "grpc.health.v1.Health"
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessStats:
    service: str
    rpcs: int
    server_errors: int
    rpc_seconds: float
    streams_in_flight: int
    uptime_s: float
    rss_bytes: int


class ProcessFigures:
    def __init__(self, service: str, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self._clock = clock
        self._started = clock()

    def read(self) -> ProcessStats:
        rpcs = errors = 0
        for metric in RPC_HANDLED.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["grpc_service"] != HEALTH:
                    rpcs += int(sample.value)
                    errors += int(sample.value) if sample.labels["grpc_code"] in SERVER_ERRORS else 0
        seconds = sum(
            sample.value
            for metric in RPC_SECONDS.collect()
            for sample in metric.samples
            if sample.name.endswith("_sum") and sample.labels["grpc_service"] != HEALTH
        )
        streams = sum(int(sample.value) for metric in STREAMS_IN_FLIGHT.collect() for sample in metric.samples)
        return ProcessStats(self.service, rpcs, errors, seconds, streams, self._clock() - self._started, _rss())


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0
