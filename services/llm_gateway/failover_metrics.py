"""Scrape-time figures of a failover chain for Prometheus: each provider's
circuit breaker state, its calls by outcome, retries and fallbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from services.llm_gateway.failover import CLOSED, HALF_OPEN, OPEN, FailoverChain

BREAKER_STATES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


def failover_metrics(chain: FailoverChain) -> Callable[[], Iterable[Metric]]:
    """Scrape-time figures of a FailoverChain: breaker states, outcomes,
    retries and fallbacks per provider."""

    def collect() -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "llm_circuit_breaker_state",
            "Circuit breaker of each provider: 0 closed, 1 half open, 2 open.",
            labels=["provider"],
        )
        calls = CounterMetricFamily("llm_provider_calls", "Provider calls by outcome.", labels=["provider", "outcome"])
        retries = CounterMetricFamily(
            "llm_retries", "Retries of a provider call before its first chunk.", labels=["provider"]
        )
        fallbacks = CounterMetricFamily(
            "llm_fallbacks", "Times a provider was given up for the next model in the chain.", labels=["provider"]
        )
        for provider, breaker in list(chain.breakers.items()):
            counters = chain.counters[provider]
            state.add_metric([provider], BREAKER_STATES.get(breaker.state, 0))
            calls.add_metric([provider, "success"], counters.successes)
            calls.add_metric([provider, "failed_before_first_token"], counters.failures_before_first_token)
            calls.add_metric([provider, "failed_mid_stream"], counters.failures_mid_stream)
            retries.add_metric([provider], counters.retries)
            fallbacks.add_metric([provider], counters.fallbacks)
        return [state, calls, retries, fallbacks]

    return collect
