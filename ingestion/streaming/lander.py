"""Kafka → raw tables: Spark Structured Streaming landers for impressions and bid requests.

Each lander reads its source topic and that source's dead-letter topic from the earliest offset its checkpoint
has not committed, parses the records exactly as the batch loader parses files (same columns, same quarantine
reasons, same `_source_file` and `_ingest_date`, carried in record headers), and writes each micro-batch through
`raw_sink`, which makes the raw tables exactly-once per Kafka offset. Run it `available_now` (everything
published so far, then stop: the Airflow mode) or continuously.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingestion.kafka_access import KafkaUser, spark_kafka_options
from ingestion.loader import parse_json_lines
from ingestion.settings import Settings
from ingestion.sources import BID_REQUESTS, IMPRESSIONS, Source
from ingestion.streaming.raw_sink import StreamBatchResult, ensure_stream_tables, write_stream_batch
from ingestion.streaming.runner import Landing, start_landing
from ingestion.streaming.topics import (
    BID_REQUESTS_DLQ_TOPIC,
    BID_REQUESTS_TOPIC,
    DLQ_REASON_HEADER,
    IMPRESSIONS_DLQ_TOPIC,
    IMPRESSIONS_TOPIC,
    INGEST_DATE_HEADER,
    SCHEMA_FINGERPRINT_HEADER,
    SOURCE_FILE_HEADER,
    Topic,
    header_column,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class StreamedSource:
    source: Source
    topic: Topic
    dead_letter_topic: Topic

    @property
    def query_name(self) -> str:
        return f"kafka_{self.source.name}"


STREAMED_SOURCES: dict[str, StreamedSource] = {
    s.source.name: s
    for s in (
        StreamedSource(IMPRESSIONS, IMPRESSIONS_TOPIC, IMPRESSIONS_DLQ_TOPIC),
        StreamedSource(BID_REQUESTS, BID_REQUESTS_TOPIC, BID_REQUESTS_DLQ_TOPIC),
    )
}


def start_topic_landing(
    spark: SparkSession, settings: Settings, source_name: str, *, continuous: bool = False
) -> Landing:
    """Start landing the topic: `continuous=False` lands what it holds at start, then the query ends."""
    streamed = STREAMED_SOURCES[source_name]
    ensure_stream_tables(spark, settings)
    records = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings, KafkaUser.LANDER))
        .option("subscribe", f"{streamed.topic.name},{streamed.dead_letter_topic.name}")
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        # Records that expired from the topic before they were landed are lost data: stop, do not skip them.
        .option("failOnDataLoss", "true")
        .option("kafka.isolation.level", "read_committed")
        .option("maxOffsetsPerTrigger", str(settings.stream_max_records_per_batch))
        .load()
    )
    decode = _avro_decoder() if streamed.source is BID_REQUESTS else None
    return start_landing(
        records,
        streamed.query_name,
        lambda batch, number: _land_batch(spark, streamed, batch, number, decode),
        settings,
        continuous,
    )


def _land_batch(
    spark: SparkSession, streamed: StreamedSource, records: DataFrame, batch_number: int, decode
) -> StreamBatchResult:
    from pyspark.sql import functions as F

    rows = records.select(
        "topic",
        "value",
        F.coalesce(header_column(SOURCE_FILE_HEADER), F.concat(F.lit("kafka:"), "topic")).alias("_source_file"),
        F.coalesce(F.to_date(header_column(INGEST_DATE_HEADER)), F.to_date("timestamp")).alias("_ingest_date"),
        header_column(DLQ_REASON_HEADER).alias("_dead_letter_reason"),
        header_column(SCHEMA_FINGERPRINT_HEADER).alias("_schema_fingerprint"),
        "partition",
        "offset",
    ).persist()
    try:
        records_read = rows.count()
        offsets = rows.groupBy("topic", "partition").agg(F.min("offset"), F.max("offset")).collect()
        published = rows.where(F.col("topic") == streamed.topic.name)
        dead_letters = rows.where(F.col("topic") == streamed.dead_letter_topic.name).select(
            "_source_file",
            F.col("value").cast("string").alias("payload"),
            F.coalesce("_dead_letter_reason", F.lit("dead_letter_without_reason")).alias("reason"),
            "_ingest_date",
        )
        if decode is None:
            lines = published.select(F.col("value").cast("string").alias("payload"), "_source_file", "_ingest_date")
            landed, rejected = parse_json_lines(lines, streamed.source)
        else:
            landed, rejected = decode(published)
        return write_stream_batch(
            spark,
            streamed.source,
            streamed.query_name,
            batch_number,
            landed,
            rejected.unionByName(dead_letters),
            records_read,
            "; ".join(f"{r[0]}/{r[1]}:{r[2]}-{r[3]}" for r in sorted(offsets)),
        )
    finally:
        rows.unpersist()


def _avro_decoder():
    """Decodes bid requests with the writer schema their fingerprint header names, resolved to the latest schema
    of the in-repo catalog, so that v1 and v2 records land in the same columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    from ingestion.streaming.schema_catalog import SchemaCatalog

    catalog = SchemaCatalog.load()
    reader_schema = catalog.latest.json

    def decode(published: DataFrame) -> tuple[DataFrame, DataFrame]:
        options = {"mode": "PERMISSIVE", "avroSchema": reader_schema}
        fingerprint = F.col("_schema_fingerprint")
        decoded = F.lit(None)
        for schema in catalog.schemas:
            decoded = F.when(fingerprint == schema.fingerprint, from_avro("value", schema.json, options)).otherwise(
                decoded
            )
        parsed = published.withColumn("_record", decoded).withColumn(
            "_reason",
            F.when(~fingerprint.isin([s.fingerprint for s in catalog.schemas]) | fingerprint.isNull(), "unknown_schema")
            # PERMISSIVE from_avro gives a struct of nulls, not a null, for bytes it cannot decode; `id` is a
            # required field, so a decoded record always has it.
            .when(F.col("_record.id").isNull(), "undecodable_avro_record")
            .otherwise(F.lit(None).cast("string")),
        )
        landed = parsed.where(F.col("_reason").isNull()).select("_record.*", "_source_file", "_ingest_date")
        rejected = parsed.where(F.col("_reason").isNotNull()).select(
            "_source_file", F.base64("value").alias("payload"), F.col("_reason").alias("reason"), "_ingest_date"
        )
        return landed, rejected

    return decode
