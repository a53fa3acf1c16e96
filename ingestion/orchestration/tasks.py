"""The work of the Airflow tasks, callable without Airflow: landing one source, the dbt manifest Cosmos renders
from, retention of raw partitions and of quarantined records, and the dbt docs site.

Each function opens this process's Spark session itself (ingestion.spark.get_spark: preflight checks, and on the
embedded warehouse the metastore lock) and is safe to rerun: landing resumes from its checkpoint, retention drops
what is older than a date computed from the run's data interval, never from the clock.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ingestion.settings import Settings
from ingestion.sources import SOURCES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

TOPIC_SOURCES = ("impressions", "bid_requests")
FILE_SOURCES = ("clicks", "conversions")


@dataclass(frozen=True)
class LandingSummary:
    """What one available-now landing of a source committed."""

    source: str
    micro_batches: int
    records_read: int
    records_landed: int
    records_quarantined: int
    ingest_dates: tuple[str, ...]

    def as_dict(self) -> dict:
        return {**asdict(self), "ingest_dates": list(self.ingest_dates)}


def open_warehouse(settings: Settings) -> SparkSession:
    """This process's Spark session on the warehouse, after the same preflight checks as the CLI."""
    from ingestion.spark import get_spark
    from ingestion.stack.preflight import check_warehouse

    check_warehouse(settings)
    return get_spark(settings)


def land_source(settings: Settings, source: str) -> LandingSummary:
    """Land what has arrived for one source (Kafka topic or tracking drop folder), in available-now mode."""
    from ingestion.streaming.lander import start_topic_landing
    from ingestion.streaming.pickup import start_file_pickup

    if source not in TOPIC_SOURCES + FILE_SOURCES:
        raise ValueError(f"unknown source {source!r}")
    spark = open_warehouse(settings)
    start = start_topic_landing if source in TOPIC_SOURCES else start_file_pickup
    batches = start(spark, settings, source, continuous=False).wait()
    summary = LandingSummary(
        source=source,
        micro_batches=len(batches),
        records_read=sum(b.records_read for b in batches),
        records_landed=sum(b.records_landed for b in batches),
        records_quarantined=sum(b.records_quarantined for b in batches),
        ingest_dates=tuple(sorted({d for b in batches for d in b.ingest_dates})),
    )
    log.info(
        "landed %s: %d micro-batches, read %d = landed %d + quarantined %d, arrival dates %s",
        source,
        summary.micro_batches,
        summary.records_read,
        summary.records_landed,
        summary.records_quarantined,
        ", ".join(summary.ingest_dates) or "none",
    )
    return summary


def manifest_dir(settings: Settings) -> Path:
    """Where the dbt manifest Cosmos renders the DAGs from lives (built by `adx airflow-manifest`)."""
    return settings.data_dir / "airflow" / "dbt_manifest"


def build_dbt_manifest(settings: Settings) -> Path:
    """`dbt parse` into manifest_dir: no warehouse connection, no Spark.

    Without the anomaly tests (var anomaly_tests false): Cosmos would render them as source test tasks between
    each source's freshness task and its models, i.e. as gates, and it renders tests its RenderConfig.exclude
    names all the same. They watch the data instead: adx_transform's check_data task runs them after the group."""
    from ingestion.transform import run_dbt

    target = manifest_dir(settings)
    run_dbt(settings, ["parse", "--target-path", str(target), "--vars", '{"anomaly_tests": false}'])
    return target / "manifest.json"


def ingest_partitions(spark: SparkSession, table: str) -> list[date]:
    """The arrival dates (`_ingest_date`) a raw or quarantine table has partitions for."""
    dates = set()
    for (spec,) in spark.sql(f"show partitions {table}").collect():
        first = spec.split("/")[0]  # _ingest_date=YYYY-MM-DD/_batch_id=...
        name, _, value = first.partition("=")
        if name == "_ingest_date" and value not in ("", "__HIVE_DEFAULT_PARTITION__"):
            dates.add(date.fromisoformat(value))
    return sorted(dates)


