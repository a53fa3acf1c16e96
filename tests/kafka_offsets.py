"""End offsets of a topic's partitions, for tests that compare what a topic held before and after."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, TopicPartition


def end_offsets(consumer: Consumer, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """The end offset of each partition of `topic`, retried for up to `timeout` seconds: right after a broker or a
    topic starts, a partition may have no leader yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
