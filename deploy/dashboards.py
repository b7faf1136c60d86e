"""Grafana dashboards of the mesh, built with Grafana's own Foundation SDK:
`python -m deploy.dashboards --out deploy/monitoring/dashboards` (part of
`make k8s`). Every query reads metrics the services export (a test
scrapes a running mesh and checks each name), through a data source
chosen on import, so the files load into any Grafana with Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, Threshold, ThresholdsMode

from services.runtime.faults import SERVER_ERRORS

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The codes a server answers when it, not its caller, failed (as a PromQL alternation).
SERVER_CODES = "|".join(sorted(SERVER_ERRORS))
WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref).datasource(DATASOURCE)


def _timeseries(title: str, unit: str, queries: list[Query], description: str) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).description(description).datasource(DATASOURCE)
    for n, query in enumerate(queries):
        panel = panel.with_target(_target(query, chr(ord("A") + n)))
    return panel


class DashboardLayout:
    """Panels two to a row, in the order they are added."""

    def __init__(self, title: str, uid: str, description: str):
        self.builder = (
            board.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["tilores-x"])
            .refresh("30s")
            .time("now-3h", "now")
            .with_variable(board.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        )
        self._y = 0
        self._x = 0
        self._ids = 0

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def row(self, title: str) -> DashboardLayout:
        self._newline()
        self.builder = self.builder.with_row(
            board.Row(title).id(self._id()).grid_pos(GridPos(h=1, w=WIDTH, x=0, y=self._y))
        )
        self._y += 1
        return self

    def add(self, panel, width: int = 12, height: int = 8) -> DashboardLayout:
        if self._x + width > WIDTH:
            self._newline(height)
        self.builder = self.builder.with_panel(
            panel.id(self._id()).grid_pos(GridPos(h=height, w=width, x=self._x, y=self._y))
        )
        self._x += width
        if self._x >= WIDTH:
            self._newline(height)
        return self

    def _newline(self, height: int = 8) -> None:
        if self._x:
            self._y += height
            self._x = 0

    def json(self) -> str:
        return JSONEncoder(sort_keys=True, indent=2).encode(self.builder.build()) + "\n"


def _quantile(q: float, metric: str, by: str, where: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{where}[5m])))"


def _p50_p99(metric: str, by: str, where: str = "") -> list[Query]:
    """A histogram's median and 99th percentile, one series per `by` label."""
    return [Query(_quantile(q, metric, by, where), f"p{round(q * 100)} {{{{{by}}}}}") for q in (0.5, 0.99)]


def services_dashboard() -> DashboardLayout:
    layout = DashboardLayout(
        "Tilores X / Services",
        "tilores-x-services",
        "Rate, errors and duration of every gRPC service and of the REST gateway; streams in flight.",
    )
    layout.builder = layout.builder.with_variable(
        board.QueryVariable("service")
        .label("gRPC service")
        .datasource(DATASOURCE)
        .query("label_values(grpc_server_started_total, grpc_service)")
        .multi(True)
        .include_all(True)
        .refresh(2)
    )
    _grpc_services_row(layout)
    _rest_gateway_row(layout)
    return layout


def models_dashboard() -> DashboardLayout:
    layout = DashboardLayout(
        "Tilores X / Models",
        "tilores-x-models",
        "GenAI time to first token and per output token by model, provider calls and circuit breakers.",
    )
    _answers_as_users_see_them_row(layout)
    _providers_row(layout)
    return layout


def data_dashboard() -> DashboardLayout:
    layout = DashboardLayout(
        "Tilores X / Cache and quality",
        "tilores-x-data",
        "Cache hits by tier, the Redis tier, and rolling answer quality against its levels.",
    )
    _cache_row(layout)
    _answer_quality_row(layout)
    return layout


