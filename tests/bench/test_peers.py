"""The bench's peers compute dbt's marts: the hand-written PySpark job and DuckDB running the compiled SQL give the
same aggregates as the dbt build of the shared test warehouse (2 days x 20,000 impressions), so a peer whose rules
drift from the models' fails here, not silently in `make bench`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from bench import duckdb_peer, pyspark_peer
from bench.mart_aggregates import differences, mart_aggregates
from ingestion.loader import RAW_PARTITION_COLUMNS
from ingestion.pseudonyms import pseudonym, pseudonym_pads, pseudonym_session_conf
from ingestion.settings import PROJECT_DIR
from ingestion.transform import run_dbt

pytestmark = pytest.mark.integration


@pytest.fixture
def dbt_aggregates(spark, built_warehouse) -> dict:
    return mart_aggregates(lambda query: spark.sql(query).collect(), "marts")


def test_the_pyspark_job_builds_the_marts_of_dbt(spark, built_warehouse, dbt_aggregates):
    try:
        pads = pseudonym_pads(built_warehouse.settings)
        pyspark_peer.build_marts(spark, PROJECT_DIR / "seeds", **pyspark_peer.project_config(), pads=pads)
        peer = mart_aggregates(lambda query: spark.sql(query).collect(), pyspark_peer.DATABASE)
    finally:
        spark.sql(f"drop database if exists {pyspark_peer.DATABASE} cascade")  # leave the shared lake as it was
    assert sum(len(rows) for rows in dbt_aggregates.values()) > 100
    assert differences(dbt_aggregates, peer) == []


def test_the_pyspark_job_pseudonymises_user_ids_as_staging_does(spark, warehouse_settings):
    pads = pseudonym_pads(warehouse_settings)
    ids = ["u_0001", " u_0002 ", "usér"]
    rows = spark.createDataFrame([(user_id,) for user_id in ids], "user_id string").select(
        pyspark_peer._pseudonym(F.trim("user_id"), pads).alias("pseudonym")
    )
    assert [row.pseudonym for row in rows.collect()] == [pseudonym(warehouse_settings, user_id) for user_id in ids]


def test_duckdb_running_the_compiled_sql_builds_the_marts_of_dbt(spark, built_warehouse, dbt_aggregates, tmp_path):
    settings = built_warehouse.settings
    run_dbt(settings, ["compile", "--vars", json.dumps({"run_date": None})])
    result = duckdb_peer.run(
        _plaintext_raw_copy(spark, tmp_path / "lake"),
        PROJECT_DIR / "target" / "manifest.json",
        PROJECT_DIR,
        tmp_path,
        threads=2,
        memory_limit="2GB",
        session_conf=pseudonym_session_conf(settings),
    )
    assert result["models"] >= 20
    assert differences(dbt_aggregates, result["aggregates"]) == []


def _plaintext_raw_copy(spark, lake_dir: Path) -> Path:
    """The shared warehouse's raw tables, decrypted by Spark into a lake of plain Parquet files that DuckDB can
    read (the raw zone is encrypted: ingestion/raw_encryption.py; `make bench` builds it unencrypted instead)."""
    for table in duckdb_peer.RAW_TABLES:
        spark.table(f"raw.{table}").write.partitionBy(*RAW_PARTITION_COLUMNS).parquet(str(lake_dir / "raw.db" / table))
    return lake_dir
