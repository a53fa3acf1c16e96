"""Right to erasure: a user's rows, named by raw user id, removed from the raw and quarantine tables, and by their
pseudonym (ingestion/pseudonyms.py) from every table dbt built (staging base tables, intermediate tables, marts,
dim_users). Views need nothing: they read those tables. Each removal is logged in ops.erasure_log by pseudonym,
never by raw id.

The tables are plain Parquet, with no row-level DELETE: a table loses a user's rows by rewriting the partitions that
hold them (dynamic partition overwrite replaces exactly those), and a partition that held nothing else is dropped.
An unpartitioned table is rewritten whole. Later runs cannot bring the rows back: the loader skips a batch it has
loaded (the landing files are unchanged), and dbt rebuilds from the erased raw tables.

Not covered: the landing files and Kafka topics (they age out with their own retention), the campaign aggregates
(counts with no user in them), and the seeds in git (the synthetic demographics seed still names the user;
dim_users is erased, but its next build restores the row until the seed is edited).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import SparkSession

from ingestion.pseudonyms import pseudonym
from ingestion.settings import Settings
from ingestion.sources import SOURCES

# The user id of each raw table, as staging reads it.
RAW_USER_ID = {"impressions": "user_id", "clicks": "user_id", "conversions": "user_id", "bid_requests": "`user`.id"}
BUILT_SCHEMAS = ("staging", "intermediate", "marts")
ERASURE_LOG = "ops.erasure_log"
# Characters that may belong to an id: a quarantined payload names the user where the id stands between others.
_ID_CHARACTER = "A-Za-z0-9_.@-"


@dataclass(frozen=True)
class Removal:
    table: str
    rows: int


def erase_users(spark: SparkSession, settings: Settings, raw_user_ids: list[str]) -> list[Removal]:
    """Remove the users' rows everywhere they live in the warehouse; return the rows removed per table."""
    raw_ids = sorted({raw_id.strip() for raw_id in raw_user_ids if raw_id.strip()})
    if not raw_ids:
        raise ValueError("no user id to erase")
    pseudonyms = [pseudonym(settings, raw_id) for raw_id in raw_ids]
    raw_list = _sql_strings(raw_ids)
    pseudonym_list = _sql_strings(pseudonyms)
    id_pattern = "|".join(re.escape(raw_id) for raw_id in raw_ids)
    payload_names_user = f"payload rlike '(^|[^{_ID_CHARACTER}])({_sql_escape(id_pattern)})($|[^{_ID_CHARACTER}])'"

    targets = [(source.raw_table, f"trim({RAW_USER_ID[name]}) in ({raw_list})") for name, source in SOURCES.items()]
    targets += [(source.quarantine_table, payload_names_user) for source in SOURCES.values()]
    targets += [(table, f"user_id in ({pseudonym_list})") for table in built_tables_with_user_id(spark)]
    removals = [Removal(table, _remove_rows(spark, table, predicate)) for table, predicate in targets]
    _log(spark, pseudonyms, removals)
    return removals


def built_tables_with_user_id(spark: SparkSession) -> list[str]:
    """The tables (not views) of staging, intermediate and marts with a user_id column."""
    existing = {row.namespace for row in spark.sql("show databases").collect()}
    return [
        f"{schema}.{table.name}"
        for schema in BUILT_SCHEMAS
        if schema in existing
        for table in spark.catalog.listTables(schema)
        if table.tableType != "VIEW"
        and not table.isTemporary
        and any(column.name == "user_id" for column in spark.catalog.listColumns(table.name, schema))
    ]


def _remove_rows(spark: SparkSession, table: str, predicate: str) -> int:
    """Rewrite table without the rows matching predicate; return how many there were."""
    from pyspark.sql import functions as F

    matching = F.coalesce(F.expr(predicate), F.lit(False))
    frame = spark.table(table)
    columns = frame.columns
    partition_columns = [c.name for c in spark.catalog.listColumns(table) if c.isPartition]
    if not partition_columns:
        removed = frame.where(matching).count()
        if removed:
            # Materialised first: Spark refuses to overwrite an unpartitioned table with a query that reads it.
            frame.where(~matching).localCheckpoint().write.insertInto(table, overwrite=True)
            spark.catalog.refreshTable(table)
        return removed

    affected = (
        frame.groupBy(*partition_columns)
        .agg(F.count("*").alias("rows"), F.sum(matching.cast("long")).alias("matching"))
        .where("matching > 0")
        .collect()
    )
    for partition in affected:
        if partition.rows == partition.matching:
            spec = ", ".join(f"{column} = '{partition[column]}'" for column in partition_columns)
            spark.sql(f"alter table {table} drop if exists partition ({spec})")
    rewritten = [p for p in affected if p.rows > p.matching]
    if rewritten:
        in_rewritten = reduce(
            operator.or_,
            (reduce(operator.and_, (F.col(c) == F.lit(p[c]) for c in partition_columns)) for p in rewritten),
        )
        frame.where(in_rewritten & ~matching).select(*columns).write.insertInto(table, overwrite=True)
    spark.catalog.refreshTable(table)
    return sum(p.matching for p in affected)


def _log(spark: SparkSession, pseudonyms: list[str], removals: list[Removal]) -> None:
    spark.sql("create database if not exists ops")
    spark.sql(
        f"create table if not exists {ERASURE_LOG} "
        "(erased_at timestamp, pseudonyms array<string>, table_name string, rows_removed bigint) using parquet"
    )
    erased_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = [(erased_at, pseudonyms, removal.table, removal.rows) for removal in removals]
    spark.createDataFrame(
        rows, "erased_at timestamp, pseudonyms array<string>, table_name string, rows_removed bigint"
    ).write.insertInto(ERASURE_LOG)


def _sql_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _sql_strings(values: list[str]) -> str:
    return ", ".join(f"'{_sql_escape(value)}'" for value in values)
