"""Retention (issue 8): adx_maintenance's raw retention and quarantine vacuum, called directly on the session's
warehouse. Arrival-date partitions older than the setting leave raw, the staging base tables built from raw, and
quarantine, files and all; newer ones keep every row, and a rerun drops nothing more.

tests/orchestration/test_dag_runs.py (slow tier) runs the same tasks through the maintenance DAG."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from ingestion.generator import generate
from ingestion.loader import load
from ingestion.orchestration.tasks import STAGING_BASE_TABLES, apply_raw_retention, vacuum_quarantine
from ingestion.sources import SOURCES
from ingestion.transform import run_dbt

pytestmark = pytest.mark.integration

DAYS = [date(2026, 11, 1) + timedelta(days=n) for n in range(3)]
RAW_TABLES = [source.raw_table for source in SOURCES.values()]
QUARANTINE_TABLES = [source.quarantine_table for source in SOURCES.values()]


def _arrival_dates(spark, table: str) -> list[date]:
    return sorted(row[0] for row in spark.sql(f"select distinct _ingest_date from {table}").collect())


def _rows_by_arrival_date(spark, table: str) -> dict[date, int]:
    return dict(spark.sql(f"select _ingest_date, count(*) from {table} group by 1").collect())


def _partition_folder(settings, table: str, arrival_date: date) -> Path:
    schema, name = table.split(".")
    return Path(settings.resolved_lake_uri) / f"{schema}.db" / name / f"_ingest_date={arrival_date}"


def test_partitions_older_than_the_retention_leave_raw_staging_and_quarantine(spark, warehouse_settings):
    for schema in ("raw", "staging", "intermediate", "marts", "reference"):
        spark.sql(f"drop database if exists {schema} cascade")
    shutil.rmtree(warehouse_settings.landing_dir, ignore_errors=True)
    generate(warehouse_settings.data_dir, days=len(DAYS), scale=3_000, seed=5)
    load(spark, warehouse_settings)
    base_models = " ".join("+" + table.removeprefix("staging.") for table in STAGING_BASE_TABLES)
    run_dbt(warehouse_settings, ["build", "--select", base_models, "--exclude", "resource_type:test"])

    raw_and_staging = RAW_TABLES + list(STAGING_BASE_TABLES)
    dates_before = {table: _arrival_dates(spark, table) for table in raw_and_staging + QUARANTINE_TABLES}
    for table in ["raw.impressions", "staging.base_adserver__impressions_validated", "raw.quarantine_impressions"]:
        assert dates_before[table] == DAYS, f"{table} must hold every arrival date for the test to mean much"
    kept_before = {table: _rows_by_arrival_date(spark, table).get(DAYS[2]) for table in raw_and_staging}

    settings = warehouse_settings.model_copy(update={"raw_retention_days": 1, "quarantine_retention_days": 2})
    as_of = DAYS[2] + timedelta(days=1)  # raw keeps the arrivals of DAYS[2:], quarantine those of DAYS[1:]
    raw_dropped = apply_raw_retention(settings, as_of)
    quarantine_dropped = vacuum_quarantine(settings, as_of)

    assert raw_dropped == {table: [d for d in dates_before[table] if d < DAYS[2]] for table in raw_and_staging}
    assert quarantine_dropped == {table: [d for d in dates_before[table] if d < DAYS[1]] for table in QUARANTINE_TABLES}
    for table in raw_and_staging:
        assert _arrival_dates(spark, table) == [d for d in dates_before[table] if d >= DAYS[2]]
        assert _rows_by_arrival_date(spark, table).get(DAYS[2]) == kept_before[table]
        assert not _partition_folder(settings, table, DAYS[0]).exists()
    for table in QUARANTINE_TABLES:
        assert _arrival_dates(spark, table) == [d for d in dates_before[table] if d >= DAYS[1]]

    assert apply_raw_retention(settings, as_of) == {table: [] for table in raw_and_staging}
    assert vacuum_quarantine(settings, as_of) == {table: [] for table in QUARANTINE_TABLES}
