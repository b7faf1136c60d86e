"""The Grafana dashboards and the Prometheus alert rules in deploy/monitoring:
current with their generator, valid for promtool, and right about synthetic
series (promtool's own rule unit tests)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy import dashboards

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")


def rules_of(manifest: dict, runbooks: bool = True) -> dict:
    """The PrometheusRule's spec as a plain Prometheus rule file."""
    spec = json.loads(json.dumps(manifest["spec"]))
    if not runbooks:
        for group in spec["groups"]:
            for rule in group["rules"]:
                rule["annotations"].pop("runbook", None)
    return spec


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: `make test` installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load((MONITORING / "alerts.yaml").read_text())


def test_committed_dashboards_are_what_the_generator_builds():
    rendered = dashboards.render()
    assert sorted(rendered) == sorted(p.name for p in (MONITORING / "dashboards").glob("*.json"))
    for name, text in rendered.items():
        assert (MONITORING / "dashboards" / name).read_text() == text, f"run `make k8s`: {name} is stale"


def test_every_dashboard_panel_has_a_title_a_query_and_a_place():
    for name, text in dashboards.render().items():
        board = json.loads(text)
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        assert board["templating"]["list"][0]["type"] == "datasource"
        for panel in board["panels"]:
            assert panel["title"] and panel["gridPos"]["w"] > 0
            if panel["type"] != "row":
                assert panel["description"], (name, panel["title"])
                assert panel["targets"] and all(t["expr"] for t in panel["targets"]), (name, panel["title"])


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook(manifest):
    assert manifest["kind"] == "PrometheusRule" and manifest["apiVersion"] == "monitoring.coreos.com/v1"
    names = []
    for group in manifest["spec"]["groups"]:
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            for annotation in ("summary", "description", "runbook"):
                assert len(rule["annotations"].get(annotation, "")) > 20, (rule["alert"], annotation)
            # Runbooks are prose the unit tests leave out: no templates in them.
            assert "{{" not in rule["annotations"]["runbook"], rule["alert"]
    assert {
        "TiloresXServiceErrors",
        "TiloresXGatewayErrors",
        "TiloresXSlowFirstToken",
        "TiloresXBreakerOpen",
        "TiloresXRedisDegraded",
        "TiloresXQualityBelowWarning",
        "TiloresXReplicaMissing",
    } <= set(names)


def test_the_rules_pass_promtool_check(manifest, tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules_of(manifest)))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout


def test_the_rules_pass_their_unit_tests_against_synthetic_series(manifest, tmp_path):
    (tmp_path / "alerts.rules.yaml").write_text(yaml.safe_dump(rules_of(manifest, runbooks=False)))
    shutil.copy(MONITORING / "alerts_test.yaml", tmp_path)
    tested = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(
    "alert, old, new",
    [
        ("TiloresXServiceErrors", "> 0.05", "> 0.5"),
        ("TiloresXBreakerOpen", "== 2", "== 1"),
        ("TiloresXQualityBelowWarning", 'level="warning"', 'level="critical"'),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(manifest, tmp_path, alert, old, new):
    broken = rules_of(manifest, runbooks=False)
    for group in broken["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                assert old in rule["expr"]
                rule["expr"] = rule["expr"].replace(old, new)
    (tmp_path / "alerts.rules.yaml").write_text(yaml.safe_dump(broken))
    shutil.copy(MONITORING / "alerts_test.yaml", tmp_path)
    tested = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert tested.returncode != 0
    assert f"alertname: {alert}" in tested.stdout + tested.stderr