def _grpc_services_row(layout: DashboardLayout) -> None:
    where = '{grpc_service=~"$service"}'  # the dashboard's service picker
    handled = f"rate(grpc_server_handled_total{where}[5m])"
    layout.row("gRPC services")
    layout.add(
        _timeseries(
            "Requests by service and method",
            "reqps",
            [Query(f"sum by (grpc_service, grpc_method) ({handled})", "{{grpc_service}} {{grpc_method}}")],
            "RPCs completed per second.",
        )
    )
    layout.add(
        _timeseries(
            "Server error ratio",
            "percentunit",
            [
                Query(
                    "sum by (grpc_service) (rate(grpc_server_handled_total"
                    f'{{grpc_service=~"$service", grpc_code=~"{SERVER_CODES}"}}[5m]))'
                    f" / sum by (grpc_service) ({handled})",
                    "{{grpc_service}}",
                )
            ],
            f"Share of RPCs that ended {', '.join(sorted(SERVER_ERRORS))}: the service failed, not its caller.",
        )
    )
    layout.add(
        _timeseries(
            "Unary duration p50 / p99",
            "s",
            _p50_p99("grpc_server_handling_seconds", "grpc_service", where.replace("}", ', grpc_type="unary"}')),
            "Time from the start of a unary RPC to its end.",
        )
    )
    layout.add(
        _timeseries(
            "Streams in flight",
            "short",
            [
                Query(f"sum by (grpc_service) (grpc_server_streams_in_flight{where})", "{{grpc_service}}"),
                Query("sum(http_streams_in_flight)", "REST gateway"),
            ],
            "Answers being streamed now: the autoscaler's signal.",
        )
    )


def _rest_gateway_row(layout: DashboardLayout) -> None:
    layout.row("REST gateway")
    layout.add(
        _timeseries(
            "Requests by route and status",
            "reqps",
            [Query("sum by (route, status) (rate(http_requests_total[5m]))", "{{route}} {{status}}")],
            "HTTP requests per second through the gateway.",
        )
    )
    layout.add(
        _timeseries(
            "5xx ratio",
            "percentunit",
            [
                Query(
                    'sum(rate(http_requests_total{status=~"5.."}[5m]))'
                    ' / sum(rate(http_requests_total{status!~"4.."}[5m]))',
                    "5xx",
                )
            ],
            "Share of HTTP answers that were server errors, of those that were not the callers' mistakes (4xx).",
        )
    )
    layout.add(
        _timeseries(
            "Request duration p99 by route",
            "s",
            [Query(_quantile(0.99, "http_request_duration_seconds", "route"), "{{route}}")],
            "Arrival to last byte; a whole answer for streamed chat.",
        )
    )
    layout.add(
        _timeseries(
            "Outboxes waiting",
            "short",
            [
                Query("sum(router_outcomes_pending)", "turn outcomes"),
                Query("sum by (result) (rate(router_outcomes_total[5m]))", "outcomes {{result}}/s"),
            ],
            "Outcomes the router has not yet handed to the optimizer.",
        )
    )


def _answers_as_users_see_them_row(layout: DashboardLayout) -> None:
    layout.row("Answers as users see them")
    layout.add(
        _timeseries(
            "Time to first token p50 / p99 by model",
            "s",
            _p50_p99("gen_ai_server_time_to_first_token_seconds", "gen_ai_request_model"),
            "From a chat request's arrival at the gateway to its first answer event.",
        )
    )
    layout.add(
        _timeseries(
            "Time per output token p50 by model",
            "s",
            [
                Query(
                    _quantile(0.5, "gen_ai_server_time_per_output_token_seconds", "gen_ai_request_model"),
                    "{{gen_ai_request_model}}",
                )
            ],
            "Time per output token after the first.",
        )
    )
    layout.add(
        _timeseries(
            "Time the mesh added before the first token p50 / p99",
            "s",
            _p50_p99("mesh_added_latency_seconds", "gen_ai_request_model"),
            "Time to first token minus the provider's own time to its first chunk.",
        )
    )
    layout.add(
        _timeseries(
            "Provider time to first chunk p99",
            "s",
            [
                Query(
                    _quantile(
                        0.99,
                        "gen_ai_client_operation_time_to_first_chunk_seconds",
                        "gen_ai_provider_name, gen_ai_request_model",
                    ),
                    "{{gen_ai_provider_name}} {{gen_ai_request_model}}",
                )
            ],
            "From a provider call's start to its first chunk, seen by llm_gateway.",
        )
    )


