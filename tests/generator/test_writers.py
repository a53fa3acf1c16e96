"""Formats: time strings, Avro encoding checked against fastavro and the .avsc."""

import json
import random
from datetime import UTC, date, datetime

import fastavro

from ingestion.generator import events, writers
from ingestion.generator.reference import reference

T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def test_iso_times_in_each_server_offset():
    ts = T0 + 12_345  # 00:00:12.345Z
    assert writers.server_time(ts, 0) == "2026-11-01T00:00:12.345Z"
    assert writers.server_time(ts, 1) == "2026-11-01T01:00:12.345+01:00"
    assert writers.server_time(ts, 2) == "2026-10-31T19:00:12.345-05:00"
    assert writers.server_time(ts, 3) == "2026-11-01T05:30:12.345+05:30"
    for server in range(4):
        parsed = datetime.fromisoformat(writers.server_time(ts, server))
        assert parsed.astimezone(UTC) == datetime(2026, 11, 1, 0, 0, 12, 345_000, tzinfo=UTC)


def test_varint_matches_fastavro():
    schema = fastavro.parse_schema({"type": "record", "name": "L", "fields": [{"name": "v", "type": "long"}]})
    for value in (0, 1, -1, 63, 64, -65, 2**31, T0, -T0, 2**62):
        assert fastavro.schemaless_reader(__import__("io").BytesIO(writers._long(value)), schema) == {"v": value}


def test_encoded_bid_requests_decode_with_the_schema(tmp_path):
    ref = reference()
    requests = events.bid_requests(random.Random(7), ref, date(2026, 11, 1), 3_000)
    requests[0] = requests[0]._replace(floor_cents=-50, bid=False, bid_cents=None, win=False, clear_cents=None)
    encoder = writers.BidRequestEncoder(ref)
    path = tmp_path / "x.avro"
    writers.write_avro(path, encoder.encode_all(requests), writers.sync_marker_for(1, "x"))

    schema = json.loads(writers.AVRO_SCHEMA_PATH.read_text())
    with path.open("rb") as handle:
        reader = fastavro.reader(handle, reader_schema=schema)
        assert reader.codec == "deflate"
        decoded = list(reader)
    assert len(decoded) == len(requests)
    for request, record in zip(requests, decoded, strict=True):
        assert record["id"] == request.request_id
        assert record["timestamp"] == datetime.fromtimestamp(request.ts / 1000, UTC)
        assert record["exchange"] == request.exchange
        assert record["at"] == request.at and record["cur"] == ["USD"]
        imp = record["imp"][0]
        assert len(record["imp"]) == 1
        assert imp["bidfloor"] == request.floor_cents / 100 and imp["bidfloorcur"] == "USD"
        assert (imp["video"] is not None) == request.video and (imp["banner"] is None) == request.video
        assert (record["site"] is None) != (record["app"] is None)
        domain = record["site"]["domain"] if record["site"] else record["app"]["bundle"]
        assert domain == events.INVENTORY_DOMAINS[request.inventory]
        assert record["device"] == encoder.device_dict(request.user)
        assert record["user"] == {"id": ref.users[request.user].user_id}
        assert record["outcome"] == {
            "campaign_id": request.campaign_id,
            "bid": request.bid,
            "bid_price": writers.price(request.bid_cents),
            "win": request.win,
            "clearing_price": writers.price(request.clear_cents),
        }


def test_schema_shape():
    schema = json.loads(writers.AVRO_SCHEMA_PATH.read_text())
    assert schema["namespace"] == "com.advertisex.rtb.v1" and schema["name"] == "BidRequest"
    fields = {f["name"]: f for f in schema["fields"]}
    assert list(fields) == ["id", "timestamp", "exchange", "at", "tmax", "cur", "imp", "site", "app"] + [
        "device",
        "user",
        "outcome",
    ]
    assert fields["timestamp"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert all("doc" in f for f in schema["fields"])
    fastavro.parse_schema(schema)
