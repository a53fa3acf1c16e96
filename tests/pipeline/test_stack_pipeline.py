"""`adx run-stack` (generate → shipper and RTB bridge → Kafka → landers → dbt) against `adx run` (generate → batch
loader → dbt) on the same seed: both verify against the ground truth, and their marts are identical row for row.

Each path runs as its own `adx` process on its own data folder, as a newcomer would run it; run-stack starts
its own broker on a free port (so that no other test's records are on its topics) and stops it at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ADX = str(Path(sys.executable).parent / "adx")
DATASET = ["--days", "2", "--scale", "5000", "--seed", "11"]
MARTS = ("fct_impressions", "fct_clicks", "fct_conversions", "agg_campaign_daily", "agg_rtb_daily", "dim_users")


def _adx(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ADX_DATA_DIR": str(data_dir), "ADX_SPARK_DRIVER_MEMORY": "1500m", **env}
    return subprocess.run([ADX, *args], env=environment, capture_output=True, text=True, timeout=1200)


def test_stack_path_gives_the_marts_of_the_embedded_path(tmp_path, free_broker_port, spark):
    embedded, streamed = tmp_path / "embedded", tmp_path / "stack"

    stack_run = _adx(
        ["run-stack", *DATASET, "--stop-stack"],
        streamed,
        ADX_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_broker_port}",
    )
    assert stack_run.returncode == 0, stack_run.stdout[-3000:] + stack_run.stderr[-3000:]
    assert "marts match the ground truth" in stack_run.stdout
    assert "dead-lettered (malformed_json" in stack_run.stdout  # the shipper's dead letters reached quarantine

    embedded_run = _adx(["run", *DATASET], embedded)
    assert embedded_run.returncode == 0, embedded_run.stdout[-3000:] + embedded_run.stderr[-3000:]

    for mart in MARTS:
        from_files = spark.read.parquet(str(embedded / "lake" / "marts.db" / mart))
        from_kafka = spark.read.parquet(str(streamed / "lake" / "marts.db" / mart))
        assert from_files.count() > 0, mart
        assert from_files.schema == from_kafka.schema, mart
        assert from_files.exceptAll(from_kafka).count() == 0, f"{mart}: rows of the embedded path missing"
        assert from_kafka.exceptAll(from_files).count() == 0, f"{mart}: rows only the stack path has"
