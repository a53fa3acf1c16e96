"""Parquet modular encryption of the raw zone (ingestion/raw_encryption.py) on the session's built warehouse: every
file of every raw and quarantine table is encrypted and every file dbt built is not; the raw files' bytes hold no
raw user id, which a plaintext copy of the same rows does; DuckDB, a reader without the key, and a Spark session with
another master key cannot read them; and a raw table made before encryption is encrypted from its next write on.

Named to run before test_pseudonyms, whose last test erases a user and so makes the next user of built_warehouse
rebuild it."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys

import duckdb
import pytest
from parquet_footers import footer_kinds, footer_magic, table_folder

from ingestion.raw_encryption import encrypt_from_now_on, raw_parquet_master_key
from ingestion.settings import PROJECT_DIR
from ingestion.sources import SOURCES

pytestmark = pytest.mark.integration

RAW_ZONE_TABLES = [table for source in SOURCES.values() for table in (source.raw_table, source.quarantine_table)]


def _table_dir(settings, table: str):
    return table_folder(settings.data_dir / "lake", table)


def test_every_raw_zone_file_is_encrypted_and_no_built_table_file_is(built_warehouse):
    settings = built_warehouse.settings
    raw_zone = {table: footer_kinds(_table_dir(settings, table)) for table in RAW_ZONE_TABLES}
    built = {
        folder.name: footer_kinds(folder)
        for schema in ("staging", "intermediate", "marts")
        for folder in (settings.data_dir / "lake" / f"{schema}.db").iterdir()
    }

    assert all(raw_zone[source.raw_table]["PARE"] > 0 for source in SOURCES.values()), raw_zone
    assert {table: set(kinds) - {"PARE"} for table, kinds in raw_zone.items()} == dict.fromkeys(RAW_ZONE_TABLES, set())
    assert sum(kinds["PAR1"] for kinds in built.values()) > 20 and not any(kinds["PARE"] for kinds in built.values())


def test_the_raw_files_hold_no_raw_user_id_which_plaintext_parquet_would(spark, built_warehouse, tmp_path):
    settings = built_warehouse.settings
    user_ids = [
        r.user_id for r in spark.sql("select distinct user_id from raw.clicks where user_id like 'u_%'").collect()
    ]
    assert len(user_ids) > 100
    plaintext_copy = tmp_path / "clicks"
    spark.table("raw.clicks").write.parquet(str(plaintext_copy))

    def files_naming_a_user(folder) -> int:
        return sum(any(uid.encode() in path.read_bytes() for uid in user_ids) for path in folder.rglob("*.parquet"))

    assert files_naming_a_user(plaintext_copy) > 0  # the scan finds the ids where Parquet stores them in the clear
    assert files_naming_a_user(_table_dir(settings, "raw.clicks")) == 0


def test_a_reader_without_the_key_cannot_read_raw(built_warehouse):
    settings = built_warehouse.settings
    raw_file = next(_table_dir(settings, "raw.impressions").rglob("*.parquet"))
    built_file = next((settings.data_dir / "lake" / "marts.db" / "fct_impressions").rglob("*.parquet"))

    with pytest.raises(duckdb.Error, match="(?i)encrypt"):
        duckdb.sql(f"select count(*) from read_parquet('{raw_file}')").fetchall()
    assert duckdb.sql(f"select count(*) from read_parquet('{built_file}')").fetchall()[0][0] > 0


def test_a_spark_session_with_another_master_key_cannot_read_raw(built_warehouse):
    """A JVM of its own (in-memory catalog, so the embedded metastore stays with this session), which reads the raw
    files by path with a master key of the right name and length but other bytes."""
    settings = built_warehouse.settings
    wrong_key = base64.b64encode(secrets.token_bytes(32)).decode()
    assert wrong_key != raw_parquet_master_key(settings)
    script = """
import json, os, sys
from pyspark.sql import SparkSession
from ingestion.raw_encryption import raw_encryption_conf
from ingestion.settings import LOOPBACK_ONLY_ENV, Settings
from ingestion.spark import spark_conf
os.environ.update(LOOPBACK_ONLY_ENV)
settings = Settings(data_dir=sys.argv[1], raw_parquet_key=sys.argv[2])
builder = SparkSession.builder
for key, value in (spark_conf(settings, hive=False) | raw_encryption_conf(settings)).items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
try:
    print(json.dumps({"rows": spark.read.parquet(sys.argv[3]).count()}))
except Exception as error:
    print(json.dumps({"error": str(error)}))
"""
    scratch = settings.data_dir.parent / f"{settings.data_dir.name}-wrong-key"
    completed = subprocess.run(
        [sys.executable, "-c", script, str(scratch), wrong_key, str(_table_dir(settings, "raw.impressions"))],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_DIR,
        check=True,
    )

    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "rows" not in outcome
    assert "GCM tag check failed" in outcome["error"] + completed.stderr, outcome


def test_a_raw_table_made_before_encryption_is_encrypted_from_its_next_write(spark, built_warehouse, tmp_path):
    settings = built_warehouse.settings
    spark.sql("create database if not exists encryption_upgrade_test")
    table = "encryption_upgrade_test.legacy_raw"
    try:
        spark.createDataFrame([("u_1", 1)], "user_id string, part int").write.format("parquet").partitionBy(
            "part"
        ).saveAsTable(table)
        encrypt_from_now_on(spark, table, settings)
        encrypt_from_now_on(spark, table, settings)  # a second call finds the option and changes nothing
        spark.createDataFrame([("u_2", 2)], "user_id string, part int").write.insertInto(table)

        folder = settings.data_dir / "lake" / "encryption_upgrade_test.db" / "legacy_raw"
        magics = {path.parent.name: footer_magic(path) for path in folder.rglob("*.parquet")}
        assert magics == {"part=1": "PAR1", "part=2": "PARE"}
        assert sorted(row.user_id for row in spark.table(table).collect()) == ["u_1", "u_2"]
        assert spark.sql(f"show create table {table}").first()[0].count("parquet.encryption.uniform.key") == 1
    finally:
        spark.sql("drop database if exists encryption_upgrade_test cascade")
