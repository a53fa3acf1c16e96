"""Incremental marts: late events re-attribute within the lookback, reruns change nothing, older partitions stay."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from ingestion.generator import generate
from ingestion.loader import load
from ingestion.transform import build, run_dbt
from ingestion.verify import verify

pytestmark = pytest.mark.integration

DAY_1 = date(2026, 11, 1)
DAY_2 = DAY_1 + timedelta(days=1)
DAY_3 = DAY_1 + timedelta(days=2)
MARTS = ("fct_impressions", "fct_clicks", "fct_conversions", "agg_campaign_daily", "agg_rtb_daily")


def _table_rows(spark, table: str) -> list[tuple]:
    return sorted(tuple(map(str, row)) for row in spark.table(table).collect())


def _marts(spark) -> dict[str, list[tuple]]:
    return {mart: _table_rows(spark, f"marts.{mart}") for mart in MARTS}


def _partition_files(settings, mart: str, day: date) -> dict[str, int]:
    """Data files of one date partition (and its campaign sub-partitions) with their modification times."""
    folder = Path(settings.resolved_lake_uri) / "marts.db" / mart / f"event_date={day}"
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.parquet")}


def _run_models(settings, run_date: date, **extra_vars) -> None:
    run_dbt(settings, ["run", "--vars", json.dumps({"run_date": run_date.isoformat(), **extra_vars})])


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

    # Day 2 arrives with late clicks and conversions of day 1: day 1's marts are corrected.
    load(spark, settings, dates=[DAY_2])
    _run_models(settings, DAY_2)
    assert verify(spark, settings, as_of=DAY_2) == []
    day_1_after = [row for row in _table_rows(spark, "marts.agg_campaign_daily") if row[-1] == str(DAY_1)]
    assert day_1_after != day_1_before, "day 2 carried no late event for day 1: the test proves nothing"

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

    # With the default three-day lookback, day 3's run gives the truth as of day 3.
    _run_models(settings, DAY_3)
    assert verify(spark, settings, as_of=DAY_3) == []
