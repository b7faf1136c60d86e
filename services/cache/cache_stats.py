"""CacheStats: hits, misses, errors and read latency per tier and namespace."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

RECENT_READS = 2048


@dataclass
class TierCounters:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_READS))

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        if q == 0.5:
            return float(statistics.median(self.latencies_ms))
        ordered = sorted(self.latencies_ms)
        return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


class CacheStats:
    def __init__(self) -> None:
        self.tiers: dict[tuple[str, str], TierCounters] = {}
        self.promotions = 0

    def _counters(self, tier: str, namespace: str) -> TierCounters:
        counters = self.tiers.get((tier, namespace))
        if counters is None:
            counters = self.tiers[(tier, namespace)] = TierCounters()
        return counters

    def read(self, tier: str, namespace: str, hit: bool, latency_ms: float, error: bool = False) -> None:
        counters = self._counters(tier, namespace)
        if hit:
            counters.hits += 1
        else:
            counters.misses += 1
        counters.errors += error
        counters.latencies_ms.append(latency_ms)
