"""The Grafana dashboards: valid dashboard JSON, every PromQL expression parsed by Prometheus's own parser, and
every metric they (and the alert rules) use is one the project exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from promtool import check_expressions

from ingestion.settings import PROJECT_DIR
from ingestion.stack.monitoring import rules_file_paths

DASHBOARDS = sorted((PROJECT_DIR / "conf" / "grafana" / "dashboards").glob("*.json"))
# Grafana's template variables, replaced the way Grafana would before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$campaign": ".*", "$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d"}
# Series Prometheus makes itself.
PROMETHEUS_SERIES = {"ALERTS", "up"}


def expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def as_sent(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def exported_metric_names() -> set[str]:
    """Metric names created in the project's code (prometheus_client Gauge/Counter names and collector families);
    a counter `x` is scraped as `x_total`."""
    names: set[str] = set()
    for path in (PROJECT_DIR / "ingestion").rglob("*.py"):
        names.update(re.findall(r'"(adx_[a-z_]+)"', path.read_text()))
    from ingestion.monitoring.metrics import CAMPAIGN_MEASURES

    names.update(f"adx_campaign_{measure}" for measure in CAMPAIGN_MEASURES)
    return names | {f"{name}_total" for name in names}


def metric_names_in(expression: str) -> set[str]:
    return set(re.findall(r"\b(adx_[a-z_]+)\b", expression))


def test_there_are_two_dashboards_pipeline_health_and_campaign_kpis():
    titles = {json.loads(path.read_text())["title"] for path in DASHBOARDS}
    assert titles == {"AdvertiseX / Pipeline health", "AdvertiseX / Campaign KPIs"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_json_is_a_grafana_dashboard(path: Path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["type"] == "prometheus"
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is wider than the dashboard"
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    used = set(re.findall(r"\$([a-z_]+)", json.dumps(dashboard["panels"])))
    assert used <= variables | {"__rate_interval", "__interval", "__range"}, "a panel uses an undefined variable"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_dashboard_expression_parses(path: Path, tmp_path):
    sent = [as_sent(expression) for expression in expressions(json.loads(path.read_text()))]
    checked = check_expressions(sent, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_parser_check_rejects_a_broken_expression(tmp_path):
    checked = check_expressions(["sum by (source adx_source_arrival_lag_days"], tmp_path)
    assert checked.returncode != 0


def test_every_metric_of_the_dashboards_and_rules_is_exported():
    exported = exported_metric_names()
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for expression in expressions(json.loads(path.read_text())):
            used.setdefault(path.name, set()).update(metric_names_in(expression))
    for path in rules_file_paths():
        used.setdefault(path.name, set()).update(metric_names_in(path.read_text()))
    unknown = {name: sorted(metrics - exported) for name, metrics in used.items() if metrics - exported}
    assert not unknown, f"metrics no code exports: {unknown}"
