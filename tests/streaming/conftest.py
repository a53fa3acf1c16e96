"""Fixtures of the streaming tests: a settings object on the session's broker, and a watch on its topics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from kafka_offsets import end_offsets

from ingestion.settings import Settings


class TopicWatch:
    """The records written to some topics since the watch was made. The topics are shared by the test session,
    so a test asserts about what arrived after its watch started."""

    def __init__(self, client_config: dict, topics: tuple[str, ...]) -> None:
        self.consumer = Consumer({**client_config, "group.id": f"test-watch-{uuid.uuid4()}"})
        self.start = {topic: end_offsets(self.consumer, topic) for topic in topics}

    def new(self, topic: str) -> list[Message]:
        start, end = self.start[topic], end_offsets(self.consumer, topic)
        wanted = sum(end[p] - start[p] for p in start)
        self.consumer.assign([TopicPartition(topic, p, start[p]) for p in start if end[p] > start[p]])
        messages: list[Message] = []
        deadline = time.monotonic() + 60
        while len(messages) < wanted and time.monotonic() < deadline:
            message = self.consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            messages.append(message)
        self.consumer.unassign()
        assert len(messages) == wanted
        return messages

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def watch_topics(kafka_broker) -> Iterator[Callable[..., TopicWatch]]:
    """`watch_topics(topic, ...)` starts a TopicWatch; all are closed after the test."""
    watches: list[TopicWatch] = []

    def start(*topics: str) -> TopicWatch:
        watches.append(TopicWatch(kafka_broker.client_config(), topics))
        return watches[-1]

    yield start
    for topic_watch in watches:
        topic_watch.close()


@pytest.fixture
def settings(kafka_broker, tmp_path, raw_parquet_key) -> Settings:
    """A data folder of the test's own, on the session's broker, with the raw zone key of the session's `spark`."""
    return Settings(
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        kafka_secrets_dir=kafka_broker.secrets_dir,
        raw_parquet_key=raw_parquet_key,
    )
