"""The single-machine peer of `make bench`: DuckDB running the dbt project's own transformation SQL over the same raw
Parquet files and seed CSVs.

The SQL is what dbt compiled for the full build (target/manifest.json), transpiled from Spark SQL to DuckDB by
sqlglot, and run model after model in dependency order: views stay views, tables and incremental marts become
tables, and the marts are also written out as Parquet partitioned like the lake's. No tests run (dbt's build time
includes its tests; the report shows both). Timed from connecting to the last file written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.mart_aggregates import mart_aggregates

RAW_TABLES = ("impressions", "clicks", "conversions", "bid_requests")


def model_order(manifest: dict) -> list[dict]:
    """The models and seeds of this project, each after everything it depends on."""
    project = manifest["metadata"]["project_name"]
    nodes = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed") and node["package_name"] == project
    }
    ordered: list[dict] = []
    placed: set[str] = set()

    def place(uid: str) -> None:
        if uid in placed or uid not in nodes:
            return
        for parent in nodes[uid]["depends_on"].get("nodes", []):
            place(parent)
        placed.add(uid)
        ordered.append(nodes[uid])

    for uid in sorted(nodes):
        place(uid)
    return ordered


def duckdb_type(spark_type: str) -> str:
    import sqlglot

    return sqlglot.exp.DataType.build(spark_type, dialect="spark").sql("duckdb")


def _spark_functions_for_duckdb(node):
    """Spark functions sqlglot passes through unchanged, rewritten to their DuckDB equivalents."""
    import sqlglot
    from sqlglot import exp

    if not isinstance(node, exp.Anonymous):
        return node
    name = node.name.lower()
    if name == "try_to_timestamp" and len(node.expressions) == 1:
        # ISO 8601 with or without an offset; without one, the session time zone (UTC in both engines).
        text = node.expressions[0].sql("duckdb")
        return sqlglot.parse_one(f"cast(try_cast({text} as timestamptz) as timestamp)", read="duckdb")
    if name == "raise_error" and len(node.expressions) == 1:
        return sqlglot.parse_one(f"error({node.expressions[0].sql('duckdb')})", read="duckdb")
    if name == "make_dt_interval" and len(node.expressions) == 2:
        days, hours = (argument.sql("duckdb") for argument in node.expressions)
        return sqlglot.parse_one(f"(to_days({days}) + to_hours({hours}))", read="duckdb")
    return node


def transpile(spark_sql: str, session_conf: dict[str, str] | None = None) -> str:
    """One Spark SQL statement in DuckDB's dialect, with the ${key} references to Spark's session configuration
    (the pseudonymisation pads) substituted as Spark would."""
    import sqlglot

    for key, value in (session_conf or {}).items():
        spark_sql = spark_sql.replace("${" + key + "}", value)
    statements = sqlglot.parse(spark_sql, read="spark")
    if len(statements) != 1:
        raise ValueError(f"expected one statement, sqlglot parsed {len(statements)}")
    return statements[0].transform(_spark_functions_for_duckdb).sql("duckdb")


def _seed_sql(node: dict, project_dir: Path) -> str:
    path = project_dir / node["original_file_path"]
    types = node["config"].get("column_types") or {}
    columns = ", ".join(f"'{name}': '{duckdb_type(spark_type)}'" for name, spark_type in types.items())
    return f"select * from read_csv('{path}', header = true, columns = {{{columns}}})"


def run(
    lake_dir: Path,
    manifest_path: Path,
    project_dir: Path,
    work_dir: Path,
    threads: int,
    memory_limit: str,
    session_conf: dict[str, str],
) -> dict:
    """Build every model in DuckDB; return the seconds it took, the marts' aggregates and DuckDB's version.
    session_conf: the Spark session settings the SQL refers to (ingestion.pseudonyms.pseudonym_session_conf)."""
    import duckdb

    manifest = json.loads(manifest_path.read_text())
    order = model_order(manifest)
    work_dir.mkdir(parents=True, exist_ok=True)
    output_dir = work_dir / "marts_parquet"
    output_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    con = duckdb.connect(str(work_dir / "warehouse.duckdb"))
    con.execute(f"set threads = {threads}")
    con.execute(f"set memory_limit = '{memory_limit}'")
    con.execute(f"set temp_directory = '{work_dir / 'spill'}'")
    con.execute("set preserve_insertion_order = false")
    con.execute("set TimeZone = 'UTC'")
    for schema in ("raw", "reference", "staging", "intermediate", "marts"):
        con.execute(f"create schema if not exists {schema}")
    for table in RAW_TABLES:
        files = lake_dir / "raw.db" / table / "*" / "*" / "*.parquet"
        con.execute(
            f"create or replace view raw.{table} as select * from read_parquet('{files}', hive_partitioning = true, "
            "hive_types = {'_ingest_date': date, '_batch_id': varchar})"
        )
    for node in order:
        relation = node["relation_name"]
        if node["resource_type"] == "seed":
            con.execute(f"create or replace table {relation} as {_seed_sql(node, project_dir)}")
            continue
        kind = "view" if node["config"]["materialized"] == "view" else "table"
        con.execute(f"create or replace {kind} {relation} as {transpile(node['compiled_code'], session_conf)}")
        partition_by = node["config"].get("partition_by")
        if relation.startswith("marts.") and partition_by:
            columns = ", ".join([partition_by] if isinstance(partition_by, str) else partition_by)
            con.execute(
                f"copy {relation} to '{output_dir / node['name']}' "
                f"(format parquet, partition_by ({columns}), overwrite_or_ignore true)"
            )
    seconds = time.perf_counter() - started

    aggregates = mart_aggregates(lambda query: con.execute(query).fetchall(), "marts", dialect="duckdb")
    con.close()
    return {"seconds": seconds, "models": len(order), "duckdb_version": duckdb.__version__, "aggregates": aggregates}
