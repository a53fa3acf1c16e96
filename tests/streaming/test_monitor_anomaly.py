"""The topic monitor's driver-side logic without Spark or Kafka: the anomaly rule, minutes closed by the watermark,
the counters, and the reader schema."""

from __future__ import annotations

import io
import json
import math

import pytest
from prometheus_client import CollectorRegistry

from ingestion.streaming.monitor import (
    DEAD_LETTER,
    RECORD,
    SCHEMA_VIOLATION,
    UNKNOWN,
    BatchRow,
    MinuteBook,
    MonitorMetrics,
    load_writer_schemas,
    reader_schema,
    volume_anomaly,
)
from ingestion.streaming.schema_catalog import SchemaCatalog

IMP, BID = "adx.impressions.v1", "adx.bid_requests.v1"
T0 = 1_790_000_040  # the start of a minute, epoch seconds
NOW = T0 + 3600.0


def row(
    minute: int,
    records: int,
    *,
    topic: str = IMP,
    kind: str = RECORD,
    campaign: str = "cmp_001",
    reason: str = "",
    lags: tuple[float, ...] = (),
    second: float = 30.0,
) -> BatchRow:
    """`records` records in minute `minute` after T0, the latest at `second` into it."""
    return BatchRow(
        topic=topic,
        kind=kind,
        campaign=campaign,
        reason=reason,
        minute=T0 + 60 * minute,
        records=records,
        lag_count=len(lags),
        lag_sum=sum(lags),
        lag_max=max(lags) if lags else None,
        latest=T0 + 60 * minute + second,
    )


def book(**overrides) -> MinuteBook:
    options = dict(
        watermark_seconds=60,
        baseline_minutes=5,
        min_history_minutes=3,
        anomaly_k=3.0,
        partial_start=False,
        clock=lambda: NOW,
    )
    return MinuteBook(**(options | overrides))


# --- the anomaly rule ---


def test_no_flag_before_the_minimum_history():
    assert not volume_anomaly([10, 10], 1000, k=3, min_history=3)
    assert volume_anomaly([10, 10, 10], 1000, k=3, min_history=3)


def test_a_spike_and_a_drop_to_zero_leave_the_baseline():
    history = [100, 104, 96, 101, 99]
    assert volume_anomaly(history, 200, k=3, min_history=3)
    assert volume_anomaly(history, 0, k=3, min_history=3)
    assert not volume_anomaly(history, 110, k=3, min_history=3)


def test_a_steady_history_tolerates_the_noise_of_a_count():
    """Standard deviation 0, but sqrt(mean) = 10 is the spread: 100 ± 30 is normal."""
    assert not volume_anomaly([100] * 10, 101, k=3, min_history=3)
    assert not volume_anomaly([100] * 10, 129, k=3, min_history=3)
    assert volume_anomaly([100] * 10, 131, k=3, min_history=3)


def test_a_quiet_series_needs_more_than_a_few_records_to_flag():
    """Spread at least 1: after zeros, 3 records are within 0 ± 3, 4 are not."""
    assert not volume_anomaly([0, 0, 0], 3, k=3, min_history=3)
    assert volume_anomaly([0, 0, 0], 4, k=3, min_history=3)


def test_k_sets_the_width_of_the_band():
    history = [90, 110, 90, 110]  # mean 100, stddev 10 = sqrt(100)
    assert volume_anomaly(history, 125, k=2, min_history=3)
    assert not volume_anomaly(history, 125, k=3, min_history=3)


# --- minutes and the watermark ---


def test_a_minute_closes_when_the_watermark_passes_its_end():
    minutes = book()
    minutes.add([row(0, 5)])
    minutes.add([row(1, 5, second=59)])  # watermark 0:59, minute 0 ends at 1:00
    assert minutes.close() == []
    minutes.add([row(2, 1, second=0)])  # watermark 1:00
    [closed] = minutes.close()
    assert closed.start == T0
    assert closed.volumes == {(IMP, "cmp_001"): 5}


def test_every_data_topic_and_every_tracked_series_gets_each_minute_even_without_records():
    minutes = book()
    minutes.add([row(0, 5), row(0, 2, campaign="cmp_002")])
    minutes.close()
    minutes.add([row(4, 1, second=0)])  # watermark 3:00: minutes 0, 1 and 2 close
    closed = minutes.close()
    assert [c.start for c in closed] == [T0, T0 + 60, T0 + 120]
    assert closed[1].volumes == {(IMP, "cmp_001"): 0, (IMP, "cmp_002"): 0}
    assert set(closed[1].topics) == {IMP, BID}
    assert closed[1].topics[BID].records == 0
    assert math.isnan(closed[1].topics[BID].dead_letter_ratio)
    assert math.isnan(closed[1].topics[BID].lag_mean)


