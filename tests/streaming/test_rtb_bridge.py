"""The RTB bridge: Avro container files of the RTB drop folder to Kafka, one record per message.

The first tests check the record splitter against fastavro without a broker. The integration tests run the bridge
against the session's real broker (`kafka_broker`); its topics are shared by the test session, so every assertion
is about the messages written after the offsets the test noted when it started.
"""

from __future__ import annotations

import copy
import io
import json
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Message

from ingestion.generator import generate
from ingestion.settings import Settings
from ingestion.sources import BID_REQUESTS
from ingestion.streaming.openrtb import bid_request_record, write_rtb_file
from ingestion.streaming.rtb_bridge import (
    AvroRecordError,
    BridgeSummary,
    bridge_bid_requests,
    error_text,
    read_avro_file,
)
from ingestion.streaming.schema_catalog import SchemaCatalog, schema_fingerprint
from ingestion.streaming.topics import (
    BID_REQUESTS_DLQ_TOPIC,
    BID_REQUESTS_TOPIC,
    DLQ_REASON_HEADER,
    INGEST_DATE_HEADER,
    SCHEMA_FINGERPRINT_HEADER,
    SOURCE_FILE_HEADER,
)

CATALOG = SchemaCatalog.load()
V1, V2 = CATALOG.by_version(1), CATALOG.by_version(2)
DAY = date(2026, 11, 1)

EVERY_TYPE = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.splitter",
    "fields": [
        {"name": "nothing", "type": "null"},
        {"name": "id", "type": "string"},
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "price", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Item",
                    "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": ["null", "double", "Color"]}],
                },
            },
        },
        {"name": "maybe_item", "type": ["null", "Item"]},
        {"name": "other_hash", "type": "Hash"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def _every_type_record(n: int) -> dict:
    return {
        "nothing": None,
        "id": f"rec-{n}" + "x" * (n % 200),  # lengths above 63 bytes take a two-byte varint
        "flag": n % 2 == 0,
        "small": (-1) ** n * n * 1000,
        "big": (-1) ** n * n * 10**12,
        "ratio": 0.5,
        "price": n / 7,
        "raw": bytes(range(n % 256)),
        "text": "é" * (n % 90),
        "color": ["RED", "GREEN", "BLUE"][n % 3],
        "hash": b"\x00\x01\x02\x03",
        "counts": {f"k{i}": i - 50 for i in range(n % 80)},
        "items": [{"k": "a", "v": None}, {"k": "b", "v": 1.5}, {"k": "c", "v": "BLUE"}][: n % 4] * (n % 50),
        "maybe_item": None if n % 3 else {"k": "z", "v": 2.0},
        "other_hash": b"abcd",
        "at": datetime(2026, 11, 1, tzinfo=UTC),
    }


def _bid_request(request_id: str) -> dict:
    return {
        "id": request_id,
        "timestamp": datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        "exchange": "openx",
        "at": 1,
        "tmax": 100,
        "cur": ["USD"],
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "video": None, "bidfloor": 0.5, "bidfloorcur": "USD"}],
        "site": {"id": "site-0001", "domain": "news.example.com", "page": "https://news.example.com/a"},
        "app": None,
        "device": {
            "ua": "Mozilla/5.0",
            "ip": "192.0.2.1",
            "devicetype": 2,
            "os": "linux",
            "geo": {"country": "USA", "region": "CA", "lat": None, "lon": None},
        },
        "user": {"id": "u_000001"},
        "outcome": {"campaign_id": "cmp_001", "bid": True, "bid_price": 1.25, "win": False, "clearing_price": None},
    }


def _write(path: Path, schema: dict, records: list[dict], **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(copy.deepcopy(schema)), records, **options)
    return path


def _damaged(path: Path, request_id: str) -> Path:
    """A sound container and block around a record whose first string has a negative length."""
    _write(path, json.loads(V1.json), [_bid_request(request_id)], codec="null")
    data = bytearray(path.read_bytes())
    data[data.index(request_id.encode()) - 1] = 0x7F
    path.write_bytes(bytes(data))
    return path


