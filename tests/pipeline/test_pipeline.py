"""The whole embedded pipeline at a small scale: generate → load → dbt build → verify, and the CLI on it."""

from __future__ import annotations

import csv
import json
from datetime import date

import pytest
from click.testing import CliRunner

from ingestion.cli import main as adx
from ingestion.settings import PROJECT_DIR
from ingestion.verify import verify

pytestmark = pytest.mark.integration

DAY_2 = date(2026, 11, 2)
STAGED = {
    "impressions": "staging.stg_adserver__impressions",
    "clicks": "staging.stg_tracking__clicks",
    "conversions": "staging.stg_tracking__conversions",
    "bid_requests": "staging.stg_rtb__bid_requests",
}


@pytest.fixture
def built(built_warehouse):
    """The session's built warehouse (tests/conftest.py) as (settings, load results, generator manifest)."""
    return built_warehouse.settings, built_warehouse.results, built_warehouse.manifest


def test_marts_reproduce_the_ground_truth(spark, built):
    settings, _, _ = built
    assert verify(spark, settings, as_of=DAY_2) == []


def _latest_invocation(spark, command: str) -> list:
    """Nodes of the latest dbt invocation of `command` in ops.dbt_run_results, by resource type and status."""
    return spark.sql(
        f"""
        select resource_type, status, count(*) as nodes, min(execution_seconds) as fastest, count(distinct command)
            as commands
        from ops.dbt_run_results
        where invocation_id = (
            select max_by(invocation_id, run_started_at) from ops.dbt_run_results where command = '{command}'
        )
        group by resource_type, status
        """
    ).collect()


def test_the_build_recorded_every_node_in_ops_run_results(spark, built):
    """The on-run-end hook wrote one row per node of the build: what ran, how it ended, how long it took. The
    build runs the data tests and leaves the unit tests out (ingestion/transform.py)."""
    latest = _latest_invocation(spark, "build")
    by_kind = {(row.resource_type, row.status): row.nodes for row in latest}
    project = json.loads((PROJECT_DIR / "target" / "manifest.json").read_text())
    models = sum(1 for node in project["nodes"].values() if node["resource_type"] == "model")
    tests = sum(1 for node in project["nodes"].values() if node["resource_type"] == "test")
    assert by_kind == {("seed", "success"): 5, ("model", "success"): models, ("test", "pass"): tests}
    assert all(row.fastest > 0 and row.commands == 1 for row in latest)
    anomaly_tests = spark.sql(
        "select count(*) from ops.dbt_run_results where tags like '%anomaly%' and status = 'pass'"
    ).first()[0]
    assert anomaly_tests >= 14  # two days of history: nothing to flag, and every anomaly test ran


def test_the_unit_tests_ran_after_the_build_and_passed(spark, built):
    """built_warehouse runs `dbt test --resource-type unit_test` after the build: every unit test, nothing else."""
    project = json.loads((PROJECT_DIR / "target" / "manifest.json").read_text())
    assert len(project["unit_tests"]) == 5
    by_kind = {(row.resource_type, row.status): row.nodes for row in _latest_invocation(spark, "test")}
    assert by_kind == {("unit_test", "pass"): 5}


def test_every_bad_record_is_quarantined_or_rejected_with_its_reason(spark, built):
    _, results, manifest = built
    for source, model in STAGED.items():
        expected = manifest["sources"][source]
        loaded = [r for r in results if r.source == source]
        assert sum(r.records_read for r in loaded) == expected["records"], source
        assert sum(r.records_quarantined for r in loaded) == expected["quarantined"], source
        quarantine_reasons = dict(
            spark.sql(f"select reason, count(*) from raw.quarantine_{source} group by reason").collect()
        )
        assert quarantine_reasons == expected["quarantine_reasons"], source
        assert spark.table(model).count() == expected["staged"], source
        rejected_reasons = dict(
            spark.sql(f"select rejection_reason, count(*) from {model}_rejected group by rejection_reason").collect()
        )
        assert rejected_reasons == expected["staging_rejects"], source
    all_reasons = {r for s in manifest["sources"].values() for r in s["staging_rejects"]}
    assert {"duplicate_event_id", "invalid_timestamp", "unknown_campaign", "invalid_amount"} <= all_reasons
    assert {"bid_below_floor", "win_without_bid", "clearing_price_above_bid", "negative_floor"} <= all_reasons


def test_verify_names_the_differing_cell_and_exits_non_zero(spark, built, monkeypatch):
    settings, _, _ = built
    truth = settings.ground_truth_dir / f"as_of={DAY_2}" / "campaign_daily.csv"
    original = truth.read_text()
    rows = list(csv.DictReader(original.splitlines()))
    rows[0]["clicks"] = str(int(rows[0]["clicks"]) + 1)
    try:
        with truth.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        differences = verify(spark, settings, as_of=DAY_2)
        assert [(d.key, d.column) for d in differences] == [((rows[0]["event_date"], rows[0]["campaign_id"]), "clicks")]

        monkeypatch.setenv("ADX_DATA_DIR", str(settings.data_dir))
        result = CliRunner().invoke(adx, ["verify", "--as-of", str(DAY_2)])
        assert result.exit_code == 1
        assert f"clicks: expected {rows[0]['clicks']}" in result.output
    finally:
        truth.write_text(original)
    assert CliRunner().invoke(adx, ["verify", "--as-of", str(DAY_2)]).exit_code == 0


def test_adx_sql_prints_a_table_or_csv(built, monkeypatch):
    settings, _, _ = built
    monkeypatch.setenv("ADX_DATA_DIR", str(settings.data_dir))
    query = "select campaign_id, sum(impressions) as impressions from marts.agg_campaign_daily group by 1 order by 1"

    as_csv = CliRunner().invoke(adx, ["sql", query, "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0] == "campaign_id,impressions" and lines[1].startswith("cmp_001,")

    as_table = CliRunner().invoke(adx, ["sql", query])
    assert as_table.exit_code == 0
    assert as_table.stdout.splitlines()[0].split() == ["campaign_id", "impressions"]

    broken = CliRunner().invoke(adx, ["sql", "select * from marts.no_such_table"])
    assert broken.exit_code == 1 and "query failed" in broken.output