def test_a_minute_split_over_micro_batches_adds_up():
    minutes = book()
    minutes.add([row(0, 3, lags=(1.0, 2.0, 3.0)), row(0, 1, kind=DEAD_LETTER, campaign=UNKNOWN, reason="x")])
    minutes.add([row(0, 1, lags=(10.0,)), row(0, 2, kind=SCHEMA_VIOLATION, campaign=UNKNOWN)])
    minutes.add([row(2, 1, second=0)])
    [closed] = minutes.close()
    figures = closed.topics[IMP]
    assert closed.volumes == {(IMP, "cmp_001"): 4, (IMP, UNKNOWN): 2}
    assert (figures.records, figures.dead_letters, figures.schema_violations) == (6, 1, 2)
    assert figures.dead_letter_ratio == pytest.approx(1 / 7)
    assert figures.schema_violation_ratio == pytest.approx(2 / 6)
    assert figures.lag_mean == pytest.approx(4.0)
    assert figures.lag_max == 10.0


def test_records_of_a_closed_minute_are_late_and_left_out_of_the_minutes():
    minutes = book()
    minutes.add([row(0, 5), row(2, 1, second=0)])
    minutes.close()  # minute 0
    minutes.add([row(0, 7)])
    assert minutes.late_records == 7
    minutes.add([row(3, 1, second=0)])
    [minute_1] = minutes.close()
    assert minute_1.volumes == {(IMP, "cmp_001"): 0}


def test_a_partial_start_leaves_out_the_first_minute():
    minutes = book(partial_start=True)
    minutes.add([row(0, 5), row(1, 8)])
    minutes.add([row(3, 1, second=0)])
    [minute_1] = minutes.close()
    assert minute_1.start == T0 + 60
    assert minute_1.volumes == {(IMP, "cmp_001"): 8}
    assert minutes.late_records == 5


def test_a_kafka_timestamp_ahead_of_the_wall_clock_does_not_close_minutes():
    minutes = book(clock=lambda: T0 + 90)
    minutes.add([row(0, 5), row(600, 1)])  # a producer with its clock ten hours ahead
    assert minutes.watermark == T0 + 30
    assert minutes.close() == []


def test_the_anomaly_flag_follows_the_trailing_baseline():
    minutes = book()
    volumes = [10, 10, 10, 40, 10]
    for minute, volume in enumerate(volumes):
        minutes.add([row(minute, volume), row(minute, 5, campaign="cmp_002")])
    minutes.add([row(len(volumes) + 1, 1, campaign="cmp_002", second=0)])
    closed = minutes.close()
    assert [c.anomalies[(IMP, "cmp_001")] for c in closed] == [False, False, False, True, False]
    assert not any(c.anomalies[(IMP, "cmp_002")] for c in closed)


def test_a_series_quiet_for_the_whole_baseline_is_no_longer_tracked():
    minutes = book(baseline_minutes=3, min_history_minutes=2)
    minutes.add([row(0, 10), row(0, 1, campaign="cmp_002")])
    minutes.add([row(6, 1, campaign="cmp_002", second=0)])
    closed = minutes.close()  # minutes 0..4: cmp_001 has 10, 0, 0, 0 and is dropped after the third zero
    assert [(IMP, "cmp_001") in c.volumes for c in closed] == [True, True, True, True, False]
    assert closed[1].anomalies[(IMP, "cmp_001")] is False  # one minute of history
    assert closed[2].anomalies[(IMP, "cmp_001")] is False  # 10, 0: mean 5, spread 5: 0 is within
    assert closed[4].volumes == {}  # cmp_002 (1, 0, 0, 0) went too


# --- metrics ---


