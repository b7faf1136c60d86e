"""Prometheus figures of a TwoTierCache, read from its own counters when
Prometheus scrapes: nothing is counted twice on the read path."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from services.cache.redis_tier import CONNECTED
from services.cache.two_tier import TwoTierCache


def cache_metrics(cache: TwoTierCache) -> Callable[[], Iterable[Metric]]:
    def collect() -> Iterable[Metric]:
        reads = CounterMetricFamily(
            "cache_reads",
            "Cache reads by tier (l1 in-process, l2 Redis), namespace and result.",
            labels=["tier", "namespace", "result"],
        )
        for (tier, namespace), counters in list(cache.stats.tiers.items()):
            reads.add_metric([tier, namespace, "hit"], counters.hits)
            reads.add_metric([tier, namespace, "miss"], counters.misses)
            reads.add_metric([tier, namespace, "error"], counters.errors)
        promotions = CounterMetricFamily("cache_promotions", "Values copied from Redis into the in-process tier.")
        promotions.add_metric([], cache.stats.promotions)
        entries = GaugeMetricFamily("cache_l1_entries", "Entries in the in-process tier.")
        entries.add_metric([], len(cache.l1))
        families = [reads, promotions, entries]
        if cache.l2 is not None:
            redis_up = GaugeMetricFamily("cache_redis_up", "1 while the Redis tier is connected, 0 while degraded.")
            redis_up.add_metric([], 1 if cache.l2.state == CONNECTED else 0)
            families.append(redis_up)
        return families

    return collect