def drop_partitions_before(spark: SparkSession, table: str, cutoff: date) -> list[date]:
    """Drop the partitions of arrival dates before `cutoff` (their files too: the tables are managed)."""
    dropped = [d for d in ingest_partitions(spark, table) if d < cutoff]
    for arrival_date in dropped:
        spark.sql(f"alter table {table} drop if exists partition (_ingest_date = '{arrival_date}')")
    return dropped


# dbt's staging base tables: parsed copies of the raw tables, partitioned by the same arrival date and kept
# incrementally, so they follow the raw retention (a full rebuild no longer drops what raw has dropped).
STAGING_BASE_TABLES = (
    "staging.base_adserver__impressions_validated",
    "staging.base_tracking__clicks_validated",
    "staging.base_tracking__conversions_validated",
    "staging.base_rtb__bid_requests_validated",
)


def apply_raw_retention(settings: Settings, as_of: date) -> dict[str, list[date]]:
    """Drop the partitions of the raw tables (and of the staging base tables built from them) older than
    raw_retention_days before `as_of` (the run's interval end)."""
    tables = [source.raw_table for source in SOURCES.values()] + list(STAGING_BASE_TABLES)
    return _drop_expired(settings, tables, as_of - timedelta(days=settings.raw_retention_days))


def vacuum_quarantine(settings: Settings, as_of: date) -> dict[str, list[date]]:
    """Drop the quarantine tables' partitions older than quarantine_retention_days before `as_of`."""
    tables = [source.quarantine_table for source in SOURCES.values()]
    return _drop_expired(settings, tables, as_of - timedelta(days=settings.quarantine_retention_days))


def _drop_expired(settings: Settings, tables: list[str], cutoff: date) -> dict[str, list[date]]:
    from ingestion.loader import ensure_raw_tables

    spark = open_warehouse(settings)
    ensure_raw_tables(spark, settings)
    existing = [table for table in tables if spark.catalog.tableExists(table)]  # staging: once dbt has built it
    dropped = {table: drop_partitions_before(spark, table, cutoff) for table in existing}
    for table, dates in dropped.items():
        log.info("%s: dropped %d arrival dates before %s: %s", table, len(dates), cutoff, ", ".join(map(str, dates)))
    return dropped


def generate_docs(settings: Settings) -> Path:
    """`dbt docs generate`: the static docs site (index.html, manifest.json, catalog.json) in the target folder."""
    from ingestion.transform import generate_docs as dbt_docs_generate

    open_warehouse(settings)  # dbt's session target reuses this session (and its metastore lock)
    dbt_docs_generate(settings)
    return settings.dbt_project_dir / "target"


def check_data(settings: Settings) -> dict:
    """The anomaly tests (dbt tag `anomaly`: volume per source and campaign, arrival lag, raw schema; severity
    from var anomaly_severity, warn by default), then `adx status`'s figures as Prometheus metrics. Anomalies and
    failed nodes are reported and alerted on, they do not fail this task: the dbt tasks already failed for theirs."""
    from ingestion.monitoring.metrics import record_status
    from ingestion.monitoring.status import summary
    from ingestion.transform import run_dbt

    spark = open_warehouse(settings)
    run_dbt(settings, ["test", "--select", "tag:anomaly"])
    status = record_status(spark, settings)
    print(summary(status))
    return {
        "healthy": status.healthy,
        "stale_sources": [health.source for health in status.stale_sources],
        "anomalies": [anomaly.detail for anomaly in status.anomalies],
        "failed_nodes": [node.name for node in status.failed_nodes],
    }


def project_lookback_days(settings: Settings) -> int:
    """The dbt project's default `lookback_days` var (dbt_project.yml)."""
    import yaml

    project = yaml.safe_load((settings.dbt_project_dir / "dbt_project.yml").read_text())
    return int(project["vars"]["lookback_days"])