def test_counters_add_every_micro_batch_once_and_gauges_show_the_latest_minute():
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    minutes = book()
    batches = [
        [
            row(0, 3),
            row(0, 2, kind=SCHEMA_VIOLATION, campaign=UNKNOWN),
            row(0, 1, kind=DEAD_LETTER, campaign=UNKNOWN, reason="bad"),
        ],
        [row(0, 4), row(0, 1, topic=BID, kind=DEAD_LETTER, campaign=UNKNOWN, reason="bad")],
        [row(1, 6, campaign="cmp_002", lags=(1.0, 3.0)), row(3, 1, campaign="cmp_002", second=0)],
    ]
    for batch in batches:
        metrics.count(batch)
        minutes.add(batch)
        for minute in minutes.close():
            metrics.publish(minute)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("adx_topic_records_total", topic=IMP, campaign="cmp_001") == 7
    assert value("adx_topic_records_total", topic=IMP, campaign="cmp_002") == 7
    assert value("adx_topic_records_total", topic=IMP, campaign=UNKNOWN) == 2
    assert value("adx_topic_schema_violations_total", topic=IMP) == 2
    assert value("adx_topic_schema_violations_total", topic=BID) == 0
    assert value("adx_topic_dead_letters_total", topic=IMP, reason="bad") == 1
    assert value("adx_topic_dead_letters_total", topic=BID, reason="bad") == 1
    # minute 1 is the latest complete one
    assert value("adx_topic_minute_start_timestamp_seconds") == T0 + 60
    assert value("adx_topic_records_per_minute", topic=IMP, campaign="cmp_001") == 0
    assert value("adx_topic_records_per_minute", topic=IMP, campaign="cmp_002") == 6
    assert value("adx_topic_end_to_end_lag_seconds", topic=IMP, stat="mean") == 2.0
    assert value("adx_topic_end_to_end_lag_seconds", topic=IMP, stat="max") == 3.0
    assert value("adx_topic_dead_letter_ratio", topic=IMP) == 0.0
    assert value("adx_topic_volume_anomaly", topic=IMP, campaign="cmp_002") == 0


def test_gauges_of_a_series_no_longer_tracked_are_removed():
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    minutes = book(baseline_minutes=1, min_history_minutes=1)
    minutes.add([row(0, 5), row(4, 1, campaign="cmp_002", second=0)])
    for minute in minutes.close():  # minutes 0-2: cmp_001 has 5, then 0 and is dropped, then is gone
        metrics.publish(minute)
    assert registry.get_sample_value("adx_topic_records_per_minute", {"topic": IMP, "campaign": "cmp_001"}) is None
    assert registry.get_sample_value("adx_topic_volume_anomaly", {"topic": IMP, "campaign": "cmp_001"}) is None


# --- bid-request schemas ---


def test_every_released_schema_is_a_writer_and_the_reader_keeps_only_what_the_monitor_reads():
    catalog = SchemaCatalog.load()
    schemas = load_writer_schemas()
    assert schemas.by_fingerprint == {s.fingerprint: s.json for s in catalog.schemas}
    reader = json.loads(schemas.reader)
    assert reader["namespace"] == json.loads(catalog.latest.json)["namespace"]
    assert [f["name"] for f in reader["fields"]] == ["timestamp", "outcome"]
    assert [f["name"] for f in reader["fields"][1]["type"]["fields"]] == ["campaign_id"]


def test_records_of_every_version_resolve_to_the_reader_schema():
    """What from_avro does with (writer, avroSchema=reader), checked with fastavro on the same schemas."""
    import fastavro

    reader = fastavro.parse_schema(json.loads(reader_schema(SchemaCatalog.load().latest.json)))
    for schema in SchemaCatalog.load().schemas:
        record = _minimal_bid_request(schema.version)
        decoded = schema.decode(schema.encode(record), None)
        assert decoded["outcome"]["campaign_id"] == "cmp_007"
        resolved = fastavro.schemaless_reader(io.BytesIO(schema.encode(record)), schema.parsed, reader)
        assert resolved == {"timestamp": decoded["timestamp"], "outcome": {"campaign_id": "cmp_007"}}


def _minimal_bid_request(version: int) -> dict:
    record = {
        "id": "r1",
        "timestamp": 1_790_000_000_123,
        "exchange": "x",
        "at": 1,
        "tmax": 100,
        "cur": ["USD"],
        "imp": [],
        "site": None,
        "app": None,
        "device": {
            "ua": "u",
            "ip": "1",
            "devicetype": 1,
            "os": "o",
            "geo": {"country": "USA", "region": "r", "lat": None, "lon": None},
        },
        "user": {"id": "u1"},
        "outcome": {"campaign_id": "cmp_007", "bid": False, "bid_price": None, "win": False, "clearing_price": None},
    }
    if version >= 2:
        record["source_tid"] = None
    return record
