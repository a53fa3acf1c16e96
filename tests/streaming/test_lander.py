"""The Kafka landers against a real broker: exactly N records in raw for N produced, through kill -9 at every step
of a micro-batch and a restart.

Each lander runs as `adx land` in its own process (its own JVM and Derby metastore under a test-owned data
folder), as it does in production, so that killing it kills a real lander. The topics are shared by the test
session, so every assertion is about the event ids this test produced.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Producer

from ingestion.kafka_access import KafkaUser, kafka_password
from ingestion.monitoring.consumer_lag import consumer_lags
from ingestion.settings import Settings
from ingestion.streaming.openrtb import bid_request_record, write_rtb_file
from ingestion.streaming.raw_sink import FAILPOINT_VARIABLE
from ingestion.streaming.rtb_bridge import bridge_bid_requests
from ingestion.streaming.runner import checkpoint_dir
from ingestion.streaming.schema_catalog import SchemaCatalog
from ingestion.streaming.topics import (
    BID_REQUESTS_TOPIC,
    DLQ_REASON_HEADER,
    IMPRESSIONS_DLQ_TOPIC,
    IMPRESSIONS_TOPIC,
    INGEST_DATE_HEADER,
    SCHEMA_FINGERPRINT_HEADER,
    SOURCE_FILE_HEADER,
)

pytestmark = pytest.mark.integration

ADX = str(Path(sys.executable).parent / "adx")
OPENRTB_EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openrtb"


def _produce_impressions(client_config: dict, run: str, count: int) -> list[str]:
    producer = Producer({**client_config, "enable.idempotence": True, "linger.ms": 20})
    event_ids = []
    for number in range(count):
        event_id = f"{run}-{number:06d}"
        event_ids.append(event_id)
        line = {
            "event_id": event_id,
            "event_time": "2026-11-01T10:00:00.000Z",
            "user_id": f"u_{number % 97:06d}",
            "campaign_id": "cmp_001",
            "cost_micros": "1500",
            "currency": "USD",
        }
        headers = [(SOURCE_FILE_HEADER, f"{run}.jsonl"), (INGEST_DATE_HEADER, "2026-11-01")]
        producer.produce(IMPRESSIONS_TOPIC.name, json.dumps(line).encode(), line["user_id"].encode(), headers=headers)
        producer.poll(0)
    assert producer.flush(30) == 0
    return event_ids


def _lander_env(settings, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "ADX_DATA_DIR": str(settings.data_dir),
        "ADX_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ADX_KAFKA_SECRETS_DIR": str(settings.resolved_kafka_secrets_dir),
        "ADX_SPARK_DRIVER_MEMORY": "1g",
        "ADX_RAW_PARQUET_KEY": settings.raw_parquet_key.get_secret_value(),
        **(extra_env or {}),
    }


def _land(
    settings, extra_env: dict[str, str] | None = None, source: str = "impressions", timeout: float = 240
) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [ADX, "land", "--source", source],
        env=_lander_env(settings, extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        _kill_group(process)  # the lander's JVM too, when the failpoint killed only the Python driver
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _landed_event_ids(spark, settings, table: str, run: str) -> list[str]:
    from pyspark.sql import functions as F

    location = settings.data_dir / "lake" / "raw.db" / table
    frame = spark.read.parquet(str(location))
    return [row[0] for row in frame.where(F.col("event_id").startswith(run)).select("event_id").collect()]


def test_n_produced_n_landed_and_dead_letters_quarantined_with_reasons(kafka_broker, settings, spark):
    run = f"exact-{uuid.uuid4().hex[:8]}"
    produced = _produce_impressions(kafka_broker.client_config(), run, 2_000)
    producer = Producer(kafka_broker.client_config())
    producer.produce(IMPRESSIONS_TOPIC.name, f"{run} not json".encode(), headers=[(SOURCE_FILE_HEADER, f"{run}.jsonl")])
    producer.produce(
        IMPRESSIONS_DLQ_TOPIC.name,
        f"{run} [1, 2]".encode(),
        headers=[(SOURCE_FILE_HEADER, f"{run}.jsonl"), (DLQ_REASON_HEADER, "not_a_json_object")],
    )
    assert producer.flush(30) == 0

    result = _land(settings)
    assert result.returncode == 0, result.stdout
    # The lander's Kafka password is in its source options (the JAAS string): not in its output or checkpoint.
    password = kafka_password(settings, KafkaUser.LANDER).encode()
    assert password not in result.stdout.encode()
    assert not [p for p in settings.checkpoints_dir.rglob("*") if p.is_file() and password in p.read_bytes()]
    landed = _landed_event_ids(spark, settings, "impressions", run)
    assert sorted(landed) == produced

    from pyspark.sql import functions as F

    quarantine = spark.read.parquet(str(settings.data_dir / "lake" / "raw.db" / "quarantine_impressions"))
    reasons = {
        row["reason"]: row["count"]
        for row in quarantine.where(F.col("payload").startswith(run)).groupBy("reason").count().collect()
    }
    assert reasons == {"malformed_json": 1, "not_a_json_object": 1}

    # A rerun lands nothing twice: the checkpoint has every offset.
    again = _land(settings)
    assert again.returncode == 0, again.stdout
    assert "nothing new to land" in again.stdout
    assert sorted(_landed_event_ids(spark, settings, "impressions", run)) == produced

    # Consumer lag: nothing left to read after landing; what is published next is the lag, on the live broker.
    checkpoints = settings.checkpoints_dir
    assert _lag_by_topic(checkpoints, settings) == {
        IMPRESSIONS_TOPIC.name: 0,
        IMPRESSIONS_DLQ_TOPIC.name: 0,
    }
    _produce_impressions(kafka_broker.client_config(), f"{run}-later", 7)
    assert _lag_by_topic(checkpoints, settings) == {
        IMPRESSIONS_TOPIC.name: 7,
        IMPRESSIONS_DLQ_TOPIC.name: 0,
    }


def _lag_by_topic(checkpoints: Path, settings: Settings) -> dict[str, int]:
    lags = consumer_lags(checkpoints, settings)
    assert lags, "no Kafka position in the lander's checkpoint"
    assert {lag.query for lag in lags} == {"kafka_impressions"}
    by_topic: dict[str, int] = {}
    for lag in lags:
        by_topic[lag.topic] = by_topic.get(lag.topic, 0) + lag.records
    return by_topic


@pytest.mark.parametrize(
    "failpoints",
    [
        # A kill between the raw write and the commit: the batch that must be replaced, not appended, on restart.
        pytest.param(["after_raw_write:2"], id="after-a-raw-write"),
        pytest.param(
            ["before_write:1", "after_raw_write:2", "after_quarantine_write:3", "after_audit:4"],
            id="each-step",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_killed_lander_restarts_without_loss_or_duplicates(kafka_broker, settings, spark, failpoints):
    run = f"crash-{uuid.uuid4().hex[:8]}"
    produced = _produce_impressions(kafka_broker.client_config(), run, 6_000)
    small_batches = {"ADX_STREAM_MAX_RECORDS_PER_BATCH": "1000"}

    for failpoint in failpoints:
        crashed = _land(settings, {**small_batches, FAILPOINT_VARIABLE: failpoint})
        assert crashed.returncode == -signal.SIGKILL, f"{failpoint} was not reached:\n{crashed.stdout}"

    # And one kill from outside, while a micro-batch is running.
    process = subprocess.Popen(
        [ADX, "land", "--source", "impressions"],
        env=_lander_env(settings, small_batches),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    offsets = checkpoint_dir(settings, "kafka_impressions") / "offsets"
    committed_before = len(list((offsets.parent / "commits").glob("[0-9]*")))
    deadline = time.monotonic() + 180
    while len(list(offsets.glob("[0-9]*"))) <= committed_before and time.monotonic() < deadline:
        time.sleep(0.2)
    _kill_group(process)

    final = _land(settings, small_batches)
    assert final.returncode == 0, final.stdout
    landed = _landed_event_ids(spark, settings, "impressions", run)
    assert len(landed) == len(set(landed)), "a record landed twice"
    assert sorted(landed) == produced


def test_bid_requests_of_schema_v1_and_v2_land_in_the_latest_columns(kafka_broker, settings, spark):
    """A v1 file and a v2 file of OpenRTB 2.5/2.6 example requests, through the bridge and one topic."""
    from pyspark.sql import functions as F

    examples = sorted(OPENRTB_EXAMPLES.glob("spec-2.*/bid-request--*.json"))
    if not examples:
        pytest.skip(f"the OpenRTB examples are not there: {OPENRTB_EXAMPLES} (../shared next to the repo) is absent")
    run = uuid.uuid4().hex[:8]
    received_at = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    requests = [json.loads(path.read_text()) for path in examples]
    # Each request gets an OpenRTB 2.6 transaction id (source.tid), the field v2 adds.
    v2_records = [
        bid_request_record(
            {
                **request,
                "id": f"{run}-v2-{number}",
                "source": {**request.get("source", {}), "tid": f"{run}-tid-{number}"},
            },
            received_at=received_at,
            exchange="openx",
        )
        for number, request in enumerate(requests)
    ]
    write_rtb_file(settings, v2_records, ingest_date=date(2026, 11, 1), file_name=f"{run}-openrtb.avro")
    v1 = SchemaCatalog.load().by_version(1)
    v1_records = [
        {k: v for k, v in {**r, "id": f"{run}-v1-{n}"}.items() if k != "source_tid"} for n, r in enumerate(v2_records)
    ]
    v1_file = settings.landing_dir / "rtb" / "dt=2026-11-01" / f"{run}-v1.avro"
    with v1_file.open("wb") as handle:
        fastavro.writer(handle, v1.parsed, v1_records)

    summary = bridge_bid_requests(settings)
    assert summary.published == 2 * len(requests), summary
    # Two records no bridge would publish: bytes that are not a v2 record, and a schema the catalog lacks.
    producer = Producer(kafka_broker.client_config())
    for fingerprint in (SchemaCatalog.load().latest.fingerprint, "00000000deadbeef"):
        headers = [(SOURCE_FILE_HEADER, f"{run}-bad.avro"), (SCHEMA_FINGERPRINT_HEADER, fingerprint)]
        producer.produce(BID_REQUESTS_TOPIC.name, b"\xff\xff\xff\xff not avro", headers=headers)
    assert producer.flush(30) == 0
    result = _land(settings, source="bid_requests")
    assert result.returncode == 0, result.stdout

    quarantine = spark.read.parquet(str(settings.data_dir / "lake" / "raw.db" / "quarantine_bid_requests"))
    reasons = sorted(r["reason"] for r in quarantine.where(F.col("_source_file") == f"{run}-bad.avro").collect())
    assert reasons == ["undecodable_avro_record", "unknown_schema"]

    landed = spark.read.parquet(str(settings.data_dir / "lake" / "raw.db" / "bid_requests"))
    rows = {row["id"]: row for row in landed.where(F.col("id").startswith(run)).collect()}
    assert sorted(rows) == sorted([r["id"] for r in v2_records] + [r["id"] for r in v1_records])
    for record in v2_records:
        row = rows[record["id"]]
        assert row["source_tid"] == record["source_tid"] == f"{run}-tid-{record['id'].rsplit('-', 1)[1]}"
        assert row["_source_file"] == f"{run}-openrtb.avro" and str(row["_ingest_date"]) == "2026-11-01"
        assert row["imp"][0]["id"] == record["imp"][0]["id"]
        assert row["user"]["id"] == record["user"]["id"]
        assert row["device"]["geo"]["country"] == record["device"]["geo"]["country"]
    assert all(rows[r["id"]]["source_tid"] is None for r in v1_records)
