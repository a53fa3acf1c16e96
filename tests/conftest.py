"""Shared fixtures: one Spark session per test run on a throw-away embedded warehouse.

The embedded Derby metastore admits one JVM, so every integration test of a pytest process shares this session.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ports import free_port_block

from ingestion.kafka_access import KafkaUser, client_config
from ingestion.raw_encryption import raw_parquet_master_key
from ingestion.settings import Settings
from ingestion.stack.kafka import KafkaBroker, ensure_topics
from ingestion.stack.process import PortInUseError


def pytest_configure(config) -> None:
    # Airflow, imported by a test through Cosmos, would otherwise create ~/airflow; DAG runs get their own home.
    config.adx_airflow_home = tempfile.mkdtemp(prefix="adx-test-airflow-home-")
    os.environ["AIRFLOW_HOME"] = config.adx_airflow_home


def pytest_unconfigure(config) -> None:
    shutil.rmtree(config.adx_airflow_home, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules that read `built_warehouse` run first, together, so the warehouse is built once: a module in between
    that reloads the session's lake (tests/loader, test_incremental) would make the next reader build it again."""
    readers = {item.module for item in items if "built_warehouse" in item.fixturenames}
    items.sort(key=lambda item: item.module not in readers)  # a stable sort: modules stay whole and in order


@pytest.fixture(scope="session")
def warehouse_settings(tmp_path_factory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("adx-data")
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def raw_parquet_key(warehouse_settings) -> str:
    """The raw zone's master key in the session's `spark` (ingestion/raw_encryption.py). A process whose raw files
    a test reads by path through `spark` (a lander, `adx land`) must write them with it."""
    return raw_parquet_master_key(warehouse_settings)


@pytest.fixture(scope="session")
def spark(warehouse_settings):
    from ingestion.spark import get_spark

    session = get_spark(warehouse_settings)
    yield session
    session.stop()


@dataclass(frozen=True)
class BuiltWarehouse:
    """The embedded warehouse of `built_warehouse`: generated, loaded, built with every data test, and passed
    the dbt unit tests."""

    settings: Settings
    results: list  # the loader's BatchResult per batch
    manifest: dict  # the generator's manifest: expected records, quarantines and rejects per source


def _lake_files(settings: Settings) -> frozenset[tuple[str, int, int]]:
    """(path, size, mtime) of every file of the lake: changes when any table is written or dropped."""
    lake = Path(settings.resolved_lake_uri)
    return frozenset((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in lake.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def _built_warehouse_cache() -> dict:
    return {}


@pytest.fixture
def built_warehouse(spark, warehouse_settings, _built_warehouse_cache) -> BuiltWarehouse:
    """Two days at 20,000 impressions a day (seed 7), loaded and built with every dbt test, shared by the tests
    of the session (a build takes minutes).

    Built on first use and again only if the lake changed since: tests that reload or rebuild the session's
    warehouse for themselves (tests/loader, tests/pipeline/test_incremental.py) replace these tables. Tests that
    use it must leave the lake as they found it.
    """
    cache = _built_warehouse_cache
    if cache.get("lake") != _lake_files(warehouse_settings) or "warehouse" not in cache:
        from ingestion.generator import generate
        from ingestion.loader import load
        from ingestion.transform import build, run_dbt

        settings = warehouse_settings
        for schema in ("raw", "staging", "intermediate", "marts", "reference"):
            spark.sql(f"drop database if exists {schema} cascade")
        summary = generate(settings.data_dir, days=2, scale=20_000, seed=7)
        results = load(spark, settings)
        build(settings)  # seeds, models and every data test (reconciliation too) must pass
        run_dbt(settings, ["test", "--resource-type", "unit_test"])  # and the unit tests the build leaves out
        manifest = json.loads(summary.manifest_path.read_text())
        cache["warehouse"] = BuiltWarehouse(settings, results, manifest)
        cache["lake"] = _lake_files(warehouse_settings)
    return cache["warehouse"]


@dataclass(frozen=True)
class KafkaBrokerFixture:
    """A real single-node Kafka broker with the warehouse's topics, for the whole test session.

    `broker.stop()` / `broker.start()` restart it mid-test (its data survives); a test that stops it must start
    it again before it ends, since later tests share it.
    """

    settings: Settings  # data_dir is a temporary folder; kafka_bootstrap_servers points at this broker
    bootstrap_servers: str
    broker: KafkaBroker

    @property
    def secrets_dir(self) -> Path:
        """The CA certificate and the users' passwords: ADX_KAFKA_SECRETS_DIR of a client of this broker."""
        return self.settings.resolved_kafka_secrets_dir

    def client_config(self, user: KafkaUser = KafkaUser.ADMIN) -> dict[str, Any]:
        """confluent-kafka settings of a client logged in as `user` (admin, a super user, by default)."""
        return client_config(self.settings, user)


def _free_port_pair() -> int:
    """A port p with p and p + 1 (the controller) free, from 19600-19999, away from the ports used by hand (19092,
    19292, 19392, 19492)."""
    return free_port_block(2, 19600, 19999, "the test broker")


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
