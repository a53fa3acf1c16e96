"""Topic monitor: per minute, per topic and campaign, the volume, dead letters, schema violations and end-to-end lag
of the Kafka topics, served as Prometheus metrics on http://127.0.0.1:9108/metrics.

    python -m ingestion.streaming.monitor --help

It runs as its own process beside the landers, with a Spark session without the Hive metastore (the embedded Derby
metastore admits one JVM, and the monitor reads no table).

How it works. One Structured Streaming query reads the four topics of `TOPICS`. Spark classifies every record of a
micro-batch and aggregates the batch to one row per (topic, kind, campaign, reason, minute); `foreachBatch`
collects those few rows into the driver, where

- the counters (`*_total`) add the rows of the batch: every record is counted once, in the micro-batch that read it;
- `MinuteBook` adds the rows to open 1-minute windows and closes a minute once the watermark (largest Kafka
  timestamp seen, at most the wall clock, minus `watermark_seconds`) has passed its end. A closed minute sets the
  per-minute gauges, with zero for every tracked series that had no record in it, and is checked for a volume
  anomaly. Records of a minute that is already closed still count in the counters, not in the gauges.

Why not Spark's stateful window aggregation (`withWatermark` + `groupBy(window)`): the counters need the raw records,
which a foreachBatch behind an aggregation no longer sees, so it would take a second query that reads every topic a
second time; the aggregation drops records behind the watermark from every figure; and it emits nothing for a minute
without records, which is the anomaly that matters most (a topic that stops). The driver-side window logic is plain
Python and unit-tested (tests/streaming/test_monitor_anomaly.py). Its price: open minutes live in the driver's
memory, so after a restart the first minute seen is partial and is left out of the gauges and the baseline.

Definitions:

- minute: the 1-minute window of the Kafka record timestamp (not of the event time, which is what is late).
- landing time: the Kafka record timestamp, i.e. when the record landed on the topic: the producer client stamps
  it when the record is sent (CreateTime), the broker when a topic uses LogAppendTime. Not the time the monitor
  reads the record: that would add the monitor's own trigger delay, and a backfill would report days of lag.
- end-to-end lag: landing time minus event time (impressions: `event_time`; bid requests: `timestamp`), mean and max
  per topic and minute over the records with a readable event time.
- volume: records on a data topic per campaign; records that break the topic's schema count under campaign
  "unknown" (and as schema violations). An impression with a campaign but no readable event time is volume, not a
  violation: its event time is a staging rule, not the topic's schema.
- schema violation: an impression that is not a JSON object; a bid request whose `adx.schema_fingerprint` header
  names no known writer schema, or whose bytes do not decode with it (from_avro, PERMISSIVE).
- dead letter: a record of a dead-letter topic; it counts for its source topic (`adx.impressions.dlq.v1` for
  `adx.impressions.v1`), by its `adx.reason` header ("unknown" when absent).
- dead-letter ratio: dead letters / (records + dead letters) of the minute; schema-violation ratio: violations /
  records. Ratios and lag are NaN for a minute without anything to divide by.
- volume anomaly: 1 when a series' volume in the latest complete minute is outside mean ± k·spread of its previous
  `baseline_minutes` complete minutes, and that history holds at least `min_history_minutes` minutes; spread is the
  population standard deviation, at least sqrt(mean) (the noise of a count) and at least 1, so a perfectly steady
  history does not flag a difference of one record. A series (topic, campaign) is tracked from its first record
  until it has had no record for `baseline_minutes` minutes.

Limits: when no topic receives anything, the watermark stands still and no minute closes; alert on
`adx_monitor_last_batch_timestamp_seconds` and on the rate of `adx_topic_records_total` for that. A backfill
(`--starting-offsets earliest`) split into micro-batches by MAX_OFFSETS_PER_TRIGGER reads the partitions side by
side, not in time order: give it a watermark as wide as the backlog, or leave the cap unset (one batch).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import statistics
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingestion.kafka_access import KafkaUser, spark_kafka_options
from ingestion.settings import Settings
from ingestion.streaming.topics import (
    BID_REQUESTS_DLQ_TOPIC,
    BID_REQUESTS_TOPIC,
    DLQ_REASON_HEADER,
    IMPRESSIONS_DLQ_TOPIC,
    IMPRESSIONS_TOPIC,
    SCHEMA_FINGERPRINT_HEADER,
    TOPICS,
    header_column,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

Trigger = Literal["continuous", "available_now"]

RECORD = "record"
SCHEMA_VIOLATION = "schema_violation"
DEAD_LETTER = "dead_letter"
UNKNOWN = "unknown"
MINUTE = 60

DATA_TOPICS: tuple[str, ...] = (IMPRESSIONS_TOPIC.name, BID_REQUESTS_TOPIC.name)
# dead-letter topic -> the data topic whose records it holds
DEAD_LETTER_TOPICS: dict[str, str] = {
    IMPRESSIONS_DLQ_TOPIC.name: IMPRESSIONS_TOPIC.name,
    BID_REQUESTS_DLQ_TOPIC.name: BID_REQUESTS_TOPIC.name,
}


class MonitorSettings(BaseSettings):
    """Settings of the monitor, read from `ADX_MONITOR_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ADX_MONITOR_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address of the /metrics endpoint.")
    port: int = Field(default=9108, ge=1, le=65535, description="Port of the /metrics endpoint.")
    watermark_seconds: int = Field(
        default=120, ge=0, description="How far behind the largest Kafka timestamp seen a minute is complete."
    )
    baseline_minutes: int = Field(default=30, ge=1, description="Trailing minutes the volume anomaly compares with.")
    min_history_minutes: int = Field(default=10, ge=1, description="Minutes of history before a series can flag.")
    anomaly_k: float = Field(default=3.0, gt=0, description="Width of the normal band, in spreads.")
    trigger_interval_seconds: int = Field(default=10, ge=1, description="Micro-batch interval of --trigger continuous.")
    max_offsets_per_trigger: int | None = Field(default=None, ge=1, description="Cap on records per micro-batch.")
    driver_memory: str = Field(default="1g", description="Heap of the monitor's Spark driver.")


# --- anomaly and per-minute logic (plain Python) ---


def volume_anomaly(history: Sequence[float], volume: float, *, k: float, min_history: int) -> bool:
    """True when `volume` is outside mean ± k·spread of `history` (see the module docstring for the spread)."""
    if len(history) < max(min_history, 1):
        return False
    mean = statistics.fmean(history)
    spread = max(statistics.pstdev(history), math.sqrt(mean), 1.0)
    return abs(volume - mean) > k * spread


@dataclass(frozen=True)
class BatchRow:
    """One row of a micro-batch's aggregate: the records of one (topic, kind, campaign, reason, minute)."""

    topic: str  # the data topic; dead letters carry their source topic
    kind: str  # RECORD | SCHEMA_VIOLATION | DEAD_LETTER
    campaign: str  # UNKNOWN for schema violations and dead letters
    reason: str  # dead letters: the adx.reason header; "" otherwise
    minute: int  # start of the minute of the Kafka timestamp, epoch seconds
    records: int
    lag_count: int  # records with a readable event time
    lag_sum: float  # seconds
    lag_max: float | None  # seconds
    latest: float  # largest Kafka timestamp of the row, epoch seconds


@dataclass
class TopicMinute:
    """What one data topic got in one minute."""

    volumes: Counter[str] = field(default_factory=Counter)  # campaign -> records (schema violations: UNKNOWN)
    dead_letters: int = 0
    schema_violations: int = 0
    lag_count: int = 0
    lag_sum: float = 0.0
    lag_max: float | None = None

    @property
    def records(self) -> int:
        return sum(self.volumes.values())

    @property
    def dead_letter_ratio(self) -> float:
        total = self.records + self.dead_letters
        return self.dead_letters / total if total else math.nan

    @property
    def schema_violation_ratio(self) -> float:
        return self.schema_violations / self.records if self.records else math.nan

    @property
    def lag_mean(self) -> float:
        return self.lag_sum / self.lag_count if self.lag_count else math.nan

    def add(self, row: BatchRow) -> None:
        if row.kind == DEAD_LETTER:
            self.dead_letters += row.records
            return
        self.volumes[row.campaign] += row.records
        if row.kind == SCHEMA_VIOLATION:
            self.schema_violations += row.records
        self.lag_count += row.lag_count
        self.lag_sum += row.lag_sum
        if row.lag_max is not None:
            self.lag_max = row.lag_max if self.lag_max is None else max(self.lag_max, row.lag_max)


@dataclass(frozen=True)
class ClosedMinute:
    start: int  # epoch seconds
    topics: dict[str, TopicMinute]  # every data topic
    volumes: dict[tuple[str, str], int]  # (topic, campaign) -> records, zero for a tracked series without any
    anomalies: dict[tuple[str, str], bool]


class MinuteBook:
    """Open 1-minute windows of Kafka time, closed by a watermark, and the trailing volume history of each series."""

    def __init__(
        self,
        *,
        watermark_seconds: int,
        baseline_minutes: int,
        min_history_minutes: int,
        anomaly_k: float,
        partial_start: bool,
        topics: Sequence[str] = DATA_TOPICS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.watermark_seconds = watermark_seconds
        self.baseline_minutes = baseline_minutes
        self.min_history_minutes = min_history_minutes
        self.anomaly_k = anomaly_k
        # partial_start: the first minute seen lacks records read before (by an earlier process); it is left out.
        self.partial_start = partial_start
        self.topics = tuple(topics)
        self.clock = clock
        self.latest: float | None = None  # largest Kafka timestamp seen, capped at the wall clock
        self.late_records = 0  # records of minutes already closed (or of the partial first minute)
        self._next: int | None = None  # start of the oldest minute not closed yet
        self._open: dict[int, dict[str, TopicMinute]] = {}
        self._history: dict[tuple[str, str], deque[int]] = {}

    @property
    def watermark(self) -> float | None:
        return None if self.latest is None else self.latest - self.watermark_seconds

    def add(self, rows: Sequence[BatchRow]) -> None:
        if not rows:
            return
        if self._next is None:
            first = min(row.minute for row in rows)
            self._next = first + MINUTE if self.partial_start else first
        now = self.clock()
        for row in rows:
            # A producer with a clock ahead must not close minutes that are still arriving.
            latest = min(row.latest, now)
            self.latest = latest if self.latest is None else max(self.latest, latest)
            if row.minute < self._next:
                self.late_records += row.records
                continue
            self._open.setdefault(row.minute, {}).setdefault(row.topic, TopicMinute()).add(row)

    def close(self) -> list[ClosedMinute]:
        """Close every minute that ends at or before the watermark, in order, gaps included."""
        closed: list[ClosedMinute] = []
        watermark = self.watermark
        if watermark is None or self._next is None:
            return closed
        while self._next + MINUTE <= watermark:
            closed.append(self._close(self._next))
            self._next += MINUTE
        return closed

    def _close(self, start: int) -> ClosedMinute:
        topics = self._open.pop(start, {})
        series = set(self._history)
        series.update((topic, campaign) for topic, minute in topics.items() for campaign in minute.volumes)
        volumes: dict[tuple[str, str], int] = {}
        anomalies: dict[tuple[str, str], bool] = {}
        for key in sorted(series):
            topic, campaign = key
            volume = topics[topic].volumes[campaign] if topic in topics else 0
            history = self._history.setdefault(key, deque(maxlen=self.baseline_minutes))
            volumes[key] = volume
            anomalies[key] = volume_anomaly(history, volume, k=self.anomaly_k, min_history=self.min_history_minutes)
            history.append(volume)
            if len(history) == history.maxlen and not any(history):
                del self._history[key]  # quiet for the whole baseline: no longer tracked
        every_topic = {topic: topics.get(topic, TopicMinute()) for topic in (*self.topics, *topics)}
        return ClosedMinute(start=start, topics=every_topic, volumes=volumes, anomalies=anomalies)


# --- Prometheus metrics ---


class MonitorMetrics:
    """The metrics the monitor serves; one registry per monitor."""

    def __init__(self, registry: CollectorRegistry, topics: Sequence[str] = DATA_TOPICS) -> None:
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Gauge

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> PromCounter:
            return PromCounter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.records = counter(
            "adx_topic_records",
            "Records read from a data topic; schema violations under campaign unknown.",
            ["topic", "campaign"],
        )
        self.dead_letters = counter(
            "adx_topic_dead_letters", "Dead letters of a data topic, by adx.reason.", ["topic", "reason"]
        )
        self.schema_violations = counter(
            "adx_topic_schema_violations", "Records of a data topic that break its schema.", ["topic"]
        )
        self.records_per_minute = gauge(
            "adx_topic_records_per_minute", "Records in the latest complete minute.", ["topic", "campaign"]
        )
        self.volume_anomaly = gauge(
            "adx_topic_volume_anomaly",
            "1 when the latest complete minute's volume is outside its trailing baseline.",
            ["topic", "campaign"],
        )
        self.dead_letter_ratio = gauge(
            "adx_topic_dead_letter_ratio",
            "Dead letters / (records + dead letters) in the latest complete minute.",
            ["topic"],
        )
        self.schema_violation_ratio = gauge(
            "adx_topic_schema_violation_ratio", "Schema violations / records in the latest complete minute.", ["topic"]
        )
        self.lag = gauge(
            "adx_topic_end_to_end_lag_seconds",
            "Kafka record timestamp minus event time in the latest complete minute; stat: mean or max.",
            ["topic", "stat"],
        )
        self.minute = gauge(
            "adx_topic_minute_start_timestamp_seconds", "Start of the latest complete minute (the per-minute gauges)."
        )
        self.batches = counter("adx_monitor_micro_batches", "Micro-batches processed.")
        self.last_batch = gauge(
            "adx_monitor_last_batch_timestamp_seconds", "Wall-clock time the latest micro-batch finished."
        )
        self.query_active = gauge("adx_monitor_query_active", "1 while the streaming query runs.")
        for topic in topics:  # series that exist before anything goes wrong
            self.schema_violations.labels(topic=topic)
        self.minute.set(math.nan)  # no minute complete yet
        self._series: set[tuple[str, str]] = set()

    def count(self, rows: Iterable[BatchRow]) -> None:
        for row in rows:
            if row.kind == DEAD_LETTER:
                self.dead_letters.labels(topic=row.topic, reason=row.reason).inc(row.records)
                continue
            self.records.labels(topic=row.topic, campaign=row.campaign).inc(row.records)
            if row.kind == SCHEMA_VIOLATION:
                self.schema_violations.labels(topic=row.topic).inc(row.records)

    def publish(self, minute: ClosedMinute) -> None:
        for key, volume in minute.volumes.items():
            topic, campaign = key
            self.records_per_minute.labels(topic=topic, campaign=campaign).set(volume)
            self.volume_anomaly.labels(topic=topic, campaign=campaign).set(int(minute.anomalies[key]))
        for topic, campaign in self._series - set(minute.volumes):  # series no longer tracked
            self.records_per_minute.remove(topic, campaign)
            self.volume_anomaly.remove(topic, campaign)
        self._series = set(minute.volumes)
        for topic, figures in minute.topics.items():
            self.dead_letter_ratio.labels(topic=topic).set(figures.dead_letter_ratio)
            self.schema_violation_ratio.labels(topic=topic).set(figures.schema_violation_ratio)
            self.lag.labels(topic=topic, stat="mean").set(figures.lag_mean)
            self.lag.labels(topic=topic, stat="max").set(math.nan if figures.lag_max is None else figures.lag_max)
        self.minute.set(minute.start)

    def batch_done(self) -> None:
        self.batches.inc()
        self.last_batch.set_to_current_time()


# --- Spark: read, classify, aggregate a micro-batch ---


@dataclass(frozen=True)
class WriterSchemas:
    """The bid-request writer schemas by CRC-64-AVRO fingerprint (hex), and the reader schema they resolve to."""

    by_fingerprint: dict[str, str]  # fingerprint -> writer schema JSON
    reader: str  # JSON: the latest schema cut down to the fields the monitor reads


def reader_schema(schema_json: str) -> str:
    """The latest bid-request schema with only `timestamp` and `outcome.campaign_id`: Avro schema resolution skips
    the other fields of every writer schema, so Spark builds no rows of fields the monitor does not use."""
    schema = json.loads(schema_json)
    fields = {f["name"]: f for f in schema["fields"]}
    outcome = dict(fields["outcome"])
    outcome_type = dict(outcome["type"])
    outcome_type["fields"] = [f for f in outcome_type["fields"] if f["name"] == "campaign_id"]
    outcome["type"] = outcome_type
    return json.dumps({**schema, "fields": [fields["timestamp"], outcome]})


def load_writer_schemas() -> WriterSchemas:
    """Every released bid-request schema (ingestion/streaming/schema_catalog.py); the latest is the reader."""
    from ingestion.streaming.schema_catalog import SchemaCatalog

    catalog = SchemaCatalog.load()
    return WriterSchemas(
        by_fingerprint={schema.fingerprint.lower(): schema.json for schema in catalog.schemas},
        reader=reader_schema(catalog.latest.json),
    )


def read_topics(
    spark: SparkSession, settings: Settings, *, starting_offsets: str, max_offsets_per_trigger: int | None
) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings, KafkaUser.MONITOR))
        .option("subscribe", ",".join(topic.name for topic in TOPICS))
        .option("startingOffsets", starting_offsets)
        .option("includeHeaders", "true")
        # A monitor must not stop because retention deleted records it had not read yet (after a long stop).
        .option("failOnDataLoss", "false")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def classify(records: DataFrame, schemas: WriterSchemas) -> DataFrame:
    """Kafka records -> topic (the data topic), kind, campaign, reason, kafka_ts, lag_seconds."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    topic = F.col("topic")
    fingerprint = F.lower(header_column(SCHEMA_FINGERPRINT_HEADER))
    avro_options = {"mode": "PERMISSIVE", "avroSchema": schemas.reader}
    bid_request = F.lit(None)
    for writer_fingerprint, writer_schema in schemas.by_fingerprint.items():
        decoded = from_avro(F.col("value"), writer_schema, avro_options)
        bid_request = F.when(fingerprint == writer_fingerprint, decoded).otherwise(bid_request)
    dead_letter_source = F.lit(None).cast("string")
    for dead_letter_topic, source in DEAD_LETTER_TOPICS.items():
        dead_letter_source = F.when(topic == dead_letter_topic, source).otherwise(dead_letter_source)

    # Parse once, in its own projection: the parsed columns are used several times below.
    parsed = records.select(
        F.coalesce(dead_letter_source, topic).alias("topic"),
        topic.isin(list(DEAD_LETTER_TOPICS)).alias("is_dead_letter"),
        F.col("timestamp").alias("kafka_ts"),
        F.when(
            topic == IMPRESSIONS_TOPIC.name,
            F.from_json(
                F.col("value").cast("string"),
                "campaign_id string, event_time string, _corrupt_record string",
                {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"},
            ),
        ).alias("impression"),
        F.when(topic == BID_REQUESTS_TOPIC.name, bid_request).alias("bid_request"),
        F.when(topic.isin(list(DEAD_LETTER_TOPICS)), header_column(DLQ_REASON_HEADER)).alias("reason"),
    )
    impression, bid_request = F.col("impression"), F.col("bid_request")
    impression_ok = impression.isNotNull() & impression["_corrupt_record"].isNull()
    # PERMISSIVE from_avro gives a struct of nulls for bytes that do not decode; timestamp is required by the schema.
    bid_request_ok = bid_request["timestamp"].isNotNull()
    kind = (
        F.when(F.col("is_dead_letter"), DEAD_LETTER)
        .when(impression_ok | bid_request_ok, RECORD)
        .otherwise(SCHEMA_VIOLATION)
    )
    campaign = (
        F.when(impression_ok, impression["campaign_id"])
        .when(bid_request_ok, bid_request["outcome"]["campaign_id"])
        .otherwise(UNKNOWN)
    )
    event_time = (
        F.when(impression_ok, F.try_to_timestamp(impression["event_time"]))
        .when(bid_request_ok, bid_request["timestamp"])
        .otherwise(None)
    )
    return parsed.select(
        "topic",
        kind.alias("kind"),
        F.coalesce(campaign, F.lit(UNKNOWN)).alias("campaign"),  # a record without campaign_id
        F.when(F.col("is_dead_letter"), F.coalesce("reason", F.lit(UNKNOWN))).otherwise("").alias("reason"),
        "kafka_ts",
        ((F.unix_millis("kafka_ts") - F.unix_millis(event_time)) / 1000.0).alias("lag_seconds"),
    )


def summarize(batch: DataFrame) -> list[BatchRow]:
    """One Spark job: the classified micro-batch grouped by topic, kind, campaign, reason and minute."""
    from pyspark.sql import functions as F

    kafka_ms = F.unix_millis("kafka_ts")
    grouped = batch.groupBy(
        "topic", "kind", "campaign", "reason", (F.floor(kafka_ms / 60_000) * MINUTE).alias("minute")
    ).agg(
        F.count(F.lit(1)).alias("records"),
        F.count("lag_seconds").alias("lag_count"),
        F.coalesce(F.sum("lag_seconds"), F.lit(0.0)).alias("lag_sum"),
        F.max("lag_seconds").alias("lag_max"),
        (F.max(kafka_ms) / 1000.0).alias("latest"),
    )
    return [BatchRow(**row.asDict()) for row in grouped.collect()]


# --- the monitor ---


def monitor_spark(settings: Settings, options: MonitorSettings) -> SparkSession:
    """The session of the monitor process: no Hive metastore, its own (small) driver heap."""
    from ingestion.spark import get_spark

    return get_spark(settings.model_copy(update={"spark_driver_memory": options.driver_memory}), hive=False)


def run_monitor(
    settings: Settings,
    *,
    options: MonitorSettings | None = None,
    port: int | None = None,
    starting_offsets: str = "latest",
    trigger: Trigger = "continuous",
    checkpoint_dir: Path | None = None,
    await_seconds: float | None = None,
    linger_seconds: float = 0.0,
    stop: threading.Event | None = None,
) -> None:
    """Serve the metrics on options.host:port and run the streaming query until it stops: for trigger
    "available_now" once everything in the topics has been read, for "continuous" (a micro-batch every
    trigger_interval_seconds) never, unless `await_seconds` pass or `stop` is set. Then keep serving for
    `linger_seconds` (or until `stop` is set).

    The Kafka offsets read are kept in `checkpoint_dir` (default <streaming_dir>/checkpoints/monitor); with a
    checkpoint there, the query resumes from it and `starting_offsets` is ignored."""
    from prometheus_client import CollectorRegistry, start_http_server

    options = options or MonitorSettings()
    stop = stop or threading.Event()
    checkpoint = checkpoint_dir or settings.checkpoints_dir / "monitor"
    resumes = (checkpoint / "offsets").is_dir()
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    server, _thread = start_http_server(port or options.port, addr=options.host, registry=registry)
    try:
        spark = monitor_spark(settings, options)
        book = MinuteBook(
            watermark_seconds=options.watermark_seconds,
            baseline_minutes=options.baseline_minutes,
            min_history_minutes=options.min_history_minutes,
            anomaly_k=options.anomaly_k,
            # From "latest" or a checkpoint, the first minute seen misses the records read before; from "earliest"
            # or given offsets it holds everything asked for.
            partial_start=resumes or starting_offsets == "latest",
        )

        def on_batch(batch: DataFrame, batch_id: int) -> None:
            started = time.monotonic()
            rows = summarize(batch)
            metrics.count(rows)
            book.add(rows)
            closed = book.close()
            for minute in closed:
                metrics.publish(minute)
            metrics.batch_done()
            records = sum(row.records for row in rows)
            log.info(
                "batch %d: %d records, %d minutes closed, %.1f s",
                batch_id,
                records,
                len(closed),
                time.monotonic() - started,
            )

        stream = classify(
            read_topics(
                spark,
                settings,
                starting_offsets=starting_offsets,
                max_offsets_per_trigger=options.max_offsets_per_trigger,
            ),
            load_writer_schemas(),
        )
        writer = (
            stream.writeStream.queryName("adx_topic_monitor")
            .foreachBatch(on_batch)
            .option("checkpointLocation", str(checkpoint))
        )
        if trigger == "available_now":
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=f"{options.trigger_interval_seconds} seconds")
        query = writer.start()
        metrics.query_active.set(1)
        deadline = math.inf if await_seconds is None else time.monotonic() + await_seconds
        try:
            # Short waits, so that `stop` is seen; awaitTermination raises if the query failed.
            while query.isActive and not stop.is_set() and time.monotonic() < deadline:
                query.awaitTermination(1)
        finally:
            if query.isActive:
                query.stop()
            metrics.query_active.set(0)
        stop.wait(linger_seconds)
    finally:
        server.shutdown()


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` instead of raising: an exception raised in the middle of a py4j call leaves
    that call's connection waiting for the JVM's answer, and the query could then not be stopped."""

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=int, default=None, help="HTTP port of /metrics. Default: ADX_MONITOR_PORT or 9108.")
@click.option(
    "--starting-offsets",
    default="latest",
    show_default=True,
    help="Where a query without a checkpoint starts: latest to follow the topics, earliest for a backfill, or "
    'Spark\'s JSON form {"topic": {"partition": offset}} (every partition of the four topics).',
)
@click.option(
    "--trigger",
    type=click.Choice(["continuous", "available_now"]),
    default="continuous",
    show_default=True,
    help="continuous: a micro-batch every ADX_MONITOR_TRIGGER_INTERVAL_SECONDS until stopped; "
    "available_now: read what the topics hold, then stop.",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Default: <ADX_DATA_DIR>/streaming/checkpoints/monitor.",
)
@click.option("--await-seconds", type=float, default=None, help="Stop the query after this many seconds.")
@click.option(
    "--linger-seconds",
    type=float,
    default=0.0,
    show_default=True,
    help="Keep serving the metrics this long after the query stopped.",
)
def main(
    port: int | None,
    starting_offsets: str,
    trigger: Trigger,
    checkpoint_dir: Path | None,
    await_seconds: float | None,
    linger_seconds: float,
) -> None:
    """Monitor the Kafka topics: per minute, per topic and campaign, volume, dead letters, schema violations,
    end-to-end lag and a volume anomaly flag, as Prometheus metrics on http://127.0.0.1:PORT/metrics.

    Tuning (ADX_MONITOR_*): WATERMARK_SECONDS (120), BASELINE_MINUTES (30), MIN_HISTORY_MINUTES (10),
    ANOMALY_K (3), TRIGGER_INTERVAL_SECONDS (10), MAX_OFFSETS_PER_TRIGGER, DRIVER_MEMORY (1g), HOST, PORT.
    Exit codes: 0 stopped, 1 the streaming query failed, 2 usage.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per callback otherwise
    settings, options, stop = Settings(), MonitorSettings(), threading.Event()
    spark = monitor_spark(settings, options)  # first: starting Spark installs PySpark's own SIGINT handler
    _stop_on_signals(stop)
    click.echo(f"serving http://{options.host}:{port or options.port}/metrics", err=True)
    try:
        run_monitor(
            settings,
            options=options,
            port=port,
            starting_offsets=starting_offsets,
            trigger=trigger,
            checkpoint_dir=checkpoint_dir,
            await_seconds=await_seconds,
            linger_seconds=linger_seconds,
            stop=stop,
        )
    except Exception as error:
        from pyspark.errors import StreamingQueryException

        if not isinstance(error, StreamingQueryException):
            raise
        click.echo(f"the streaming query failed: {error}", err=True)
        sys.exit(1)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
