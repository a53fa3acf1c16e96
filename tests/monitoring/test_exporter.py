"""The metrics exporter, run as the stack runs it (its own process): it serves every metric file of the data
folder, merged by family, skips a broken file and counts it, turns the Airflow failure callback's alerts into
metrics, and says when it cannot ask the broker for the streaming queries' lag. (The lag itself, against a live
broker and a real lander checkpoint: tests/streaming/test_lander.py.)"""

from __future__ import annotations

import json
import urllib.request
from types import SimpleNamespace

import pytest
from ports import free_port_block
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from ingestion.monitoring.consumer_lag import committed_position
from ingestion.monitoring.metrics import stage_duration_registry, write_metric_file
from ingestion.orchestration.alerts import log_failure_alert
from ingestion.settings import Settings
from ingestion.stack.monitoring import MetricsExporter


@pytest.fixture
def exporter(tmp_path, monkeypatch):
    ports = free_port_block(2, 19700, 19799, "the exporter and a broker that is not there")
    settings = Settings(
        data_dir=tmp_path / "data", exporter_port=ports, kafka_bootstrap_servers=f"127.0.0.1:{ports + 1}"
    )
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


def _offset_log_entry(sources: list[dict]) -> str:
    """An entry of a Structured Streaming offset log, as Spark 4 writes it."""
    metadata = {"batchWatermarkMs": 0, "batchTimestampMs": 1796507210853, "conf": {}}
    return "\n".join(["v1", json.dumps(metadata), *(json.dumps(source) for source in sources)])


def _checkpoint(root, query: str, planned: dict[int, list[dict]], committed: list[int]):
    checkpoint = root / query
    for log_dir in ("offsets", "commits"):
        (checkpoint / log_dir).mkdir(parents=True)
    for batch, sources in planned.items():
        (checkpoint / "offsets" / str(batch)).write_text(_offset_log_entry(sources))
        (checkpoint / "offsets" / f".{batch}.crc").write_bytes(b"\0")
    for batch in committed:
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')
    return checkpoint


def test_position_is_the_last_committed_batch_and_file_sources_have_none(tmp_path):
    kafka = _checkpoint(
        tmp_path,
        "kafka_impressions",
        {
            0: [{"adx.impressions.v1": {"0": 90, "1": 100}, "adx.impressions.dlq.v1": {"0": 3}}],
            1: [{"adx.impressions.v1": {"0": 190, "1": 200}, "adx.impressions.dlq.v1": {"0": 3}}],
            2: [{"adx.impressions.v1": {"0": 290, "1": 300}, "adx.impressions.dlq.v1": {"0": 4}}],
        },
        committed=[0, 1],  # batch 2 is planned, not written: a restart reads it again
    )
    files = _checkpoint(tmp_path, "files_clicks", {0: [{"logOffset": 0}]}, committed=[0])

    position = committed_position(kafka)
    assert position is not None and position.batch_number == 1
    assert position.offsets == {
        ("adx.impressions.v1", 0): 190,
        ("adx.impressions.v1", 1): 200,
        ("adx.impressions.dlq.v1", 0): 3,
    }
    assert committed_position(files) is None
    assert committed_position(_checkpoint(tmp_path, "kafka_new", {0: [{"adx.impressions.v1": {"0": 5}}]}, [])) is None


def test_lag_is_reported_unknown_when_the_broker_does_not_answer(exporter):
    settings = exporter
    checkpoints = settings.checkpoints_dir
    _checkpoint(checkpoints, "kafka_impressions", {0: [{"adx.impressions.v1": {"0": 90}}]}, committed=[0])

    families = scrape(settings)

    assert [sample.value for sample in families["adx_kafka_lag_up"]] == [0.0]
    assert "adx_kafka_consumer_lag_records" not in families
