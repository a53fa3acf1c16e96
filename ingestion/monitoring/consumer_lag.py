"""Kafka consumer lag of the Structured Streaming queries (the landers and the topic monitor): how many records
each query has still to read, per topic and partition.

The queries keep their Kafka position in their Spark checkpoint, not in a consumer group, so Kafka's own tools
(`kafka-consumer-groups`) do not see them. A query's position is in its offset log: `offsets/<n>` holds the end
offsets of micro-batch n, and `commits/<n>` exists once that batch was written. The position is therefore the
offsets of the highest committed batch; a batch planned but not committed is read again after a restart.
Its lag on a partition is the partition's end offset (the last stable offset: the landers read
read_committed) minus that position.

The exporter computes this at every scrape: files are read from <ADX_DATA_DIR>/streaming/checkpoints and the end
offsets are asked of the broker. Without any Kafka checkpoint there is nothing to ask; when the broker does not
answer, `adx_kafka_lag_up` is 0 and no lag is reported (an old figure would read as a healthy one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client.core import GaugeMetricFamily, Metric

from ingestion.kafka_access import KafkaCredentialsError, KafkaUser, client_config
from ingestion.settings import Settings

log = logging.getLogger(__name__)

# offsets/<n> is "v1", the batch metadata, then one line per source of the query.
_OFFSET_LOG_HEADER_LINES = 2


@dataclass(frozen=True)
class QueryPosition:
    """The Kafka offsets up to which a streaming query has committed its output."""

    query: str
    batch_number: int
    offsets: dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


@dataclass(frozen=True)
class PartitionLag:
    query: str
    topic: str
    partition: int
    position: int
    end_offset: int

    @property
    def records(self) -> int:
        return max(self.end_offset - self.position, 0)


def committed_position(checkpoint: Path) -> QueryPosition | None:
    """The position of the checkpoint's last committed micro-batch, or None when it has none or reads no Kafka."""
    committed = _batch_numbers(checkpoint / "commits") & _batch_numbers(checkpoint / "offsets")
    if not committed:
        return None
    batch = max(committed)
    offsets: dict[tuple[str, int], int] = {}
    lines = (checkpoint / "offsets" / str(batch)).read_text(encoding="utf-8").splitlines()
    for line in lines[_OFFSET_LOG_HEADER_LINES:]:
        offsets.update(_kafka_offsets(line))
    if not offsets:
        return None  # a file source (the pickup queries)
    return QueryPosition(checkpoint.name, batch, offsets)


def _batch_numbers(log_dir: Path) -> set[int]:
    if not log_dir.is_dir():
        return set()
    return {int(path.name) for path in log_dir.iterdir() if path.name.isdigit()}


def _kafka_offsets(line: str) -> dict[tuple[str, int], int]:
    """A Kafka source's line is {"topic": {"partition": offset}}; any other source's line is something else."""
    try:
        source = json.loads(line)
    except ValueError:
        return {}
    if not isinstance(source, dict):
        return {}
    offsets = {}
    for topic, partitions in source.items():
        if not isinstance(partitions, dict):
            return {}
        for partition, offset in partitions.items():
            if not (partition.isdigit() and isinstance(offset, int)):
                return {}
            offsets[(topic, int(partition))] = offset
    return offsets


def query_positions(checkpoints_dir: Path) -> list[QueryPosition]:
    if not checkpoints_dir.is_dir():
        return []
    positions = (committed_position(path) for path in sorted(checkpoints_dir.iterdir()) if path.is_dir())
    return [position for position in positions if position is not None]


def end_offsets(settings: Settings, partitions: set[tuple[str, int]], timeout: float) -> dict[tuple[str, int], int]:
    """The last stable offset of each partition (what a read_committed reader can reach)."""
    consumer = Consumer(
        {
            **client_config(settings, KafkaUser.MONITOR),
            # Needed to build a consumer; it never subscribes or commits, so the group stays empty.
            "group.id": "adx-exporter-lag",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "socket.timeout.ms": int(timeout * 1000),
        }
    )
    try:
        return {
            (topic, partition): consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )[1]
            for topic, partition in sorted(partitions)
        }
    finally:
        consumer.close()


def consumer_lags(checkpoints_dir: Path, settings: Settings, timeout: float = 3.0) -> list[PartitionLag] | None:
    """The lag of every Kafka query checkpointed under `checkpoints_dir`: [] when there is none, None when the
    broker did not answer."""
    positions = query_positions(checkpoints_dir)
    if not positions:
        return []
    partitions = {key for position in positions for key in position.offsets}
    try:
        ends = end_offsets(settings, partitions, timeout)
    except (KafkaException, KafkaCredentialsError) as error:
        log.warning("no end offsets from %s: %s", settings.kafka_bootstrap_servers, error)
        return None
    return [
        PartitionLag(position.query, topic, partition, offset, ends[(topic, partition)])
        for position in positions
        for (topic, partition), offset in sorted(position.offsets.items())
    ]


class ConsumerLagCollector:
    """adx_kafka_consumer_lag_records, its two operands and adx_kafka_lag_up, at every scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        lags = consumer_lags(self.settings.checkpoints_dir, self.settings)
        if lags == []:
            return
        up = GaugeMetricFamily("adx_kafka_lag_up", "1 when the broker answered the exporter's end-offset query.")
        up.add_metric([], 0 if lags is None else 1)
        yield up
        if lags is None:
            return
        labels = ["consumer", "topic", "partition"]
        lag = GaugeMetricFamily(
            "adx_kafka_consumer_lag_records",
            "Records on the partition after the streaming query's last committed micro-batch.",
            labels=labels,
        )
        position = GaugeMetricFamily(
            "adx_kafka_consumer_committed_offset",
            "Next offset the streaming query reads (end of its last committed micro-batch).",
            labels=labels,
        )
        end = GaugeMetricFamily(
            "adx_kafka_topic_end_offset", "Last stable offset of the partition.", labels=["topic", "partition"]
        )
        ends_seen: set[tuple[str, int]] = set()
        for partition_lag in lags:
            key = [partition_lag.query, partition_lag.topic, str(partition_lag.partition)]
            lag.add_metric(key, partition_lag.records)
            position.add_metric(key, partition_lag.position)
            if (partition_lag.topic, partition_lag.partition) not in ends_seen:
                ends_seen.add((partition_lag.topic, partition_lag.partition))
                end.add_metric(key[1:], partition_lag.end_offset)
        yield from (lag, position, end)
