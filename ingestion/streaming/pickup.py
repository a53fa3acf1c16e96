"""Tracking-system drop folder → raw tables: picks up each new clicks or conversions CSV file exactly once.

A Structured Streaming file source watches the source's `dt=YYYY-MM-DD` folders; its checkpoint is the manifest
of files already picked up, so a file is landed once however often the job runs. Files are parsed and
quarantined exactly as the batch loader does, and each micro-batch is written through `raw_sink`. The tracking
system must move a finished file into the folder (write elsewhere, then rename): a file still being written
would be picked up half.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from ingestion.loader import count_lines, first_line, parse_csv_lines
from ingestion.settings import Settings
from ingestion.sources import CLICKS, CONVERSIONS, Source
from ingestion.streaming.raw_sink import StreamBatchResult, ensure_stream_tables, write_stream_batch
from ingestion.streaming.runner import Landing, start_landing

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PICKED_UP_SOURCES: dict[str, Source] = {s.name: s for s in (CLICKS, CONVERSIONS)}


def query_name(source: Source) -> str:
    return f"files_{source.name}"


def start_file_pickup(
    spark: SparkSession, settings: Settings, source_name: str, *, continuous: bool = False
) -> Landing:
    """Start picking up files: `continuous=False` lands the files not picked up before, then the query ends."""
    from pyspark.sql import functions as F

    source = PICKED_UP_SOURCES[source_name]
    ensure_stream_tables(spark, settings)
    root = settings.landing_dir / source.landing_subdir
    root.mkdir(parents=True, exist_ok=True)
    lines = (
        spark.readStream.format("text")
        .load(str(root / "dt=*" / source.file_glob))
        .select(
            F.col("value").alias("payload"),
            F.col("_metadata.file_path").alias("_file_path"),
            F.col("_metadata.file_name").alias("_source_file"),
        )
    )
    return start_landing(
        lines, query_name(source), lambda batch, number: _land_batch(spark, source, batch, number), settings, continuous
    )


def _land_batch(spark: SparkSession, source: Source, lines: DataFrame, batch_number: int) -> StreamBatchResult:
    from pyspark.sql import functions as F

    paths = {row[0]: _local_path(row[0]) for row in lines.select("_file_path").distinct().collect()}
    # The glob only matches files inside dt=YYYY-MM-DD folders: the folder is the arrival date.
    dated = lines.withColumn("_ingest_date", F.to_date(F.regexp_extract("_file_path", r"/dt=([0-9-]{10})/", 1)))
    headers = {uri: first_line(path) for uri, path in paths.items()}
    landed, quarantined = parse_csv_lines(dated, source, headers, file_column="_file_path")
    return write_stream_batch(
        spark,
        source,
        query_name(source),
        batch_number,
        landed,
        quarantined,
        sum(count_lines(path, skip_header=True) for path in paths.values()),
        "; ".join(sorted(f"{path.parent.name}/{path.name}" for path in paths.values())),
    )


def _local_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))
