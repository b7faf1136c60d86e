"""The rolling answer quality as Prometheus reads it: each group's mean
and turns as of the monitor's last check, the levels they are judged
against, and the alerts raised. Read from the monitor's last check, so a
scrape never queries the store. Keys are bounded: catalog models, prompt
versions, categories and modes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from services.optimizer.monitoring import QualityMonitor


def quality_metrics(monitor: QualityMonitor) -> Callable[[], Iterable[Metric]]:
    def collect() -> Iterable[Metric]:
        score = GaugeMetricFamily(
            "optimizer_quality_score",
            "Mean answer quality (0 to 1) over each group's latest scored turns, as of the last check.",
            labels=["group", "key"],
        )
        turns = GaugeMetricFamily(
            "optimizer_quality_turns",
            "Scored turns behind each group's mean (at most the window).",
            labels=["group", "key"],
        )
        for q in monitor.latest:
            score.add_metric([q.group, q.key], q.mean)
            turns.add_metric([q.group, q.key], q.turns)
        levels = GaugeMetricFamily(
            "optimizer_quality_threshold", "The quality levels groups are judged against.", labels=["level"]
        )
        for level in ("critical", "warning", "target", "excellent"):
            levels.add_metric([level], getattr(monitor.thresholds, level))
        alerts = CounterMetricFamily(
            "optimizer_quality_alerts", "Quality alerts raised by this process, by severity.", labels=["severity"]
        )
        for severity, count in sorted(monitor.raised.items()):
            alerts.add_metric([severity], count)
        return [score, turns, levels, alerts]

    return collect
