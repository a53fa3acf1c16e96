"""The topic monitor against a real broker: exact counts per topic and campaign, dead letters by reason, schema
violations, and the per-minute gauges (volume, ratios, lag, anomaly) of the latest complete minute.

The monitor runs as a subprocess (`python -m ingestion.streaming.monitor`), as in production beside the landers:
a process holds one SparkSession, and this pytest process may already hold the Hive-backed one of the `spark`
fixture, whose catalog setting a second session cannot change. The test scrapes /metrics over HTTP like Prometheus.

The session broker is shared with other tests, so the monitor starts at the end offsets the topics have before this
test produces (Spark's JSON startingOffsets), and sees only this test's records. Every record carries an explicit
Kafka timestamp, so the minutes, the lag and the watermark are known in advance.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka_offsets import end_offsets

from ingestion.settings import PROJECT_DIR
from ingestion.streaming.schema_catalog import SchemaCatalog
from ingestion.streaming.topics import (
    BID_REQUESTS_DLQ_TOPIC,
    BID_REQUESTS_TOPIC,
    DLQ_REASON_HEADER,
    IMPRESSIONS_DLQ_TOPIC,
    IMPRESSIONS_TOPIC,
    INGEST_DATE_HEADER,
    SCHEMA_FINGERPRINT_HEADER,
    SOURCE_FILE_HEADER,
    TOPICS,
)

pytestmark = pytest.mark.integration

IMP, BID = IMPRESSIONS_TOPIC.name, BID_REQUESTS_TOPIC.name
WATERMARK_SECONDS = 60
TRIGGER_SECONDS = 2


@dataclass(frozen=True)
class Sent:
    topic: str  # the data topic (dead letters: their source topic)
    kind: str  # record | schema_violation | dead_letter
    campaign: str
    reason: str
    minute: int  # epoch seconds
    lag: float | None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _end_offsets(client_config: dict, timeout: float = 60.0) -> dict[str, dict[str, int]]:
    """The end offset of every partition of the four topics; retried while fresh topics still elect leaders."""
    from confluent_kafka import Consumer

    consumer = Consumer({**client_config, "group.id": "adx-test-monitor-offsets"})
    try:
        return {
            topic.name: {str(partition): end for partition, end in end_offsets(consumer, topic.name, timeout).items()}
            for topic in TOPICS
        }
    finally:
        consumer.close()


def _bid_request(campaign: str, ts_ms: int, schema_version: int) -> dict:
    record = {
        "id": f"req-{campaign}-{ts_ms}",
        "timestamp": ts_ms,
        "exchange": "exchange-a",
        "at": 2,
        "tmax": 120,
        "cur": ["USD"],
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "video": None, "bidfloor": 0.5, "bidfloorcur": "USD"}],
        "site": {"id": "s1", "domain": "news.example.com", "page": "https://news.example.com/a"},
        "app": None,
        "device": {
            "ua": "Mozilla/5.0",
            "ip": "203.0.113.7",
            "devicetype": 2,
            "os": "Linux",
            "geo": {"country": "USA", "region": "CA", "lat": None, "lon": None},
        },
        "user": {"id": "u_000001"},
        "outcome": {"campaign_id": campaign, "bid": True, "bid_price": 1.2, "win": False, "clearing_price": None},
    }
    if schema_version >= 2:
        record["source_tid"] = "tid-1"
    return record


class Scenario:
    """Produces records and remembers what it sent."""

    def __init__(self, client_config: dict, base_minute: int) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({**client_config, "acks": "all", "linger.ms": 5})
        self.base = base_minute
        self.sent: list[Sent] = []
        self.catalog = SchemaCatalog.load()

    def _ts(self, minute: int, second: float) -> int:
        return int((self.base + minute * 60 + second) * 1000)

    def _send(self, topic: str, value: bytes, ts_ms: int, headers: dict[str, str], key: str | None = None) -> None:
        self.producer.produce(
            topic, value=value, key=key, timestamp=ts_ms, headers=[(k, v.encode()) for k, v in headers.items()]
        )

    def impression(self, minute: int, second: float, campaign: str, lag: float, offset: str = "Z") -> None:
        ts_ms = self._ts(minute, second)
        event_ms = ts_ms - int(lag * 1000)
        if offset == "Z":
            event_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event_ms // 1000)) + f".{event_ms % 1000:03d}Z"
        else:  # the web server's own offset, +01:00
            local = time.gmtime(event_ms // 1000 + 3600)
            event_time = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{event_ms % 1000:03d}+01:00"
        line = {"event_id": f"imp-{ts_ms}-{campaign}", "event_time": event_time, "user_id": "u_000042"}
        line |= {"campaign_id": campaign, "ad_id": "ad_1", "cost_micros": 2350, "currency": "USD"}
        headers = {SOURCE_FILE_HEADER: "impressions/dt=2026-11-01/web-01.jsonl", INGEST_DATE_HEADER: "2026-11-01"}
        self._send(IMP, json.dumps(line).encode(), ts_ms, headers, key="u_000042")
        self.sent.append(Sent(IMP, "record", campaign, "", self.base + minute * 60, lag))

    def bad_impression(self, minute: int, second: float, value: str) -> None:
        self._send(IMP, value.encode(), self._ts(minute, second), {INGEST_DATE_HEADER: "2026-11-01"})
        self.sent.append(Sent(IMP, "schema_violation", "unknown", "", self.base + minute * 60, None))

    def bid_request(self, minute: int, second: float, campaign: str, lag: float, version: int) -> None:
        ts_ms = self._ts(minute, second)
        schema = self.catalog.by_version(version)
        value = schema.encode(_bid_request(campaign, ts_ms - int(lag * 1000), version))
        self._send(BID, value, ts_ms, {SCHEMA_FINGERPRINT_HEADER: schema.fingerprint})
        self.sent.append(Sent(BID, "record", campaign, "", self.base + minute * 60, lag))

    def bad_bid_request(self, minute: int, second: float, value: bytes, fingerprint: str | None) -> None:
        headers = {} if fingerprint is None else {SCHEMA_FINGERPRINT_HEADER: fingerprint}
        self._send(BID, value, self._ts(minute, second), headers)
        self.sent.append(Sent(BID, "schema_violation", "unknown", "", self.base + minute * 60, None))

    def dead_letter(self, source: str, minute: int, second: float, reason: str | None) -> None:
        dlq = IMPRESSIONS_DLQ_TOPIC.name if source == IMP else BID_REQUESTS_DLQ_TOPIC.name
        headers = {} if reason is None else {DLQ_REASON_HEADER: reason}
        self._send(dlq, b'{"event_id": "imp-1", "ev', self._ts(minute, second), headers)
        self.sent.append(Sent(source, "dead_letter", "unknown", reason or "unknown", self.base + minute * 60, None))

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def _scrape(port: int) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or line.startswith("#"):
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def _series(samples: dict, name: str) -> dict[frozenset, float]:
    return {labels: value for (metric, labels), value in samples.items() if metric == name}


def _labels(**labels: str) -> frozenset:
    return frozenset(labels.items())


def _wait_for(predicate, process: subprocess.Popen, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the monitor exited with {process.returncode} while waiting for {what}"
        try:
            result = predicate()
        except OSError:  # the HTTP server is not up yet
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_monitor_serves_exact_counts_and_minute_gauges(kafka_broker, tmp_path: Path) -> None:
    started = time.monotonic()
    port = _free_port()
    now = time.time()
    base = int(now // 60) * 60 - 10 * 60  # minutes 0..5 of the scenario lie in the past
    scenario = Scenario(kafka_broker.client_config(), base)
    v_latest = scenario.catalog.latest.version

    env = os.environ | {
        "ADX_DATA_DIR": str(tmp_path / "data"),
        "ADX_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ADX_KAFKA_SECRETS_DIR": str(kafka_broker.secrets_dir),
        "ADX_SPARK_SHUFFLE_PARTITIONS": "2",
        "ADX_MONITOR_DRIVER_MEMORY": "1g",
        "ADX_MONITOR_WATERMARK_SECONDS": str(WATERMARK_SECONDS),
        "ADX_MONITOR_BASELINE_MINUTES": "5",
        "ADX_MONITOR_MIN_HISTORY_MINUTES": "3",
        "ADX_MONITOR_ANOMALY_K": "3",
        "ADX_MONITOR_TRIGGER_INTERVAL_SECONDS": str(TRIGGER_SECONDS),
    }
    command = [
        sys.executable,
        "-m",
        "ingestion.streaming.monitor",
        f"--port={port}",
        f"--starting-offsets={json.dumps(_end_offsets(kafka_broker.client_config()))}",
        "--trigger=continuous",
        f"--checkpoint-dir={tmp_path / 'checkpoint'}",
        "--await-seconds=600",  # never outlives the test
    ]
    log_path = tmp_path / "monitor.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Phase 1, minutes 0-2: steady impressions of two campaigns, three lines that are not JSON objects, and
        # dead letters.
        for minute in range(3):
            for i in range(10):
                scenario.impression(minute, 1 + i * 5, "cmp_001", lag=2.0 + (i % 2) * 2, offset="+01:00")
            for i in range(5):
                scenario.impression(minute, 3 + i * 10, "cmp_002", lag=0.5)
        for value in ('{"event_id": "imp-9", "event_ti', '["imp-9", "2026-11-01T10:00:00Z"]', '"fluentd"'):
            scenario.bad_impression(1, 30, value)
        for _ in range(3):
            scenario.dead_letter(IMP, 2, 40, "malformed_json")
        scenario.flush()
        _wait_for(
            lambda: _series(_scrape(port), "adx_topic_records_total").get(_labels(topic=IMP, campaign="cmp_001")),
            process,
            timeout=180,
            what="the first micro-batch",
        )
        first_phase_seconds = time.monotonic() - started

        # Phase 2, minute 3: a spike of cmp_001, bid requests of every known schema version, undecodable bid
        # requests, and more dead letters; then one impression in minute 5 that moves the watermark past minute 3.
        for i in range(40):
            scenario.impression(3, 1 + i, "cmp_001", lag=2.0 + (i % 2) * 2)
        for i in range(5):
            scenario.impression(3, 3 + i * 10, "cmp_002", lag=0.5)
        for i in range(6):
            scenario.bid_request(3, 2 + i, "cmp_001", lag=1.5, version=1)
        for i in range(4):
            scenario.bid_request(3, 20 + i, "cmp_003", lag=0.25 * (i + 1), version=v_latest)
        scenario.bad_bid_request(3, 30, b"not avro at all", scenario.catalog.by_version(1).fingerprint)
        scenario.bad_bid_request(3, 31, b"\x02", scenario.catalog.latest.fingerprint)  # truncated
        scenario.bad_bid_request(3, 32, b"\x00" * 40, "0000000000000000")  # unknown writer schema
        scenario.bad_bid_request(3, 33, b"\x00" * 40, None)  # no fingerprint header
        scenario.dead_letter(IMP, 3, 10, "not_a_json_object")
        scenario.dead_letter(IMP, 3, 11, "malformed_json")
        scenario.dead_letter(BID, 3, 12, "undecodable_avro")
        scenario.dead_letter(BID, 3, 13, "undecodable_avro")
        scenario.dead_letter(BID, 3, 14, None)
        scenario.flush()
        # Minute 3 ends at 4:00; the watermark (Kafka time - 60 s) passes it with this record at 5:01.
        scenario.impression(5, 1, "cmp_002", lag=0.5)
        scenario.flush()

        sent = scenario.sent
        records = Counter((s.topic, s.campaign) for s in sent if s.kind != "dead_letter")
        last_minute = base + 3 * 60

        def minute_3_closed_and_all_counted() -> bool:
            samples = _scrape(port)
            minute = _series(samples, "adx_topic_minute_start_timestamp_seconds").get(frozenset())
            return minute == last_minute and sum(_series(samples, "adx_topic_records_total").values()) == len(
                [s for s in sent if s.kind != "dead_letter"]
            )

        _wait_for(minute_3_closed_and_all_counted, process, timeout=180, what="minute 3 to close")
        time.sleep(3 * TRIGGER_SECONDS)  # nothing is counted twice by later micro-batches
        samples = _scrape(port)
        total_seconds = time.monotonic() - started

        # Counters: every record exactly once.
        assert _series(samples, "adx_topic_records_total") == {
            _labels(topic=topic, campaign=campaign): count for (topic, campaign), count in records.items()
        }
        dead_letters = Counter((s.topic, s.reason) for s in sent if s.kind == "dead_letter")
        assert _series(samples, "adx_topic_dead_letters_total") == {
            _labels(topic=topic, reason=reason): count for (topic, reason), count in dead_letters.items()
        }
        assert _series(samples, "adx_topic_schema_violations_total") == {
            _labels(topic=IMP): 3,
            _labels(topic=BID): 4,
        }

        # Gauges of the latest complete minute, minute 3.
        in_minute = [s for s in sent if s.minute == last_minute]
        series = {(s.topic, s.campaign) for s in sent if s.kind != "dead_letter" and s.minute <= last_minute}
        volumes = Counter((s.topic, s.campaign) for s in in_minute if s.kind != "dead_letter")
        assert _series(samples, "adx_topic_records_per_minute") == {
            _labels(topic=topic, campaign=campaign): volumes[(topic, campaign)] for topic, campaign in series
        }
        # Only cmp_001's impressions leave their baseline (10, 10, 10 -> 40); other series are steady or too new.
        anomalies = _series(samples, "adx_topic_volume_anomaly")
        assert {labels for labels, value in anomalies.items() if value == 1} == {_labels(topic=IMP, campaign="cmp_001")}
        assert set(anomalies) == set(_series(samples, "adx_topic_records_per_minute"))
        for topic in (IMP, BID):
            of_topic = [s for s in in_minute if s.topic == topic]
            dead = sum(s.kind == "dead_letter" for s in of_topic)
            violations = sum(s.kind == "schema_violation" for s in of_topic)
            total = len(of_topic) - dead
            lags = [s.lag for s in of_topic if s.lag is not None]
            assert _series(samples, "adx_topic_dead_letter_ratio")[_labels(topic=topic)] == pytest.approx(
                dead / (total + dead)
            )
            assert _series(samples, "adx_topic_schema_violation_ratio")[_labels(topic=topic)] == pytest.approx(
                violations / total
            )
            lag = _series(samples, "adx_topic_end_to_end_lag_seconds")
            assert lag[_labels(topic=topic, stat="max")] == pytest.approx(max(lags))
            assert lag[_labels(topic=topic, stat="mean")] == pytest.approx(sum(lags) / len(lags))
        assert _series(samples, "adx_monitor_query_active")[frozenset()] == 1
        assert not math.isnan(_series(samples, "adx_monitor_last_batch_timestamp_seconds")[frozenset()])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    print(
        f"\nmonitor test: {len(scenario.sent)} records, first batch after {first_phase_seconds:.1f} s, "
        f"all checked after {total_seconds:.1f} s; log {log_path}"
    )
    assert process.returncode == 0, log_path.read_text()[-3000:]  # SIGTERM stops the query and exits cleanly
