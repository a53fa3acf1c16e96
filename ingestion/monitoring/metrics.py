"""Prometheus metrics of the batch pipeline, written as text files that the exporter serves.

Batch jobs are gone before Prometheus could scrape them, so each writes its metrics to
`ADX_DATA_DIR/metrics/<job>.prom` (the node-exporter textfile pattern, written atomically) and the exporter
(ingestion/monitoring/exporter.py) serves every file on one endpoint. Metric names and labels are the contract
of conf/prometheus/rules/adx.rules.yml and the dashboards in conf/grafana/dashboards/.
"""

from __future__ import annotations

import time as clock
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from ingestion.monitoring.status import WarehouseStatus, warehouse_status
from ingestion.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STATUS_JOB = "warehouse_status"


def record_status(spark: SparkSession, settings: Settings) -> WarehouseStatus:
    """Read the warehouse's status now and write it as the status metric file (`adx status`, Airflow's
    check_data)."""
    status = warehouse_status(spark, datetime.now(UTC))
    write_metric_file(settings, STATUS_JOB, status_registry(status))
    return status


def metric_file(settings: Settings, job: str) -> Path:
    return settings.metrics_dir / f"{job}.prom"


def write_metric_file(settings: Settings, job: str, registry: CollectorRegistry) -> Path:
    path = metric_file(settings, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return path


@contextmanager
def recorded_stage(settings: Settings, stage: str) -> Iterator[None]:
    """Time the block and write its stage metrics (ADX_DATA_DIR/metrics/stage_<stage>.prom), failed if it raises
    (a SystemExit of a failing CLI step included)."""
    started = clock.monotonic()
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        registry = stage_duration_registry(stage, clock.monotonic() - started, clock.time(), succeeded)
        write_metric_file(settings, f"stage_{stage}", registry)


def stage_duration_registry(stage: str, seconds: float, finished_at: float, succeeded: bool) -> CollectorRegistry:
    """One pipeline stage's run (`adx load`, `adx transform`): how long it took, when, and whether it worked."""
    registry = CollectorRegistry()
    labels = {"stage": stage}
    Gauge("adx_stage_duration_seconds", "Wall time of the stage's last run.", ["stage"], registry=registry).labels(
        **labels
    ).set(seconds)
    Gauge("adx_stage_last_run_timestamp_seconds", "End of the stage's last run.", ["stage"], registry=registry).labels(
        **labels
    ).set(finished_at)
    Gauge("adx_stage_success", "1 if the stage's last run succeeded.", ["stage"], registry=registry).labels(
        **labels
    ).set(1 if succeeded else 0)
    return registry


def status_registry(status: WarehouseStatus) -> CollectorRegistry:
    registry = CollectorRegistry()
    _source_metrics(status, registry)
    _dbt_metrics(status, registry)
    _anomaly_metrics(status, registry)
    _campaign_metrics(status, registry)
    Gauge("adx_status_timestamp_seconds", "When `adx status` last read the warehouse.", registry=registry).set(
        status.checked_at.timestamp()
    )
    return registry


def _source_metrics(status: WarehouseStatus, registry: CollectorRegistry) -> None:
    arrival = Gauge(
        "adx_source_latest_arrival_timestamp_seconds",
        "Start (UTC) of the newest arrival date (_ingest_date) in the raw table.",
        ["source"],
        registry=registry,
    )
    loaded = Gauge(
        "adx_source_last_loaded_timestamp_seconds", "Newest _loaded_at in the raw table.", ["source"], registry=registry
    )
    lag = Gauge(
        "adx_source_arrival_lag_days",
        "Days the source's newest arrival date is behind the newest arrival of any source.",
        ["source"],
        registry=registry,
    )
    records = Gauge(
        "adx_source_records",
        "Records of the batches of the source's newest arrival date, by outcome (read = landed + quarantined).",
        ["source", "outcome"],
        registry=registry,
    )
    ratio = Gauge(
        "adx_source_quarantine_ratio",
        "Quarantined / read of the source's newest arrival date.",
        ["source"],
        registry=registry,
    )
    for health in status.sources:
        if health.latest_arrival is not None:
            arrival.labels(source=health.source).set(_midnight_utc(health.latest_arrival))
        if health.last_loaded_at is not None:
            loaded.labels(source=health.source).set(_utc_timestamp(health.last_loaded_at))
        if health.lag_days is not None:
            lag.labels(source=health.source).set(health.lag_days)
        for outcome, value in (
            ("read", health.records_read),
            ("landed", health.records_landed),
            ("quarantined", health.records_quarantined),
        ):
            records.labels(source=health.source, outcome=outcome).set(value)
        ratio.labels(source=health.source).set(health.quarantine_ratio)


def _dbt_metrics(status: WarehouseStatus, registry: CollectorRegistry) -> None:
    failed = Gauge(
        "adx_dbt_node_failed",
        "1 for a dbt node whose latest result is error or fail (anomaly tests are adx_*_anomaly).",
        ["node", "resource_type", "status"],
        registry=registry,
    )
    duration = Gauge(
        "adx_dbt_node_duration_seconds",
        "Execution time of the node's latest run.",
        ["node", "resource_type"],
        registry=registry,
    )
    last_run = Gauge(
        "adx_dbt_last_run_timestamp_seconds", "Start of the newest dbt invocation recorded.", registry=registry
    )
    nodes = Gauge("adx_dbt_nodes", "dbt nodes by the status of their latest result.", ["status"], registry=registry)
    for node in status.failed_nodes:
        failed.labels(node=node.name, resource_type=node.resource_type, status=node.status).set(1)
    for node in status.nodes:
        if node.execution_seconds is not None:
            duration.labels(node=node.name, resource_type=node.resource_type).set(node.execution_seconds)
    for node_status, count in status.node_counts.items():
        nodes.labels(status=node_status).set(count)
    if status.nodes:
        last_run.set(max(_utc_timestamp(node.run_started_at) for node in status.nodes))


def _anomaly_metrics(status: WarehouseStatus, registry: CollectorRegistry) -> None:
    volume = Gauge(
        "adx_volume_anomaly_deviation",
        "A flagged day's volume minus its baseline mean, in spreads (negative: a drop); only flagged series.",
        ["relation", "campaign"],
        registry=registry,
    )
    freshness = Gauge(
        "adx_freshness_anomaly",
        "1 for a table whose newest date lags the newest arrival by more than its test allows.",
        ["relation"],
        registry=registry,
    )
    schema = Gauge(
        "adx_schema_change",
        "1 for a raw column added or removed against the expected columns.",
        ["relation", "change", "column"],
        registry=registry,
    )
    for anomaly in status.anomalies:
        if anomaly.kind == "volume":
            volume.labels(relation=anomaly.relation, campaign=anomaly.labels.get("campaign", "")).set(anomaly.deviation)
        elif anomaly.kind == "freshness":
            freshness.labels(relation=anomaly.relation).set(1)
        else:
            schema.labels(relation=anomaly.relation, **anomaly.labels).set(1)


def _midnight_utc(day: date) -> float:
    return datetime.combine(day, time.min, tzinfo=UTC).timestamp()


def _utc_timestamp(moment: datetime) -> float:
    """Spark returns naive timestamps in the session time zone, which get_spark sets to UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


CAMPAIGN_MEASURES = ("impressions", "clicks", "conversions", "spend_usd", "revenue_usd")


def _campaign_metrics(status: WarehouseStatus, registry: CollectorRegistry) -> None:
    gauges = {
        measure: Gauge(
            f"adx_campaign_{measure}",
            f"{measure} of the campaign on the newest event date of marts.agg_campaign_daily.",
            ["campaign", "advertiser"],
            registry=registry,
        )
        for measure in CAMPAIGN_MEASURES
    }
    day = Gauge(
        "adx_campaign_event_date_timestamp_seconds",
        "Start (UTC) of the event date the adx_campaign_* gauges show.",
        registry=registry,
    )
    for row in status.campaigns:
        for measure, gauge in gauges.items():
            gauge.labels(campaign=row.campaign_id, advertiser=row.advertiser_id).set(getattr(row, measure))
        day.set(_midnight_utc(row.event_date))
