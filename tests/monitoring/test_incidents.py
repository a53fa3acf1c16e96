"""An incident end to end: six arrival days in which one campaign's impressions drop by half on the last day and
the conversions export stalls for the last two. The dbt anomaly tests fail on exactly those two, `adx status` names
the campaign and the stale source, and the running Prometheus server fires AdxVolumeDrop and AdxSourceStale for
them (and nothing for the healthy sources and campaigns).

Everything runs as an operator runs it: `adx` commands in their own processes on their own data folder (so their
Derby metastore is not the test session's), and `adx stack up exporter prometheus`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from adx_process import adx
from incidents import drop_campaign_impressions, impressions_by_campaign, stall_source
from ports import free_port_block
from prometheus_client.parser import text_string_to_metric_families
from test_dashboards import DASHBOARDS, as_sent, expressions

from ingestion.settings import Settings

pytestmark = pytest.mark.integration

DAYS = [date(2026, 11, day) for day in range(1, 7)]


@pytest.fixture(scope="module")
def incident(tmp_path_factory):
    """The warehouse after the incident: generated, broken, loaded, anomaly-tested and summarised."""
    data_dir: Path = tmp_path_factory.mktemp("adx-incident")
    exporter_port = free_port_block(1, 19800, 19849, "the exporter")
    settings = Settings(
        data_dir=data_dir,
        exporter_port=exporter_port,
        prometheus_port=free_port_block(1, 19850, 19899, "Prometheus"),
        prometheus_interval_seconds=1,
    )
    env = {
        **os.environ,
        "ADX_DATA_DIR": str(data_dir),
        "ADX_EXPORTER_PORT": str(settings.exporter_port),
        "ADX_PROMETHEUS_PORT": str(settings.prometheus_port),
        "ADX_PROMETHEUS_INTERVAL_SECONDS": "1",
        "ADX_SPARK_DRIVER_MEMORY": "1g",
    }
    assert adx(env, "generate", "--days", "6", "--scale", "2000", "--seed", "11").returncode == 0
    last_day = DAYS[-1]
    campaign, before = impressions_by_campaign(settings.landing_dir, last_day).most_common(1)[0]
    removed = drop_campaign_impressions(settings.landing_dir, last_day, campaign)
    assert before // 2 == removed  # half of the campaign's impressions of the day are gone
    stall_source(settings.landing_dir, "tracking/conversions", DAYS[-2:])

    assert adx(env, "load").returncode == 0
    anomaly_tests = adx(
        env,
        "dbt",
        "--",
        "test",
        "--select",
        "tag:anomaly",
        "--exclude",
        "path:dbt_project/marts",
        "--vars",
        '{"anomaly_severity": "error"}',
    )
    status = adx(env, "status")
    return settings, env, campaign, anomaly_tests, status


def test_the_anomaly_tests_fail_on_the_drop_and_the_stall_only(incident):
    _, _, _, anomaly_tests, _ = incident
    assert anomaly_tests.returncode != 0
    failed = {
        line.split("Failure in test ")[1].split()[0]
        for line in anomaly_tests.stdout.splitlines()
        if "Failure in test " in line
    }
    assert failed == {"anomaly_volume_adserver_impressions_by_campaign", "anomaly_freshness_tracking_conversions"}
    # the 10 others (the other sources' volume, freshness and schema tests) pass, and so does the on-run-end hook
    assert "PASS=11 WARN=0 ERROR=2 SKIP=0 NO-OP=0 TOTAL=13" in anomaly_tests.stdout


def test_status_names_the_campaign_and_the_stale_source(incident):
    _, _, campaign, _, status = incident
    assert status.returncode == 1  # something needs attention
    out = status.stdout
    assert "STALE SOURCE  conversions: newest arrival 2026-11-04 (2 days behind)" in out
    volume_lines = [line for line in out.splitlines() if line.strip().startswith("VOLUME")]
    assert len(volume_lines) == 1 and f"raw.impressions campaign {campaign} on 2026-11-06" in volume_lines[0]
    assert "(drop," in volume_lines[0]
    # the latest results of the 12 anomaly tests, read back from ops.dbt_run_results (the on-run-end hook)
    assert "dbt nodes by latest result: 2 fail, 10 pass" in out


def test_status_metrics_carry_the_campaign_and_the_source(incident):
    settings, _, campaign, _, _ = incident
    text = (settings.metrics_dir / "warehouse_status.prom").read_text()
    samples = {family.name: family.samples for family in text_string_to_metric_families(text)}
    deviations = {s.labels["campaign"]: s.value for s in samples["adx_volume_anomaly_deviation"]}
    assert list(deviations) == [campaign] and deviations[campaign] < -3
    lags = {s.labels["source"]: s.value for s in samples["adx_source_arrival_lag_days"]}
    assert lags == {"impressions": 0, "clicks": 0, "conversions": 2, "bid_requests": 0}


def prometheus_get(settings: Settings, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"http://127.0.0.1:{settings.prometheus_port}{path}{query}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_running_prometheus_fires_the_alerts(incident):
    settings, env, campaign, _, _ = incident
    try:
        assert adx(env, "stack", "up", "exporter", "prometheus").returncode == 0
        deadline = time.monotonic() + 60
        firing: set[tuple] = set()
        wanted = {("AdxVolumeDrop", campaign), ("AdxSourceStale", "conversions")}
        while time.monotonic() < deadline and not wanted <= firing:
            time.sleep(1)
            alerts = prometheus_get(settings, "/api/v1/alerts")["data"]["alerts"]
            firing = {
                (
                    a["labels"]["alertname"],
                    a["labels"].get("campaign") or a["labels"].get("source") or a["labels"].get("relation"),
                )
                for a in alerts
                if a["state"] == "firing"
            }
        assert wanted <= firing, f"firing after 60 s: {sorted(firing)}"
        # nothing for the healthy sources and campaigns: the only other alert is the raw table's own staleness
        assert firing == wanted | {("AdxTableStale", "raw.conversions")}

        # every dashboard query runs on the live server (its query API parses and evaluates it)
        for path in DASHBOARDS:
            for expression in expressions(json.loads(path.read_text())):
                answer = prometheus_get(settings, "/api/v1/query", query=as_sent(expression))
                assert answer["status"] == "success", (path.name, expression, answer)
        impressions = prometheus_get(settings, "/api/v1/query", query="sum(adx_campaign_impressions)")
        assert impressions["data"]["result"] == []  # no marts were built in this warehouse: no campaign KPIs
    finally:
        adx(env, "stack", "down", "exporter", "prometheus")
