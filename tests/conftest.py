"""Shared fixtures: one Spark session per test run on a throw-away embedded warehouse.

The embedded Derby metastore admits one JVM, so every integration test of a pytest process shares this session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.settings import Settings


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
