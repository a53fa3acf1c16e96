"""Writes one micro-batch of a streaming lander into the raw and quarantine tables, exactly once.

Spark Structured Streaming records a micro-batch's input (Kafka offsets, or the files it picked up) in the
checkpoint before running it, and replays exactly that input when the process died before the batch was
committed. Each micro-batch therefore gets its own `_batch_id` sub-partition, named after the query and the
batch number, and writing it replaces that sub-partition (dynamic partition overwrite): a replay overwrites
what a killed attempt left behind instead of adding to it. Records read must equal landed + quarantined.
"""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ingestion.loader import ReconciliationError, ensure_raw_tables, with_load_metadata
from ingestion.sources import Source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from ingestion.settings import Settings

STREAM_BATCHES_TABLE = "raw.stream_batches"
# Fault injection for the exactly-once tests: "<point>:<batch number>" kills this process with SIGKILL there.
FAILPOINT_VARIABLE = "ADX_STREAM_FAILPOINT"


@dataclass(frozen=True)
class StreamBatchResult:
    query: str
    batch_number: int
    batch_id: str
    source: str
    records_read: int
    records_landed: int
    records_quarantined: int
    input_description: str
    # Arrival dates (`_ingest_date`, YYYY-MM-DD) of the partitions this micro-batch wrote; not in the audit table.
    ingest_dates: tuple[str, ...] = ()


def ensure_stream_tables(spark: SparkSession, settings: Settings) -> None:
    ensure_raw_tables(spark, settings)
    _retire_unpartitioned_audit(spark)
    spark.sql(
        f"""
        create table if not exists {STREAM_BATCHES_TABLE} (
            query string, batch_number bigint, source string, records_read bigint, records_landed bigint,
            records_quarantined bigint, input_description string, loaded_at timestamp, batch_id string
        ) using parquet
        partitioned by (batch_id)
        comment 'One row per streaming micro-batch: its last committed attempt (a replay replaces the row)'
        """
    )


def _retire_unpartitioned_audit(spark: SparkSession) -> None:
    """Rename the audit table of the first layout (one unpartitioned table, appended to) out of the way.

    Appends to one table folder from concurrent jobs (the landers of several sources) share the folder's
    `_temporary` directory, and one job's commit deletes it under the others: on HDFS they failed. The audit is now
    partitioned by batch_id and each row written with dynamic partition overwrite, whose staging folder is the
    job's own. The old rows stay readable as raw.stream_batches_unpartitioned."""
    if not spark.catalog.tableExists(STREAM_BATCHES_TABLE):
        return
    partition_columns = [c.name for c in spark.catalog.listColumns(STREAM_BATCHES_TABLE) if c.isPartition]
    if partition_columns != ["batch_id"]:
        spark.sql(f"alter table {STREAM_BATCHES_TABLE} rename to {STREAM_BATCHES_TABLE}_unpartitioned")


def stream_batch_id(query: str, batch_number: int) -> str:
    return f"{query}-{batch_number:010d}"


def write_stream_batch(
    spark: SparkSession,
    source: Source,
    query: str,
    batch_number: int,
    landed: DataFrame,
    quarantined: DataFrame,
    records_read: int,
    input_description: str,
) -> StreamBatchResult:
    """Replace this micro-batch's sub-partitions with `landed` and `quarantined` (each with `_ingest_date`)."""
    batch_id = stream_batch_id(query, batch_number)
    loaded_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    failpoint(f"before_write:{batch_number}")
    _replace(spark, source.raw_table, with_load_metadata(landed, batch_id, loaded_at))
    failpoint(f"after_raw_write:{batch_number}")
    _replace(spark, source.quarantine_table, with_load_metadata(quarantined, batch_id, loaded_at))
    failpoint(f"after_quarantine_write:{batch_number}")

    landed_by_date = _count_by_ingest_date(spark, source.raw_table, batch_id)
    quarantined_by_date = _count_by_ingest_date(spark, source.quarantine_table, batch_id)
    result = StreamBatchResult(
        query=query,
        batch_number=batch_number,
        batch_id=batch_id,
        source=source.name,
        records_read=records_read,
        records_landed=sum(landed_by_date.values()),
        records_quarantined=sum(quarantined_by_date.values()),
        input_description=input_description,
        ingest_dates=tuple(sorted(landed_by_date.keys() | quarantined_by_date.keys())),
    )
    if result.records_read != result.records_landed + result.records_quarantined:
        raise ReconciliationError(
            f"{query} batch {batch_number}: read {result.records_read} records but landed "
            f"{result.records_landed} and quarantined {result.records_quarantined}"
        )
    audit_row = {**asdict(result), "loaded_at": loaded_at}
    del audit_row["ingest_dates"]
    table_schema = spark.table(STREAM_BATCHES_TABLE).schema
    row_schema = type(table_schema)([table_schema[name] for name in audit_row])
    _replace(spark, STREAM_BATCHES_TABLE, spark.createDataFrame([tuple(audit_row.values())], row_schema))
    failpoint(f"after_audit:{batch_number}")
    return result


def failpoint(name: str) -> None:
    """Die here, as `kill -9` would, when the fault-injection variable names this point."""
    if os.environ.get(FAILPOINT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _replace(spark: SparkSession, table: str, frame: DataFrame) -> None:
    """Overwrite the partitions present in `frame` (dynamic partition overwrite), matching columns by name."""
    frame.select(*spark.table(table).columns).write.mode("overwrite").insertInto(table)


def _count_by_ingest_date(spark: SparkSession, table: str, batch_id: str) -> dict[str, int]:
    rows = spark.sql(
        f"select cast(_ingest_date as string), count(*) from {table} where _batch_id = '{batch_id}' group by 1"
    ).collect()
    return {ingest_date: count for ingest_date, count in rows}
