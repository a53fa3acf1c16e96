"""The tracking-system pickup: each CSV file of the drop folder lands once, across reruns and a kill -9.

`adx land --source clicks` runs in its own process on a test-owned data folder (its own JVM and metastore)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.sources import CLICKS
from ingestion.streaming.raw_sink import FAILPOINT_VARIABLE

pytestmark = pytest.mark.integration

ADX = str(Path(sys.executable).parent / "adx")
HEADER = ",".join(CLICKS.columns)


def _write_clicks(data_dir: Path, day: str, name: str, click_ids: list[str], bad_rows: int = 0) -> None:
    folder = data_dir / "landing" / CLICKS.landing_subdir / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"{c},{day}T10:00:00Z,u_000001,cmp_001,ad_01,mobile,https://example.com/" for c in click_ids]
    rows += [f"bad-{name}-{n},only,three" for n in range(bad_rows)]
    partial = folder / f".{name}.partial"  # the tracking system moves finished files into the folder
    partial.write_text("\n".join([HEADER, *rows]) + "\n")
    partial.rename(folder / name)


def _land(data_dir: Path, raw_parquet_key: str, **env: str) -> subprocess.CompletedProcess:
    """`adx land` in a process of its own, writing raw with the master key of the test's `spark`."""
    environment = {
        **os.environ,
        "ADX_DATA_DIR": str(data_dir),
        "ADX_SPARK_DRIVER_MEMORY": "1g",
        "ADX_RAW_PARQUET_KEY": raw_parquet_key,
        **env,
    }
    return subprocess.run(
        [ADX, "land", "--source", "clicks"], env=environment, capture_output=True, text=True, timeout=300
    )


def _landed(spark, data_dir: Path, table: str) -> list[tuple[str, str]]:
    frame = spark.read.parquet(str(data_dir / "lake" / "raw.db" / table))
    key = "click_id" if table == "clicks" else "payload"
    return sorted((row[0], row[1]) for row in frame.select(key, "_source_file").collect())


def test_each_file_lands_once_across_reruns_and_a_kill(tmp_path, spark, raw_parquet_key):
    data_dir = tmp_path / "data"
    _write_clicks(data_dir, "2026-11-01", "a.csv", ["clk-a1", "clk-a2", "clk-a3"], bad_rows=1)
    first = _land(data_dir, raw_parquet_key)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _landed(spark, data_dir, "clicks") == [("clk-a1", "a.csv"), ("clk-a2", "a.csv"), ("clk-a3", "a.csv")]
    assert _landed(spark, data_dir, "quarantine_clicks") == [("bad-a.csv-0,only,three", "a.csv")]

    # New files, one beside the landed one, one in a new arrival date; the run dies after writing raw.
    _write_clicks(data_dir, "2026-11-01", "b.csv", ["clk-b1"])
    _write_clicks(data_dir, "2026-11-02", "a.csv", ["clk-c1", "clk-c2"])
    killed = _land(data_dir, raw_parquet_key, **{FAILPOINT_VARIABLE: "after_raw_write:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    rerun = _land(data_dir, raw_parquet_key)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    clicks = _landed(spark, data_dir, "clicks")
    assert [c for c, _ in clicks] == ["clk-a1", "clk-a2", "clk-a3", "clk-b1", "clk-c1", "clk-c2"]
    dates = {
        row[0]: str(row[1])
        for row in spark.read.parquet(str(data_dir / "lake" / "raw.db" / "clicks"))
        .select("click_id", "_ingest_date")
        .collect()
    }
    assert dates["clk-c1"] == "2026-11-02" and dates["clk-b1"] == "2026-11-01"

    again = _land(data_dir, raw_parquet_key)
    assert again.returncode == 0 and "nothing new to land" in again.stdout, again.stdout + again.stderr
    assert len(_landed(spark, data_dir, "clicks")) == 6