# --- the splitter, without a broker ---


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_records_are_cut_from_the_blocks_exactly_as_fastavro_decodes_them(tmp_path, codec):
    records = [_every_type_record(n) for n in range(600)]
    path = _write(tmp_path / "every.avro", EVERY_TYPE, records, codec=codec, sync_interval=4000)  # many blocks
    decoded = read_avro_file(path)

    assert decoded.fingerprint == schema_fingerprint(EVERY_TYPE)
    writer = fastavro.parse_schema(copy.deepcopy(EVERY_TYPE))
    assert [fastavro.schemaless_reader(io.BytesIO(v), writer, None) for v in decoded.values] == records
    assert [k.decode() for k in decoded.keys] == [r["id"] for r in records]


def test_generated_bid_requests_split_into_their_records(tmp_path):
    generate(tmp_path, days=1, scale=300, seed=3)
    (path,) = (tmp_path / "landing" / "rtb" / f"dt={DAY}").glob("*.avro")
    decoded = read_avro_file(path)
    with path.open("rb") as handle:
        expected = list(fastavro.reader(handle))
    assert decoded.fingerprint == V1.fingerprint
    assert [V1.decode(v) for v in decoded.values] == expected
    assert [k.decode() for k in decoded.keys] == [r["id"] for r in expected]


def test_an_undecodable_file_raises_with_the_loaders_wording(tmp_path):
    with pytest.raises(AvroRecordError) as damaged:
        read_avro_file(_damaged(tmp_path / "damaged.avro", "req-3"))
    assert error_text(damaged.value).startswith("AvroRecordError: block 1 (byte ")
    assert error_text(damaged.value).endswith("negative length -64 at byte 1")

    (tmp_path / "garbage.avro").write_bytes(b"Obj\x01 this is not an avro file")
    with pytest.raises(Exception) as garbage:  # noqa: B017, PT011 - whatever fastavro raises for a broken container
        read_avro_file(tmp_path / "garbage.avro")
    assert error_text(garbage.value) == f"{type(garbage.value).__name__}: {str(garbage.value).splitlines()[0]}"

    good = _write(tmp_path / "good.avro", json.loads(V1.json), [_bid_request(f"r{n}") for n in range(50)])
    (tmp_path / "truncated.avro").write_bytes(good.read_bytes()[:-40])
    with pytest.raises(Exception):  # noqa: B017, PT011
        read_avro_file(tmp_path / "truncated.avro")


# --- against the broker ---


@pytest.fixture
def watch(watch_topics):
    return watch_topics(BID_REQUESTS_TOPIC.name, BID_REQUESTS_DLQ_TOPIC.name)


def _headers(message: Message) -> dict[str, str]:
    return {key: value.decode() for key, value in message.headers() or []}


def _rtb(settings: Settings, day: date = DAY) -> Path:
    return settings.landing_dir / BID_REQUESTS.landing_subdir / f"dt={day}"


def _check(summary: BridgeSummary, *, files: int, skipped: int, read: int, published: int, dead: dict) -> None:
    assert (summary.files, summary.files_skipped) == (files, skipped)
    assert (summary.records_read, summary.published, summary.dead_lettered) == (read, published, dead)
    assert summary.reconciled


