"""Shared fixtures: one Spark session per test run on a throw-away embedded warehouse.

The embedded Derby metastore admits one JVM, so every integration test of a pytest process shares this session.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingestion.settings import Settings
from ingestion.stack.kafka import KafkaBroker, ensure_topics
from ingestion.stack.process import PortInUseError, port_in_use


@pytest.fixture(scope="session")
def warehouse_settings(tmp_path_factory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("adx-data")
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def spark(warehouse_settings):
    from ingestion.spark import get_spark

    session = get_spark(warehouse_settings)
    yield session
    session.stop()


@dataclass(frozen=True)
class KafkaBrokerFixture:
    """A real single-node Kafka broker with the warehouse's topics, for the whole test session.

    `broker.stop()` / `broker.start()` restart it mid-test (its data survives); a test that stops it must start
    it again before it ends, since later tests share it.
    """

    settings: Settings  # data_dir is a temporary folder; kafka_bootstrap_servers points at this broker
    bootstrap_servers: str
    broker: KafkaBroker


def _free_port_pair(host: str = "127.0.0.1") -> int:
    """A port p with p and p + 1 (the controller) free, from 19600-19999: outside the ephemeral range, so that no
    client connection takes it between now and the broker's bind, and away from the ports used by hand (19092,
    19292, 19392, 19492). Random, so that two test sessions at once rarely pick the same pair."""
    candidates = list(range(19600, 19999, 2))
    random.shuffle(candidates)
    for port in candidates:
        if not any(port_in_use(host, p) for p in (port, port + 1)):
            return port
    raise RuntimeError("no free port pair in 19600-19999 for the test broker")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> Iterator[KafkaBrokerFixture]:
    data_dir: Path = tmp_path_factory.mktemp("adx-kafka")
    for attempt in range(3):  # another process may take the port between the check and the broker's bind
        settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=f"127.0.0.1:{_free_port_pair()}")
        broker = KafkaBroker(settings)
        try:
            broker.start()
            break
        except PortInUseError:
            if attempt == 2:
                raise
    try:
        ensure_topics(settings)
        yield KafkaBrokerFixture(settings=settings, bootstrap_servers=broker.bootstrap_servers, broker=broker)
    finally:
        broker.stop()


@pytest.fixture
def free_broker_port() -> int:
    """A port for a test's own broker (the controller takes the next one)."""
    return _free_port_pair()
