"""Incremental marts: late events re-attribute within the lookback, reruns change nothing, older partitions stay."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from ingestion.generator import generate
from ingestion.loader import load
from ingestion.orchestration.tasks import STAGING_BASE_TABLES
from ingestion.transform import build, run_dbt
from ingestion.verify import verify

pytestmark = pytest.mark.integration

DAY_1 = date(2026, 11, 1)
DAY_2 = DAY_1 + timedelta(days=1)
DAY_3 = DAY_1 + timedelta(days=2)
MARTS = ("fct_impressions", "fct_clicks", "fct_conversions", "agg_campaign_daily", "agg_rtb_daily")
BASE_TABLES = tuple(table.removeprefix("staging.") for table in STAGING_BASE_TABLES)


def _table_rows(spark, table: str) -> list[tuple]:
    return sorted(tuple(map(str, row)) for row in spark.table(table).collect())


def _marts(spark) -> dict[str, list[tuple]]:
    return {mart: _table_rows(spark, f"marts.{mart}") for mart in MARTS}


def _partition_files(settings, mart: str, day: date, schema: str = "marts", column: str = "event_date") -> dict:
    """Data files of one date partition (and its sub-partitions) with their modification times."""
    folder = Path(settings.resolved_lake_uri) / f"{schema}.db" / mart / f"{column}={day}"
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.parquet")}


def _base_files(settings, day: date) -> dict[str, dict]:
    """The arrival-date partition of every staging base table."""
    return {base: _partition_files(settings, base, day, "staging", "_ingest_date") for base in BASE_TABLES}


def _run_models(settings, run_date: date, command: str = "run", select: str = "", **extra_vars) -> None:
    """`dbt run` (or another command) after the arrival date run_date was landed, with adx_transform's vars."""
    dbt_vars = {"run_date": run_date.isoformat(), "arrival_start_date": run_date.isoformat(), **extra_vars}
    run_dbt(settings, [command, "--vars", json.dumps(dbt_vars), *(["--select", select] if select else [])])


def test_incremental_runs_correct_late_events_and_leave_old_partitions_alone(spark, warehouse_settings):
    settings = warehouse_settings
    for schema in ("raw", "staging", "intermediate", "marts", "reference"):
        spark.sql(f"drop database if exists {schema} cascade")
    generate(settings.data_dir, days=3, scale=20_000, seed=11)

    # Day 1 arrives and is transformed.
    load(spark, settings, dates=[DAY_1])
    build(settings, run_date=DAY_1)
    assert verify(spark, settings, as_of=DAY_1) == []
    day_1_before = _table_rows(spark, "marts.agg_campaign_daily")

    # Day 2 arrives with late clicks and conversions of day 1, and copies of day 1's clicks: day 1's marts are
    # corrected, the copies are rejected against day 1's kept ids, and day 1's arrivals are not validated again.
    load(spark, settings, dates=[DAY_2])
    day_1_base_files = _base_files(settings, DAY_1)
    assert all(day_1_base_files.values())
    _run_models(settings, DAY_2)
    assert verify(spark, settings, as_of=DAY_2) == []
    assert _base_files(settings, DAY_1) == day_1_base_files
    copies_of_day_1 = spark.sql(
        f"""
        select count(*) from staging.base_tracking__clicks_validated as copy
        inner join staging.base_tracking__clicks_validated as kept
            on copy.click_id = kept.click_id and kept._ingest_date = date'{DAY_1}' and kept.rejection_reason is null
        where copy._ingest_date = date'{DAY_2}' and copy.rejection_reason = 'duplicate_event_id'
        """
    ).first()[0]
    assert copies_of_day_1 > 0, "day 2 carried no copy of a day-1 click: the dedupe across arrivals is untested"
    day_1_after = [row for row in _table_rows(spark, "marts.agg_campaign_daily") if row[-1] == str(DAY_1)]
    assert day_1_after != day_1_before, "day 2 carried no late event for day 1: the test proves nothing"
    # Its data tests pass on the rows it rewrote: each side of a raw = staged + rejected count in the same arrivals.
    _run_models(settings, DAY_2, "test")

    # Loading the same files again is skipped, and rerunning day 2 changes nothing.
    marts_after_day_2 = _marts(spark)
    assert all(r.skipped for r in load(spark, settings, dates=[DAY_1, DAY_2]))
    _run_models(settings, DAY_2)
    assert _marts(spark) == marts_after_day_2

    # Day 3 with no lookback rewrites day 3 only (and day 2 of fct_impressions, whose is_clicked looks one day
    # ahead for clicks); day 1's partitions keep their files.
    load(spark, settings, dates=[DAY_3])
    day_1_files = {mart: _partition_files(settings, mart, DAY_1) for mart in MARTS}
    day_2_files = _partition_files(settings, "fct_impressions", DAY_2)
    assert all(day_1_files.values())
    _run_models(settings, DAY_3, lookback_days=0)
    assert {mart: _partition_files(settings, mart, DAY_1) for mart in MARTS} == day_1_files
    assert _partition_files(settings, "fct_impressions", DAY_2) != day_2_files
    # Its relationships tests read the parents only as far back as an attribution window reaches from day 3: day 3's
    # clicks on day 2's impressions and conversions on earlier clicks pass, so no parent row they need is cut off.
    _run_models(settings, DAY_3, "test", lookback_days=0, select="test_name:relationships")

    # With the default three-day lookback, day 3's run gives the truth as of day 3.
    _run_models(settings, DAY_3)
    assert verify(spark, settings, as_of=DAY_3) == []

    # The freshness test of a run reads only its last days, and still fails when the marts lag: a run for day 5
    # finds fct_impressions two days behind (its failure row stored in ops), a run for day 4 one day, within the limit.
    assert _freshness_failures(settings, spark, run_date=DAY_3 + timedelta(days=2)) == [
        (None, DAY_3 + timedelta(days=2), None)
    ]
    assert _freshness_failures(settings, spark, run_date=DAY_3 + timedelta(days=1)) == []


def _freshness_failures(settings, spark, run_date: date) -> list[tuple]:
    """(latest_date, reference_date, lag_days) of fct_impressions' freshness test run as of run_date."""
    test = "anomaly_freshness_fct_impressions"
    run_dbt(settings, ["test", "--select", test, "--vars", json.dumps({"run_date": run_date.isoformat()})])
    return [tuple(row) for row in spark.sql(f"select latest_date, reference_date, lag_days from ops.{test}").collect()]