@pytest.mark.integration
def test_every_generated_record_is_published_once_with_its_schema_file_and_date(settings, watch):
    generate(settings.data_dir, days=2, scale=1500, seed=11)
    files = sorted(settings.landing_dir.glob("rtb/dt=*/*.avro"))
    expected: dict[tuple[str, str], list[dict]] = {}
    for path in files:
        with path.open("rb") as handle:
            expected[(path.parent.name.removeprefix("dt="), path.name)] = list(fastavro.reader(handle))
    total = sum(len(records) for records in expected.values())
    assert len(files) == 2 and total > 2500

    first_day = bridge_bid_requests(settings, paths=f"dt={DAY}/*.avro")
    _check(
        first_day,
        files=1,
        skipped=0,
        read=len(expected[(str(DAY), files[0].name)]),
        published=first_day.records_read,
        dead={},
    )
    everything = bridge_bid_requests(settings)
    _check(
        everything,
        files=2,
        skipped=1,
        read=total - first_day.records_read,
        published=total - first_day.records_read,
        dead={},
    )

    messages = watch.new(BID_REQUESTS_TOPIC.name)
    assert len(messages) == total
    published: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for message in messages:
        headers = _headers(message)
        assert headers[SCHEMA_FINGERPRINT_HEADER] == V1.fingerprint
        record = CATALOG.by_fingerprint(headers[SCHEMA_FINGERPRINT_HEADER]).decode(message.value())
        assert message.key().decode() == record["id"]
        published[(headers[INGEST_DATE_HEADER], headers[SOURCE_FILE_HEADER])].append(record)
    assert published.keys() == expected.keys()
    for file_key, records in expected.items():
        assert sorted(map(repr, published[file_key])) == sorted(map(repr, records)), file_key
    assert watch.new(BID_REQUESTS_DLQ_TOPIC.name) == []

    rerun = bridge_bid_requests(settings)
    _check(rerun, files=2, skipped=2, read=0, published=0, dead={})
    assert len(watch.new(BID_REQUESTS_TOPIC.name)) == total
    manifest = json.loads((settings.streaming_dir / "rtb_bridge" / "published.json").read_text())
    assert {name: entry["records"] for name, entry in manifest["files"].items()} == {
        f"rtb/dt={day}/{name}": len(records) for (day, name), records in expected.items()
    }


@pytest.mark.integration
def test_an_unreadable_file_is_one_dead_letter_and_none_of_its_records(settings, watch):
    folder = _rtb(settings)
    _write(folder / "bid-requests-01.avro", json.loads(V1.json), [_bid_request("req-1"), _bid_request("req-2")])
    (folder / "bid-requests-02.avro").write_bytes(b"Obj\x01 this is not an avro file")
    _damaged(folder / "bid-requests-03.avro", "req-3")

    summary = bridge_bid_requests(settings)
    _check(summary, files=3, skipped=0, read=4, published=2, dead={"unreadable_avro_file": 2})

    records = [(_headers(m)[SOURCE_FILE_HEADER], m.key().decode()) for m in watch.new(BID_REQUESTS_TOPIC.name)]
    assert sorted(records) == [("bid-requests-01.avro", "req-1"), ("bid-requests-01.avro", "req-2")]
    dead = sorted(watch.new(BID_REQUESTS_DLQ_TOPIC.name), key=lambda m: m.key())
    assert [m.key().decode() for m in dead] == ["bid-requests-02.avro", "bid-requests-03.avro"]
    for message in dead:
        headers = _headers(message)
        assert headers[DLQ_REASON_HEADER] == "unreadable_avro_file"
        assert headers[SOURCE_FILE_HEADER] == message.key().decode() and headers[INGEST_DATE_HEADER] == str(DAY)
    assert dead[0].value().decode() == "ValueError: cannot read header - is it an avro file?"
    assert dead[1].value().decode().startswith("AvroRecordError: block 1 (byte ")
    assert dead[1].value().decode().endswith(": negative length -64 at byte 1")

    rerun = bridge_bid_requests(settings)
    _check(rerun, files=3, skipped=3, read=0, published=0, dead={})
    assert len(watch.new(BID_REQUESTS_TOPIC.name)) == 2 and len(watch.new(BID_REQUESTS_DLQ_TOPIC.name)) == 2


