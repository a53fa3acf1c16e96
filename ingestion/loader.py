"""Spark loader: lands each arrival date of each source in its raw table, quarantining what cannot be parsed.

The unit of work is a batch: every file of one source that arrived on one date (one `dt=` folder). A batch
replaces its `_ingest_date` partition in the raw and quarantine tables, so loading it again gives the same
tables, and a batch whose files are unchanged since its last load is skipped. Records read are counted from
the files themselves and must equal landed + quarantined, or the load fails.

Raw and quarantine tables are partitioned by `_ingest_date`, then `_batch_id`: the streaming landers
(ingestion.streaming) write one sub-partition per micro-batch and replace it when Spark replays that micro-batch
after a crash, which is what makes them exactly-once. The parsers below are shared with them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import fastavro

from ingestion.raw_encryption import encrypt_from_now_on, raw_table_options
from ingestion.settings import Settings
from ingestion.sources import AVRO_SCHEMA_PATH, SOURCES, Source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOAD_BATCHES_TABLE = "raw.load_batches"
QUARANTINE_SCHEMA = "_source_file string, payload string, reason string"
RAW_PARTITION_COLUMNS = ("_ingest_date", "_batch_id")
DT_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


class ReconciliationError(RuntimeError):
    """Records read from the files differ from records landed plus quarantined."""


@dataclass(frozen=True)
class Batch:
    source: Source
    ingest_date: date
    files: tuple[Path, ...]

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(path.name.encode())
            digest.update(file_sha256(path).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class BatchResult:
    source: str
    ingest_date: date
    batch_id: str
    files: int
    records_read: int
    records_landed: int
    records_quarantined: int
    skipped: bool

    @property
    def reconciled(self) -> bool:
        return self.records_read == self.records_landed + self.records_quarantined


def find_batches(settings: Settings, source: Source, dates: Iterable[date] | None = None) -> list[Batch]:
    """Batches waiting in the landing folder of one source, oldest first."""
    wanted = set(dates) if dates is not None else None
    root = settings.landing_dir / source.landing_subdir
    batches = []
    for folder in sorted(root.glob("dt=*")) if root.is_dir() else []:
        match = DT_FOLDER.match(folder.name)
        if not match:
            continue
        ingest_date = date.fromisoformat(match.group(1))
        files = tuple(sorted(folder.glob(source.file_glob)))
        if files and (wanted is None or ingest_date in wanted):
            batches.append(Batch(source, ingest_date, files))
    return batches


def load(
    spark: SparkSession,
    settings: Settings,
    source_names: Iterable[str] | None = None,
    dates: Iterable[date] | None = None,
) -> list[BatchResult]:
    """Load every waiting batch of the given sources (default: all) and dates (default: all)."""
    ensure_raw_tables(spark, settings)
    dates = list(dates) if dates is not None else None
    results = []
    for name in source_names or SOURCES:
        for batch in find_batches(settings, SOURCES[name], dates):
            results.append(load_batch(spark, batch))
    return results


def load_batch(spark: SparkSession, batch: Batch) -> BatchResult:
    source = batch.source
    fingerprint = batch.fingerprint
    batch_id = fingerprint[:16]
    previous = _previous_load(spark, source.name, batch.ingest_date)
    if previous is not None and previous["fingerprint"] == fingerprint:
        return BatchResult(
            source=source.name,
            ingest_date=batch.ingest_date,
            batch_id=previous["batch_id"],
            files=previous["files"],
            records_read=previous["records_read"],
            records_landed=previous["records_landed"],
            records_quarantined=previous["records_quarantined"],
            skipped=True,
        )

    loaded_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    readers = {"json_lines": _read_json_lines, "csv": _read_csv, "avro": _read_avro}
    landed, quarantined, records_read = readers[source.file_format](spark, batch)
    for table, frame in ((source.raw_table, landed), (source.quarantine_table, quarantined)):
        _replace_partition(spark, table, with_load_metadata(frame, batch_id, loaded_at), batch.ingest_date)

    result = BatchResult(
        source=source.name,
        ingest_date=batch.ingest_date,
        batch_id=batch_id,
        files=len(batch.files),
        records_read=records_read,
        records_landed=_partition_count(spark, source.raw_table, batch.ingest_date),
        records_quarantined=_partition_count(spark, source.quarantine_table, batch.ingest_date),
        skipped=False,
    )
    if not result.reconciled:
        raise ReconciliationError(
            f"{source.name} {batch.ingest_date}: read {result.records_read} records but landed "
            f"{result.records_landed} and quarantined {result.records_quarantined}"
        )
    _record_batch(spark, result, fingerprint, loaded_at)
    return result


# --- readers: each returns (landed rows, quarantined rows, records read counted from the files) ---


def _read_json_lines(spark: SparkSession, batch: Batch) -> tuple[DataFrame, DataFrame, int]:
    landed, quarantined = parse_json_lines(_read_lines(spark, batch), batch.source)
    records_read = sum(count_lines(path, skip_header=False) for path in batch.files)
    return landed, quarantined, records_read


def parse_json_lines(lines: DataFrame, source: Source) -> tuple[DataFrame, DataFrame]:
    """Split JSON lines (`payload`, `_source_file`, `_ingest_date`) into landed rows (the source's columns, as
    strings) and quarantined rows with a reason."""
    from pyspark.sql import functions as F

    parsed = lines.withColumn("_json", F.expr("try_parse_json(payload)")).withColumn(
        "_reason",
        F.when(F.col("_json").isNull(), F.lit("malformed_json"))
        .when(~F.ltrim("payload").startswith("{"), F.lit("not_a_json_object"))
        .otherwise(F.lit(None).cast("string")),
    )
    landed = parsed.where(F.col("_reason").isNull()).select(
        *[F.expr(f"variant_get(_json, '$.{column}', 'string')").alias(column) for column in source.columns],
        "_source_file",
        "_ingest_date",
    )
    return landed, _quarantined(parsed)


def _read_csv(spark: SparkSession, batch: Batch) -> tuple[DataFrame, DataFrame, int]:
    headers = {path.name: first_line(path) for path in batch.files}
    landed, quarantined = parse_csv_lines(_read_lines(spark, batch), batch.source, headers)
    records_read = sum(count_lines(path, skip_header=True) for path in batch.files)
    return landed, quarantined, records_read


def parse_csv_lines(
    lines: DataFrame, source: Source, headers: dict[str, str], file_column: str = "_source_file"
) -> tuple[DataFrame, DataFrame]:
    """Split CSV lines (`payload`, `_source_file`, `_ingest_date`) into landed rows and quarantined rows with a
    reason. `headers` holds the first line of every file the lines come from, keyed like `file_column`."""
    from pyspark.sql import functions as F

    columns = source.columns
    expected_header = ",".join(columns)
    unexpected = [name for name, header in headers.items() if header != expected_header]
    records = (
        lines.where(F.trim("payload") != "")
        # Every file's first line is its header; a row identical to it is a repeated header, not a record.
        .where(~F.col("payload").isin(list(set(headers.values()))))
    )
    schema = ", ".join(f"{c} string" for c in (*columns, "_corrupt_record"))
    # RFC 4180: a quote inside a quoted field is doubled (Spark escapes with a backslash by default).
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record", "escape": '"'}
    parsed = records.select(
        "payload",
        "_source_file",
        "_ingest_date",
        F.col(file_column).alias("_file"),
        F.from_csv("payload", schema, options).alias("row"),
    ).withColumn(
        "_reason",
        # A file whose header is not the expected one cannot be mapped to columns: all of its rows wait in
        # quarantine for a person to look at the tracking system's export.
        F.when(F.col("_file").isin(unexpected), F.lit("unexpected_header"))
        .when(F.col("row._corrupt_record").isNotNull(), F.lit("wrong_column_count"))
        .otherwise(F.lit(None).cast("string")),
    )
    landed = parsed.where(F.col("_reason").isNull()).select(
        *[f"row.{c}" for c in columns], "_source_file", "_ingest_date"
    )
    return landed, _quarantined(parsed)


def _read_lines(spark: SparkSession, batch: Batch) -> DataFrame:
    from pyspark.sql import functions as F

    return spark.read.text([str(p) for p in batch.files]).select(
        F.col("value").alias("payload"),
        F.col("_metadata.file_name").alias("_source_file"),
        F.lit(batch.ingest_date).cast("date").alias("_ingest_date"),
    )


def _quarantined(parsed: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return parsed.where(F.col("_reason").isNotNull()).select(
        "_source_file", "payload", F.col("_reason").alias("reason"), "_ingest_date"
    )


def _read_avro(spark: SparkSession, batch: Batch) -> tuple[DataFrame, DataFrame, int]:
    from pyspark.sql import functions as F

    schema = AVRO_SCHEMA_PATH.read_text()
    reader = spark.read.format("avro").option("avroSchema", schema)
    readable, unreadable, records_read = [], [], 0
    for path in batch.files:
        try:
            records = _count_avro_records(path)
            # Block headers can be sound while a record inside is not: decode every column once, in the JVM.
            reader.load(str(path)).write.format("noop").mode("overwrite").save()
            readable.append(path)
            records_read += records
        except Exception as error:  # noqa: BLE001 - any decoding failure quarantines the file
            unreadable.append((path.name, f"{type(error).__name__}: {str(error).splitlines()[0][:500]}"))
            records_read += 1  # an unreadable file counts as one record read and one quarantined

    if readable:
        landed = reader.load([str(p) for p in readable]).withColumn("_source_file", F.col("_metadata.file_name"))
    else:
        landed = _empty_landed_frame(spark, batch.source)
    quarantined = spark.createDataFrame(
        [(name, message, "unreadable_avro_file") for name, message in unreadable],
        QUARANTINE_SCHEMA,
    )
    ingest_date = F.lit(batch.ingest_date).cast("date").alias("_ingest_date")
    return landed.select("*", ingest_date), quarantined.select("*", ingest_date), records_read


# --- tables ---


def ensure_raw_tables(spark: SparkSession, settings: Settings) -> None:
    """Create every raw and quarantine table that does not exist yet, so that dbt finds all of its sources
    even before a source has delivered its first file. Their files are encrypted (ingestion/raw_encryption.py)."""
    from pyspark.sql import functions as F

    spark.sql("create database if not exists raw")
    _ensure_load_batches_table(spark)
    for source in SOURCES.values():
        for table, empty_frame in (
            (source.raw_table, lambda s=source: _empty_landed_frame(spark, s)),
            (source.quarantine_table, lambda: spark.createDataFrame([], QUARANTINE_SCHEMA)),
        ):
            if spark.catalog.tableExists(table):
                _check_partitioning(spark, table)
                encrypt_from_now_on(spark, table, settings)
                continue
            frame = empty_frame().withColumn("_ingest_date", F.lit(None).cast("date"))
            writer = with_load_metadata(frame, "", None).write.format("parquet").options(**raw_table_options(settings))
            writer.partitionBy(*RAW_PARTITION_COLUMNS).saveAsTable(table)


def _check_partitioning(spark: SparkSession, table: str) -> None:
    partitioning = tuple(column.name for column in spark.catalog.listColumns(table) if column.isPartition)
    if partitioning != RAW_PARTITION_COLUMNS:
        raise RuntimeError(
            f"{table} is partitioned by {partitioning}, this version expects {RAW_PARTITION_COLUMNS}: it was created "
            "by an older version. Reload into a fresh ADX_DATA_DIR (the landing files are the source of truth)."
        )


def _empty_landed_frame(spark: SparkSession, source: Source) -> DataFrame:
    """No rows, with the columns a source lands (before load metadata)."""
    if source.file_format != "avro":
        return spark.createDataFrame([], ", ".join(f"{c} string" for c in (*source.columns, "_source_file")))
    # The Spark schema of the bid-request Avro schema, read from a record-less file.
    import tempfile

    from pyspark.sql import functions as F

    schema = fastavro.schema.load_schema(str(AVRO_SCHEMA_PATH))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "empty.avro"
        with path.open("wb") as handle:
            fastavro.writer(handle, schema, [])
        avro_schema = spark.read.format("avro").load(str(path)).schema
    return spark.createDataFrame([], avro_schema).withColumn("_source_file", F.lit(""))


def with_load_metadata(frame: DataFrame, batch_id: str, loaded_at: datetime | None) -> DataFrame:
    """The landed or quarantined rows (with their `_ingest_date`) in table column order: data columns, then
    `_loaded_at`, then the partition columns `_ingest_date` and `_batch_id`."""
    from pyspark.sql import functions as F

    return frame.select(
        *[column for column in frame.columns if column != "_ingest_date"],
        F.lit(loaded_at).cast("timestamp").alias("_loaded_at"),
        F.col("_ingest_date").cast("date").alias("_ingest_date"),
        F.lit(batch_id).alias("_batch_id"),
    )


def _replace_partition(spark: SparkSession, table: str, frame: DataFrame, ingest_date: date) -> None:
    spark.sql(f"alter table {table} drop if exists partition (_ingest_date = date'{ingest_date}')")
    frame.write.insertInto(table)


def _partition_count(spark: SparkSession, table: str, ingest_date: date) -> int:
    return spark.sql(f"select count(*) from {table} where _ingest_date = date'{ingest_date}'").first()[0]


def _ensure_load_batches_table(spark: SparkSession) -> None:
    spark.sql(
        f"""
        create table if not exists {LOAD_BATCHES_TABLE} (
            batch_id string, source string, ingest_date date, fingerprint string, files int,
            records_read bigint, records_landed bigint, records_quarantined bigint, loaded_at timestamp
        ) using parquet
        comment 'One row per landed batch (source x arrival date); append-only audit of every load'
        """
    )


def _previous_load(spark: SparkSession, source: str, ingest_date: date) -> dict | None:
    row = spark.sql(
        f"""
        select * from {LOAD_BATCHES_TABLE}
        where source = '{source}' and ingest_date = date'{ingest_date}'
        order by loaded_at desc limit 1
        """
    ).first()
    return row.asDict() if row else None


def _record_batch(spark: SparkSession, result: BatchResult, fingerprint: str, loaded_at: datetime) -> None:
    spark.createDataFrame(
        [
            (
                result.batch_id,
                result.source,
                result.ingest_date,
                fingerprint,
                result.files,
                result.records_read,
                result.records_landed,
                result.records_quarantined,
                loaded_at,
            )
        ],
        spark.table(LOAD_BATCHES_TABLE).schema,
    ).write.insertInto(LOAD_BATCHES_TABLE)


# --- counting the files themselves ---


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_lines(path: Path, skip_header: bool) -> int:
    """Non-blank lines, as Spark's text and CSV readers see them (CSV: after the header line)."""
    with path.open("rb") as handle:
        if skip_header:
            handle.readline()
            return sum(1 for line in handle if line.strip())
        return sum(1 for _ in handle)


def first_line(path: Path) -> str:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        return handle.readline().rstrip("\r\n")


def _count_avro_records(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.num_records for block in fastavro.block_reader(handle))