def _providers_row(layout: DashboardLayout) -> None:
    layout.row("Providers")
    layout.add(
        statetimeline.Panel()
        .title("Circuit breakers")
        .description("0 closed, 1 half open, 2 open; the worst replica per provider.")
        .datasource(DATASOURCE)
        .thresholds(
            board.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(None, "green"), Threshold(1, "orange"), Threshold(2, "red")])
        )
        .with_target(_target(Query("max by (provider) (llm_circuit_breaker_state)", "{{provider}}"), "A")),
        width=WIDTH,
        height=6,
    )
    layout.add(
        _timeseries(
            "Provider calls by outcome",
            "reqps",
            [Query("sum by (provider, outcome) (rate(llm_provider_calls_total[5m]))", "{{provider}} {{outcome}}")],
            "Calls that streamed to the end, failed before the first token, or failed mid-stream.",
        )
    )
    layout.add(
        _timeseries(
            "Retries and fallbacks",
            "short",
            [
                Query("sum by (provider) (rate(llm_retries_total[5m]))", "retries {{provider}}"),
                Query("sum by (provider) (rate(llm_fallbacks_total[5m]))", "fallbacks from {{provider}}"),
            ],
            "Retries before the first token, and provider given up for the next model in the chain (per second).",
        )
    )
    layout.add(
        _timeseries(
            "Tokens by type",
            "short",
            [
                Query(
                    "sum by (gen_ai_request_model, gen_ai_token_type) (rate(gen_ai_client_token_usage_sum[5m]))",
                    "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                )
            ],
            "Input and output tokens per second by model.",
        ),
        width=WIDTH,
    )


def _cache_row(layout: DashboardLayout) -> None:
    layout.row("Cache")
    layout.add(
        _timeseries(
            "Hit ratio by tier",
            "percentunit",
            [
                Query(
                    'sum by (tier) (rate(cache_reads_total{result="hit"}[5m]))'
                    " / sum by (tier) (rate(cache_reads_total[5m]))",
                    "{{tier}}",
                )
            ],
            "l1: each cache replica's own memory; l2: Redis, shared by the replicas.",
        )
    )
    layout.add(
        _timeseries(
            "Reads by namespace and result",
            "reqps",
            [
                Query(
                    "sum by (tier, namespace, result) (rate(cache_reads_total[5m]))",
                    "{{tier}} {{namespace}} {{result}}",
                )
            ],
            "Reads per second.",
        )
    )
    layout.add(_redis_tier(), width=6)
    layout.add(
        _timeseries(
            "In-process entries and promotions",
            "short",
            [
                Query("sum(cache_l1_entries)", "l1 entries"),
                Query("sum(rate(cache_promotions_total[5m]))", "promotions/s"),
            ],
            "Entries held in replicas' memory, and values copied up from Redis.",
        ),
        width=18,
    )


def _redis_tier() -> stat.Panel:
    return (
        stat.Panel()
        .title("Redis tier")
        .description(
            "Cache replicas connected to Redis out of all; fewer means a replica serves from its own memory only."
        )
        .datasource(DATASOURCE)
        .with_target(_target(Query("sum(cache_redis_up)", "connected"), "A"))
        .with_target(_target(Query("count(cache_redis_up)", "replicas"), "B"))
    )


def _answer_quality_row(layout: DashboardLayout) -> None:
    layout.row("Answer quality")
    for group, title in (
        ("category", "category"),
        ("model", "model"),
        ("mode", "agent mode"),
        ("prompt", "prompt version"),
    ):
        panel = _timeseries(
            f"Quality by {title}",
            "percentunit",
            [
                Query(f'max by (key) (optimizer_quality_score{{group="{group}"}})', "{{key}}"),
                Query(
                    'max by (level) (optimizer_quality_threshold{level=~"critical|warning|target|excellent"})',
                    "{{level}}",
                ),
            ],
            "Mean quality over each group's latest scored turns, against the critical, warning, target and "
            "excellent levels.",
        )
        layout.add(panel.min(0.5).max(1))
    layout.add(
        _timeseries(
            "Quality alerts raised",
            "short",
            [Query("sum by (severity) (increase(optimizer_quality_alerts_total[1h]))", "{{severity}}")],
            "Alerts the quality monitor raised in the last hour, by severity.",
        ),
        width=WIDTH,
    )


DASHBOARDS = {
    "services.json": services_dashboard,
    "models.json": models_dashboard,
    "cache-and-quality.json": data_dashboard,
}


def render() -> dict[str, str]:
    """Every dashboard as the JSON Grafana imports, by file name."""
    return {name: build().json() for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="deploy/monitoring/dashboards")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)
        print(f"wrote {out / name} ({len(json.loads(text)['panels'])} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