@pytest.mark.integration
def test_a_file_whose_schema_is_not_released_is_a_dead_letter(settings, watch):
    unreleased = json.loads(V1.json)
    unreleased["fields"].append({"name": "deal_id", "type": ["null", "string"], "default": None})
    _write(_rtb(settings) / "bid-requests-01.avro", unreleased, [{**_bid_request("req-1"), "deal_id": "d-1"}])

    summary = bridge_bid_requests(settings)
    _check(summary, files=1, skipped=0, read=1, published=0, dead={"unknown_schema": 1})
    assert watch.new(BID_REQUESTS_TOPIC.name) == []
    (dead,) = watch.new(BID_REQUESTS_DLQ_TOPIC.name)
    headers = _headers(dead)
    assert headers[DLQ_REASON_HEADER] == "unknown_schema"
    assert headers[SCHEMA_FINGERPRINT_HEADER] == schema_fingerprint(unreleased)
    assert "not a released bid_request schema" in dead.value().decode()


@pytest.mark.integration
def test_v1_and_v2_files_are_published_side_by_side(settings, watch):
    _write(_rtb(settings) / "bid-requests-01.avro", json.loads(V1.json), [_bid_request("v1-req")])
    openrtb = {
        "id": "v2-req",
        "imp": [{"id": "1", "video": {"w": 640, "h": 360, "mimes": ["video/mp4"]}}],
        "app": {"id": "app-1", "bundle": "com.example.app", "name": "Example"},
        "source": {"tid": "tid-0001"},
    }
    converted = bid_request_record(openrtb, received_at=datetime(2026, 11, 1, 9, 0, tzinfo=UTC), exchange="openx")
    write_rtb_file(settings, [converted], ingest_date=DAY, file_name="openrtb-01.avro")

    summary = bridge_bid_requests(settings)
    _check(summary, files=2, skipped=0, read=2, published=2, dead={})
    by_id = {m.key().decode(): m for m in watch.new(BID_REQUESTS_TOPIC.name)}
    assert sorted(by_id) == ["v1-req", "v2-req"]
    assert _headers(by_id["v1-req"])[SCHEMA_FINGERPRINT_HEADER] == V1.fingerprint
    assert _headers(by_id["v2-req"])[SCHEMA_FINGERPRINT_HEADER] == V2.fingerprint

    # Every record resolves to the latest schema; v1 records have no transaction id.
    latest = {key: CATALOG.decode(m.value(), _headers(m)[SCHEMA_FINGERPRINT_HEADER]) for key, m in by_id.items()}
    assert latest["v1-req"] == {**_bid_request("v1-req"), "source_tid": None}
    assert latest["v2-req"] == converted and latest["v2-req"]["source_tid"] == "tid-0001"


@pytest.mark.integration
def test_a_missing_topic_or_an_unacknowledged_record_fails_loudly_and_publishes_again(settings, watch, monkeypatch):
    from ingestion.streaming import rtb_bridge
    from ingestion.streaming.topics import Topic

    _write(_rtb(settings) / "bid-requests-01.avro", json.loads(V1.json), [_bid_request("a"), _bid_request("b")])
    manifest = settings.streaming_dir / "rtb_bridge" / "published.json"
    with monkeypatch.context() as patch:
        patch.setattr(rtb_bridge, "BID_REQUESTS_TOPIC", Topic("adx.no_such_topic.v1", 1, 1, "bid_requests"))
        with pytest.raises(rtb_bridge.BridgeError, match="adx.no_such_topic.v1 does not exist"):
            bridge_bid_requests(settings)
        # Past the topic check, the broker never acknowledges the records: the producer's delivery reports say so.
        patch.setattr(rtb_bridge.BridgeProducer, "check_topics", lambda self: None)
        patch.setitem(rtb_bridge.PRODUCER_CONFIG, "message.timeout.ms", 2000)
        with pytest.raises(rtb_bridge.BridgeDeliveryError, match="2 of 2 records not acknowledged"):
            bridge_bid_requests(settings)
    assert not manifest.exists()

    _check(bridge_bid_requests(settings), files=1, skipped=0, read=2, published=2, dead={})
    assert sorted(m.key() for m in watch.new(BID_REQUESTS_TOPIC.name)) == [b"a", b"b"]
