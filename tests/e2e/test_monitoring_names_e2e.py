"""Every metric the Grafana dashboards and the alert rules name is one the
running mesh exports: scraped from every process's /metrics, so a renamed
metric cannot leave a dashboard blank or an alert silent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_operations_e2e import chat, scrape

pytestmark = pytest.mark.e2e

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
# Named by the rules but made by others: Prometheus itself (up) and
# kube-state-metrics (the deployments' replicas).
EXTERNAL = {"up", "kube_deployment_spec_replicas", "kube_deployment_status_replicas_available"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "by", "on", "without",
    "group_left", "group_right", "and", "or", "unless", "bool", "offset", "ignoring", "humanizePercentage",
}  # fmt: skip
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ()}


def names_in(expr: str) -> set[str]:
    """The metric names of a PromQL expression: what is left once label
    matchers, strings, ranges, grouping clauses, numbers and functions are
    taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhd]?", w)}


def named_by_monitoring() -> dict[str, set[str]]:
    """Metric name -> where it is named."""
    named: dict[str, set[str]] = {}
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            for name in names_in(re.sub(r"label_values\((\w+),.*\)", r"\1", expr)):
                named.setdefault(name, set()).add(path.name)
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            for name in names_in(rule["expr"]):
                named.setdefault(name, set()).add(rule["alert"])
    return named


def exported(text: str) -> set[str]:
    """The series names an exposition can carry, from its TYPE lines (a
    labelled metric with no series yet still has one) and its samples."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            names.update(name + suffix for suffix in SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def test_names_are_read_from_promql_as_written():
    assert names_in(
        'sum by (grpc_service) (rate(grpc_server_handled_total{grpc_code=~"A|B"}[5m])) / on () group_left () '
        'max(optimizer_quality_threshold{level="warning"}) > 0.05'
    ) == {"grpc_server_handled_total", "optimizer_quality_threshold"}
    assert names_in("histogram_quantile(0.99, sum by (le, m) (rate(x_seconds_bucket[10m]))) > 5") == {
        "x_seconds_bucket"
    }


def test_every_metric_a_dashboard_or_rule_names_is_exported(mesh):
    status, _, _ = chat(mesh, "What is the status of edwina.hawthorne@example.com?")
    assert status == 200
    available = set()
    for instance in mesh.metrics_ports:
        available |= exported(scrape(mesh, instance))
    named = named_by_monitoring()
    assert len(named) >= 25  # the dashboards and rules were read at all
    missing = {name: sorted(where) for name, where in named.items() if name not in available | EXTERNAL}
    assert not missing, f"named in deploy/monitoring but exported by no process: {missing}"
