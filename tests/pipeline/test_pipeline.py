"""The whole embedded pipeline at a small scale: generate → load → dbt → verify, and its incremental behaviour."""

from __future__ import annotations

import json
import shutil
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
SCALE = 20_000
MARTS = ("fct_impressions", "fct_clicks", "fct_conversions", "agg_campaign_daily", "agg_rtb_daily")


@pytest.fixture
def empty_warehouse(spark, warehouse_settings):
    """No schema and no landing file left from an earlier test (all tests share one metastore)."""
    for schema in ("raw", "staging", "intermediate", "marts", "reference"):
        spark.sql(f"drop database if exists {schema} cascade")
    for folder in (warehouse_settings.landing_dir, warehouse_settings.ground_truth_dir):
        shutil.rmtree(folder, ignore_errors=True)
    return warehouse_settings


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


def test_the_embedded_pipeline_reproduces_the_ground_truth(spark, empty_warehouse):
    settings = empty_warehouse
    summary = generate(settings.data_dir, days=2, scale=SCALE, seed=7)

    results = load(spark, settings)
    build(settings)  # seeds, models and every dbt test (reconciliation, unit tests)

    assert verify(spark, settings, as_of=DAY_2) == []
    for source in ("impressions", "clicks", "conversions", "bid_requests"):
        loaded = [r for r in results if r.source == source]
        assert sum(r.records_read for r in loaded) == summary.records[source]
        assert sum(r.records_quarantined for r in loaded) == summary.quarantined[source]
    staged = {
        "impressions": "staging.stg_adserver__impressions",
        "clicks": "staging.stg_tracking__clicks",
        "conversions": "staging.stg_tracking__conversions",
        "bid_requests": "staging.stg_rtb__bid_requests",
    }
    for source, model in staged.items():
        assert spark.table(model).count() == summary.staged[source], source
        assert spark.table(f"{model}_rejected").count() == summary.rejected[source], source
    reasons = {r[0] for r in spark.sql("select reason from raw.quarantine_impressions").collect()}
    assert reasons == {"malformed_json", "not_a_json_object"}
    rejected = {
        r[0] for r in spark.sql("select distinct rejection_reason from staging.stg_rtb__bid_requests_rejected").collect()
    }
    assert {"duplicate_event_id", "unknown_campaign", "bid_below_floor", "win_without_bid"} <= rejected


def test_incremental_runs_correct_late_events_and_leave_old_partitions_alone(spark, empty_warehouse):
    settings = empty_warehouse
    generate(settings.data_dir, days=3, scale=SCALE, seed=11)

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

    # Rerunning day 2, after loading the same files again, changes nothing.
    marts_after_day_2 = _marts(spark)
    assert all(r.skipped for r in load(spark, settings, dates=[DAY_1, DAY_2]))
    _run_models(settings, DAY_2)
    assert _marts(spark) == marts_after_day_2

    # Day 3 with a one-day lookback rewrites days 2 and 3 only; day 1's partitions keep their files.
    load(spark, settings, dates=[DAY_3])
    day_1_files = {mart: _partition_files(settings, mart, DAY_1) for mart in MARTS}
    day_2_files = _partition_files(settings, "fct_impressions", DAY_2)
    assert all(day_1_files.values())
    _run_models(settings, DAY_3, lookback_days=1)
    assert {mart: _partition_files(settings, mart, DAY_1) for mart in MARTS} == day_1_files
    assert _partition_files(settings, "fct_impressions", DAY_2) != day_2_files

    # A rebuild of every date gives the truth as of day 3.
    _run_models(settings, DAY_3, lookback_days=3)
    assert verify(spark, settings, as_of=DAY_3) == []
