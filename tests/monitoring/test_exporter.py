"""The metrics exporter, run as the stack runs it (its own process): it serves every metric file of the data
folder, merged by family, skips a broken file and counts it, and turns the Airflow failure callback's alerts into
metrics."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

import pytest
from ports import free_port_block
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from ingestion.monitoring.metrics import stage_duration_registry, write_metric_file
from ingestion.orchestration.alerts import log_failure_alert
from ingestion.settings import Settings
from ingestion.stack.monitoring import MetricsExporter


@pytest.fixture
def exporter(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", exporter_port=free_port_block(1, 19700, 19799, "the exporter"))
    monkeypatch.setenv("ADX_DATA_DIR", str(settings.data_dir))  # the failure callback reads Settings()
    service = MetricsExporter(settings)
    service.start(timeout=30)
    yield settings
    service.stop()


def scrape(settings: Settings) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.exporter_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_metric_files_are_served_merged_and_a_broken_file_is_counted(exporter):
    settings = exporter
    write_metric_file(settings, "stage_load", stage_duration_registry("load", 52.5, 1_800_000_000, True))
    write_metric_file(settings, "stage_transform", stage_duration_registry("transform", 130.0, 1_800_000_100, False))
    registry = CollectorRegistry()
    Gauge("adx_source_arrival_lag_days", "lag", ["source"], registry=registry).labels(source="clicks").set(2)
    write_metric_file(settings, "warehouse_status", registry)
    (settings.metrics_dir / "half_written.prom").write_text("adx_broken{source=\n")

    families = scrape(settings)

    durations = {sample.labels["stage"]: sample.value for sample in families["adx_stage_duration_seconds"]}
    assert durations == {"load": 52.5, "transform": 130.0}
    success = {sample.labels["stage"]: sample.value for sample in families["adx_stage_success"]}
    assert success == {"load": 1.0, "transform": 0.0}
    assert [(s.labels, s.value) for s in families["adx_source_arrival_lag_days"]] == [({"source": "clicks"}, 2.0)]
    errors = {sample.labels["file"]: sample.value for sample in families["adx_exporter_file_errors"]}
    assert errors == {"half_written.prom": 1.0}
    jobs = {sample.labels["job"] for sample in families["adx_metrics_file_timestamp_seconds"]}
    assert jobs == {"stage_load", "stage_transform", "warehouse_status"}


def test_airflow_failure_callbacks_become_metrics(exporter):
    settings = exporter
    for try_number in (1, 2):
        task = SimpleNamespace(
            dag_id="adx_transform",
            task_id="fct_clicks.run",
            run_id="scheduled__2026-11-02",
            map_index=-1,
            try_number=try_number,
        )
        log_failure_alert({"task_instance": task, "exception": RuntimeError("dbt run failed")})
    with (settings.data_dir / "alerts" / "airflow.jsonl").open("a") as alerts:
        alerts.write('{"alert": "airflow_task_failed", "dag_id": "adx_ing')  # cut short by a crash

    families = scrape(settings)

    labels = {"dag_id": "adx_transform", "task_id": "fct_clicks.run"}
    failures = [s for s in families["adx_airflow_task_failures"] if s.name == "adx_airflow_task_failures_total"]
    assert [(s.labels, s.value) for s in failures] == [(labels, 2.0)]
    [last] = families["adx_airflow_task_last_failure_timestamp_seconds"]
    assert last.labels == labels and last.value > 1_700_000_000
